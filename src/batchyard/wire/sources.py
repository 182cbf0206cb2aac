"""The sources a request's image and document blocks name: inline data, a URL, a file, text."""

from __future__ import annotations

from typing import Any

import msgspec


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class FileSource(msgspec.Struct, tag="file", tag_field="type"):
    file_id: str


class TextSource(msgspec.Struct, tag="text", tag_field="type"):
    media_type: str
    data: str


class ContentSource(msgspec.Struct, tag="content", tag_field="type"):
    content: str | list[dict[str, Any]]


ImageSource = Base64Source | UrlSource | FileSource
DocumentSource = Base64Source | UrlSource | FileSource | TextSource | ContentSource
