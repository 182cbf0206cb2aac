"""`batchyard keys|workspaces` and the start-up rules: never open to the network without keys."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import anthropic
import pytest

from tests.conftest import ServerFactory, client_for, make_requests
from tests.databases import new_database, query
from tests.serverproc import BATCHYARD, free_port

NO_ADMIN_KEY = {"BATCHYARD_ADMIN_KEY": ""}


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHYARD_ENGINE": "fake", **NO_ADMIN_KEY}
    return subprocess.run(
        [*BATCHYARD, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_keys_created_by_the_cli_work_and_are_stored_hashed(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    db = new_database(tmp_path, "cli")
    made = cli("keys", "create", "--workspace", "team-x", "--name", "ci", "--database", str(db))
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("sk-by-api01-") and "created workspace wrkspc_" in made.stderr
    again = cli("keys", "create", "--workspace", "team-x", "--database", str(db))
    assert "created workspace" not in again.stderr  # found by name
    listed = cli("keys", "list", "--workspace", "team-x", "--database", str(db)).stdout
    assert listed.count("active") == 2 and secret not in listed and secret[-4:] in listed

    assert secret not in repr(query(db, "SELECT * FROM api_keys"))
    if Path(db).exists():  # the SQLite file and its WAL, byte for byte
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("cli.sqlite*"))
        assert secret.encode() not in raw

    server = start_server(database=db, env=NO_ADMIN_KEY)
    user = client_for(server, api_key=secret)
    batch = user.messages.batches.create(requests=make_requests(2, "c"))  # type: ignore[arg-type]
    assert user.messages.batches.retrieve(batch.id).id == batch.id
    assert "first run" not in server.log()

    key_id = re.search(r"created api key (apikey_\w+)", made.stderr)
    assert key_id
    revoked = cli("keys", "revoke", key_id.group(1), "--database", str(db))
    assert revoked.returncode == 0 and "inactive" in revoked.stdout
    with pytest.raises(anthropic.AuthenticationError):
        user.messages.batches.list()

    admin_secret = cli("keys", "create", "--admin", "--database", str(db)).stdout.strip()
    assert admin_secret.startswith("sk-by-admin01-")
    admin = client_for(server, api_key=admin_secret)
    assert {w.name for w in admin.organization.workspaces.list()} == {"team-x"}

    archived = cli("workspaces", "archive", "team-x", "--database", str(db))
    assert archived.returncode == 0, archived.stderr
    assert "team-x" not in cli("workspaces", "list", "--database", str(db)).stdout
    assert "(archived)" in cli("workspaces", "list", "--all", "--database", str(db)).stdout


def test_first_run_on_loopback_prints_keys_once(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    db = new_database(tmp_path, "first")
    server = start_server(database=db, env=NO_ADMIN_KEY)
    log = server.log()
    admin_key = re.search(r"admin key .*: (sk-by-admin01-\S+)", log)
    user_key = re.search(r"default workspace: +(sk-by-api01-\S+)", log)
    assert admin_key and user_key, log
    user = client_for(server, api_key=user_key.group(1))
    assert user.messages.batches.list().data == []
    admin = client_for(server, api_key=admin_key.group(1))
    assert admin.organization.api_keys.list().data
    server.stop()
    second = start_server(database=db, env=NO_ADMIN_KEY)
    assert "first run" not in second.log()


def test_a_network_address_needs_keys(tmp_path: Path) -> None:
    port = str(free_port())
    db = new_database(tmp_path, "net")
    refused = cli("serve", "--host", "0.0.0.0", "--port", port, "--database", db)
    assert refused.returncode != 0
    assert "refusing to serve 0.0.0.0 without API keys" in refused.stderr
    no_auth = cli("serve", "--host", "0.0.0.0", "--port", port, "--no-auth", "--database", db)
    assert no_auth.returncode != 0 and "--no-auth serves only loopback" in no_auth.stderr
    weak = cli("serve", "--port", port, "--admin-key", "short", "--database", db)
    assert weak.returncode != 0 and "at least 20 characters" in weak.stderr


def test_no_auth_on_loopback_lets_any_caller_in(start_server: ServerFactory) -> None:
    server = start_server("--no-auth", env=NO_ADMIN_KEY)
    anyone = client_for(server, api_key="anything")
    batch = anyone.messages.batches.create(requests=make_requests(1, "n"))  # type: ignore[arg-type]
    assert anyone.messages.batches.retrieve(batch.id).id == batch.id
