"""Stored responses of the OpenAI Responses API (`store`, default true): kept per
workspace with the input items they answered, read back (`GET /v1/responses/{id}`,
`.../input_items`), deleted, and continued (`previous_response_id`: the stored chain,
each response's input items and then its output, comes before the new input).
"""

from __future__ import annotations

import json
from typing import Any

from batchyard.errors import InvalidRequest, NotFound
from batchyard.store.port import ResponseStore
from batchyard.store.records import ResponseRecord
from batchyard.translate.responses_answers import new_id
from batchyard.translate.responses_request import chat_messages

MAX_CHAIN = 1000
"""The most stored responses one `previous_response_id` chain is followed through."""
_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


def input_items(given: Any) -> list[dict[str, Any]]:
    """A request's `input` as the items `input_items` lists (each with an id; text as
    `input_text` parts)."""
    items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
    out = []
    for given_item in items:
        item: dict[str, Any] = {"type": "message", **given_item}
        if item["type"] == "message" and isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        if item["type"] == "message":
            item.setdefault("status", "completed")
        item.setdefault("id", new_id(_ITEM_PREFIX.get(item["type"], "item")))
        out.append(item)
    return out


class Responses:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def earlier(self, workspace_id: str, previous_id: str | None) -> list[dict[str, Any]]:
        """The Chat messages of the stored conversation `previous_id` ends."""
        if previous_id is None:
            return []
        chain: list[list[dict[str, Any]]] = []
        next_id: str | None = previous_id
        while next_id is not None:
            if len(chain) >= MAX_CHAIN:
                raise InvalidRequest(
                    f"previous_response_id: the conversation is over {MAX_CHAIN} responses long",
                    param="previous_response_id",
                )
            record = await self.store.get_response(workspace_id, next_id)
            if record is None:
                exc = not_found(next_id)
                exc.param = "previous_response_id"
                raise exc
            output = json.loads(record.body)["output"]
            chain.append([*json.loads(record.input_items), *output])
            next_id = record.previous_response_id
        items = [item for part in reversed(chain) for item in part]
        return chat_messages(items, "previous_response_id")

    async def keep(
        self, workspace_id: str, response: dict[str, Any], items: list[dict[str, Any]]
    ) -> None:
        await self.store.put_response(
            ResponseRecord(
                id=response["id"],
                workspace_id=workspace_id,
                created_at=float(response["created_at"]),
                body=json.dumps(response).encode(),
                input_items=json.dumps(items).encode(),
                previous_response_id=response.get("previous_response_id"),
            )
        )

    async def get(self, workspace_id: str, response_id: str) -> bytes:
        record = await self.store.get_response(workspace_id, response_id)
        if record is None:
            raise not_found(response_id)
        return record.body

    async def delete(self, workspace_id: str, response_id: str) -> dict[str, Any]:
        if not await self.store.delete_response(workspace_id, response_id):
            raise not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items_page(
        self, workspace_id: str, response_id: str, *, after: str | None, limit: int, order: str
    ) -> dict[str, Any]:
        record = await self.store.get_response(workspace_id, response_id)
        if record is None:
            raise not_found(response_id)
        items: list[dict[str, Any]] = json.loads(record.input_items)
        if order == "desc":  # OpenAI's default: the newest first
            items.reverse()
        if after is not None:
            at = next((i for i, item in enumerate(items) if item.get("id") == after), None)
            if at is None:
                raise InvalidRequest(f"after: no input item '{after}'", param="after")
            items = items[at + 1 :]
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
