"""Stored Responses API objects, on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import pytest

from batchyard.store.port import Store
from batchyard.store.records import ResponseRecord

pytestmark = pytest.mark.anyio
T0 = 1_750_000_000.0


def response(response_id: str, workspace_id: str = "wa", **kw: object) -> ResponseRecord:
    fields: dict[str, object] = {
        "id": response_id,
        "workspace_id": workspace_id,
        "created_at": T0,
        "body": b'{"id":"%s","object":"response","output":[]}' % response_id.encode(),
        "input_items": b'[{"id":"msg_1","type":"message","role":"user","content":"h\\u00e9"}]',
        "previous_response_id": None,
    }
    fields.update(kw)
    return ResponseRecord(**fields)  # type: ignore[arg-type]


async def test_a_stored_response_is_read_back_as_put(store: Store) -> None:
    first = response("resp_1", body=b'{"bytes": "\xc3\xa9\x00 kept"}')
    await store.responses.put_response(first)
    got = await store.responses.get_response("wa", "resp_1")
    assert got == first
    assert got is not None and got.body == first.body and got.input_items == first.input_items
    assert isinstance(got.body, bytes) and isinstance(got.input_items, bytes)
    assert await store.responses.get_response("wa", "resp_none") is None


async def test_previous_response_id_round_trips(store: Store) -> None:
    await store.responses.put_response(response("resp_1"))
    await store.responses.put_response(response("resp_2", previous_response_id="resp_1"))
    first = await store.responses.get_response("wa", "resp_1")
    second = await store.responses.get_response("wa", "resp_2")
    assert first is not None and first.previous_response_id is None
    assert second is not None and second.previous_response_id == "resp_1"


async def test_another_workspace_can_neither_read_nor_delete_it(store: Store) -> None:
    await store.responses.put_response(response("resp_1"))
    assert await store.responses.get_response("wb", "resp_1") is None
    assert await store.responses.delete_response("wb", "resp_1") is False
    assert await store.responses.get_response("wa", "resp_1") == response("resp_1")


async def test_delete_removes_it_once(store: Store) -> None:
    await store.responses.put_response(response("resp_1"))
    await store.responses.put_response(response("resp_2"))
    assert await store.responses.delete_response("wa", "resp_1") is True
    assert await store.responses.get_response("wa", "resp_1") is None
    assert await store.responses.delete_response("wa", "resp_1") is False
    assert await store.responses.get_response("wa", "resp_2") == response("resp_2")
