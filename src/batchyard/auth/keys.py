"""API key secrets: made here, shown once, stored only as a SHA-256 digest and a hint.

Keys are 256-bit random secrets, so a plain SHA-256 is as strong as a slow
password hash would be, and a lookup by digest costs one index probe.
"""

from __future__ import annotations

import base64
import hashlib
import os

API_PREFIX = "sk-by-api01-"
ADMIN_PREFIX = "sk-by-admin01-"


def generate(kind: str) -> str:
    """A new key: `sk-by-api01-…` for a workspace, `sk-by-admin01-…` for the Admin API."""
    body = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    return (ADMIN_PREFIX if kind == "admin" else API_PREFIX) + body


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hint(key: str) -> str:
    """Enough to recognise a key in a list, as the hosted API's `partial_key_hint`."""
    prefix = ADMIN_PREFIX if key.startswith(ADMIN_PREFIX) else API_PREFIX
    if not key.startswith(prefix) or len(key) < len(prefix) + 12:
        return f"{key[:4]}...{key[-4:]}" if len(key) >= 16 else "..."
    return f"{key[: len(prefix) + 3]}...{key[-4:]}"
