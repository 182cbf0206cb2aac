from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.vllm import REQUIRED, VLLM, missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vllm: runs against a real vLLM (tests/vllm.py); `make test` runs these on SQLite only",
    )


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLM]:
    """One real vLLM for the session; skipped where none is installed, unless
    BATCHYARD_REQUIRE_VLLM is set (as `make test` does), which makes that a failure."""
    reason = missing()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    with VLLM.start(tmp_path_factory.mktemp("vllm") / "vllm.log") as server:
        yield server
