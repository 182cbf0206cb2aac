"""Anthropic dialect wire structs of the Files API (`/v1/files` with `anthropic-version`).

Timestamps are RFC 3339 datetimes, as the Anthropic API sends them. The OpenAI
dialect's file structs are in `wire/openai.py`; both describe the same records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class FileMetadata(msgspec.Struct):
    id: str
    filename: str
    mime_type: str
    size_bytes: int
    created_at: datetime
    downloadable: bool
    expires_at: datetime | None = None
    type: Literal["file"] = "file"


class FileMetadataList(msgspec.Struct):
    """One page, readable by both SDK generations: `next_page` (the `page` cursor of
    `client.files.list`) and `has_more` / `first_id` / `last_id` (`after_id` / `before_id`)."""

    data: list[FileMetadata]
    has_more: bool
    first_id: str | None
    last_id: str | None
    next_page: str | None


class DeletedFile(msgspec.Struct):
    id: str
    type: Literal["file_deleted"] = "file_deleted"
