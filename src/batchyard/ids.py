"""Identifiers in the shapes the hosted API uses (`msgbatch_…`, `msg_…`, `req_…`).

22 random base62-ish characters after `01`. Batch ids draw from the OS (they name
a tenant's data); message and request ids, made once per result on the worker's
hot path, come from a fast PRNG seeded from the OS: unique, not secret.
"""

from __future__ import annotations

import base64
import os
import random

# base64's two non-alphanumeric characters become letters: a slight bias, still > 128 bits.
_TO_BASE62 = bytes.maketrans(b"-_", b"xZ")
_fast = random.Random(os.urandom(32))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).translate(_TO_BASE62)[:22].decode()


def batch_id() -> str:
    return f"msgbatch_01{_encode(os.urandom(18))}"


def message_id() -> str:
    return f"msg_01{_encode(_fast.randbytes(18))}"


def request_id() -> str:
    return f"req_01{_encode(_fast.randbytes(18))}"


def new_tool_use_id() -> str:
    return f"toolu_01{_encode(_fast.randbytes(18))}"


def workspace_id() -> str:
    return f"wrkspc_01{_encode(os.urandom(18))}"


def api_key_id() -> str:
    return f"apikey_01{_encode(os.urandom(18))}"


def file_id() -> str:
    return f"file-{_encode(os.urandom(18))}"


def openai_batch_id() -> str:
    return f"batch_{_encode(os.urandom(18))}"


def batch_request_id() -> str:
    return f"batch_req_{_encode(_fast.randbytes(18))}"


def completion_id() -> str:
    return f"compl_01{_encode(_fast.randbytes(18))}"
