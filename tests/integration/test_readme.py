"""The README's examples run as written, against a real server on the embedded model:
each ```python block, followed by the ```text block of what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_local_engine import local_server
from tests.serverproc import ADMIN_KEY, Server

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"```python\n(.*?)```\n\n```text\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    found = EXAMPLE.findall(README.read_text())
    assert len(found) >= 2, "the README shows an Anthropic and an OpenAI example"
    return found


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = local_server(tmp_path_factory.mktemp("readme"))
    yield server
    server.stop()


@pytest.mark.parametrize("index", range(len(examples())))
def test_a_readme_example_prints_what_the_readme_says(local: Server, index: int) -> None:
    code, printed = examples()[index]
    code = code.replace("http://127.0.0.1:8000", local.base_url)
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BATCHYARD_API_KEY": ADMIN_KEY},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == printed
