from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.databases import new_database
from tests.serverproc import ADMIN_KEY, HEADERS, Server

ServerFactory = Callable[..., Server]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start a fresh server with its own database; stopped at the end of the test."""
    started: list[Server] = []

    def start(
        *extra: str, database: Path | str | None = None, env: dict[str, str] | None = None
    ) -> Server:
        n = len(started)
        server = Server(
            database or new_database(tmp_path, f"db{n}"), tmp_path / f"server{n}.log", extra, env
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server on the zero-latency fake engine."""
    d = tmp_path_factory.mktemp("shared-server")
    s = Server(new_database(d, "db"), d / "server.log", ["--housekeeping-interval", "0.2"])
    yield s
    s.stop()


def client_for(server: Server, api_key: str = ADMIN_KEY, **kwargs: object) -> anthropic.Anthropic:
    """The SDK as a user sets it up (by default with the test admin key, which acts in
    the default workspace)."""
    return anthropic.Anthropic(
        base_url=server.base_url,
        api_key=api_key,
        _strict_response_validation=True,
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


def async_client_for(server: Server, api_key: str = ADMIN_KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.base_url,
        api_key=api_key,
        _strict_response_validation=True,
        max_retries=0,
    )


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return client_for(server)


def make_requests(
    n: int, prefix: str = "req", model: str = "claude-test"
) -> list[dict[str, object]]:
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "params": {
                "model": model,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"Say something about number {i}"}],
            },
        }
        for i in range(n)
    ]


def names(items: Sequence[object]) -> list[str]:
    return [getattr(i, "custom_id") for i in items]  # noqa: B009


def openai_client_for(server: Server, api_key: str = ADMIN_KEY) -> openai.OpenAI:
    """The official `openai` SDK pointed at batchyard (its base URL includes /v1)."""
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1",
        api_key=api_key,
        _strict_response_validation=True,
        max_retries=0,
    )


def new_workspace(admin: anthropic.Anthropic, name: str) -> str:
    return admin.organization.workspaces.create(name=name).id


def new_key(server: Server, workspace_id: str | None, name: str = "k") -> tuple[str, str]:
    """(key id, secret) made through the Admin API."""
    body: dict[str, object] = {"name": name}
    body.update({"workspace_id": workspace_id} if workspace_id else {"admin": True})
    r = httpx.post(f"{server.base_url}/v1/organizations/api_keys", headers=HEADERS, json=body)
    assert r.status_code == 200, r.text
    return r.json()["id"], r.json()["key"]


def workspace_key(server: Server, name: str) -> str:
    """A key of a new workspace named `name`."""
    return new_key(server, new_workspace(client_for(server), name))[1]
