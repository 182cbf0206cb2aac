"""File-referenced content: a request's `{"type": "file", "file_id"}` sources, read when
the request runs (not when it was accepted), in the request's own workspace.

`resolve_files` is the one place `/v1/messages`, `count_tokens` and batch requests
turn them into what every engine reads: a document becomes a text document (a PDF
its pages' text, `services/documents.py`), an image becomes inline base64 (an engine
that reads text only refuses it as it refuses any image). A file that is gone
(deleted, expired, another workspace's) or unreadable is an `invalid_request_error`
naming it, for this request only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import anyio.to_thread
import msgspec

from batchyard.errors import EngineError, NotFound, StoreUnavailable
from batchyard.services.documents import DocumentError, document_text, readable_type
from batchyard.services.files import FileService, mime_type_of
from batchyard.wire.messages import (
    ContentBlockParam,
    DocumentBlock,
    ImageBlock,
    MessageCreateParams,
    MessageParam,
    ToolResultBlock,
)
from batchyard.wire.sources import Base64Source, FileSource, TextSource

MAX_DOCUMENT_FILE_BYTES = 32 * 1024 * 1024
"""The largest document file read (the hosted API's request limit)."""
MAX_IMAGE_FILE_BYTES = 5 * 1024 * 1024
"""The largest image file inlined (the hosted API's per-image limit)."""
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _invalid(message: str) -> EngineError:
    return EngineError("invalid_request_error", message, retryable=False)


def uses_files(params: MessageCreateParams) -> bool:
    """Whether any image or document block of the request names a file."""
    return any(isinstance(_source(b), FileSource) for b in _blocks(params))


def _blocks(params: MessageCreateParams) -> list[object]:
    found: list[object] = []
    for message in params.messages:
        if isinstance(message.content, str):
            continue
        for block in message.content:
            found.append(block)
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                found.extend(block.content)
    return found


def _source(block: object) -> object:
    return block.source if isinstance(block, ImageBlock | DocumentBlock) else None


async def resolve_files(
    params: MessageCreateParams, files: FileService | None, workspace_id: str
) -> MessageCreateParams:
    """`params` with every file source replaced by the file's content (unchanged, and not
    copied, when none names a file). Raises EngineError: `invalid_request_error` for a
    missing or unreadable file, a retryable `api_error` when the store is down."""
    if not uses_files(params):
        return params
    if files is None:
        raise _invalid("file sources are not available on this server")
    reader = _Reader(files, workspace_id)
    messages: list[MessageParam] = []
    for i, message in enumerate(params.messages):
        if isinstance(message.content, str):
            messages.append(message)
            continue
        content = [
            await reader.block(b, f"messages.{i}.content.{j}")
            for j, b in enumerate(message.content)
        ]
        messages.append(MessageParam(message.role, content))
    # A new struct: the body as sent (which an upstream would forward) names the files.
    return msgspec.structs.replace(params, messages=messages)


class _Reader:
    """Reads each file once per request."""

    def __init__(self, files: FileService, workspace_id: str) -> None:
        self.files = files
        self.workspace_id = workspace_id
        self._read: dict[str, tuple[str, bytes]] = {}

    async def block(self, block: ContentBlockParam, where: str) -> ContentBlockParam:
        if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
            content = [
                await self.block(b, f"{where}.content.{k}") for k, b in enumerate(block.content)
            ]
            return msgspec.structs.replace(block, content=content)
        if isinstance(block, DocumentBlock) and isinstance(block.source, FileSource):
            text = await self._document(block.source.file_id, f"{where}.source")
            return msgspec.structs.replace(block, source=TextSource("text/plain", text))
        if isinstance(block, ImageBlock) and isinstance(block.source, FileSource):
            mime, data = await self._image(block.source.file_id, f"{where}.source")
            return msgspec.structs.replace(block, source=Base64Source(mime, data))
        return block

    async def _document(self, file_id: str, where: str) -> str:
        mime, data = await self._bytes(file_id, where, "a document", readable_type)
        try:
            return await anyio.to_thread.run_sync(document_text, data, mime)
        except DocumentError as exc:
            raise _invalid(f"{where}: file {file_id!r} ({mime}): {exc}") from None

    async def _image(self, file_id: str, where: str) -> tuple[str, str]:
        mime, data = await self._bytes(file_id, where, "an image", IMAGE_TYPES.__contains__)
        if not data:
            raise _invalid(f"{where}: file {file_id!r} is empty")
        return mime, base64.b64encode(data).decode("ascii")

    async def _bytes(
        self, file_id: str, where: str, kind: str, accepts: Callable[[str], bool]
    ) -> tuple[str, bytes]:
        """The file's MIME type and bytes, once it is known to be of a type `accepts`."""
        limit = MAX_IMAGE_FILE_BYTES if kind == "an image" else MAX_DOCUMENT_FILE_BYTES
        if file_id not in self._read:
            try:
                self._read[file_id] = await self._fetch(file_id, where, kind, limit, accepts)
            except NotFound:
                raise _invalid(
                    f"{where}.file_id: no file {file_id!r} in this workspace (deleted or expired?)"
                ) from None
            except FileNotFoundError:  # deleted between reading its record and its bytes
                raise _invalid(f"{where}.file_id: file {file_id!r} was deleted") from None
            except StoreUnavailable as exc:
                raise EngineError(
                    "api_error", f"could not read file {file_id!r}: {exc}", retryable=True
                ) from None
        mime, data = self._read[file_id]
        _check(mime, len(data), file_id, where, kind, limit, accepts)
        return mime, data

    async def _fetch(
        self, file_id: str, where: str, kind: str, limit: int, accepts: Callable[[str], bool]
    ) -> tuple[str, bytes]:
        record, chunks = await self.files.download(self.workspace_id, file_id)
        mime = mime_type_of(record.filename)
        _check(mime, record.bytes, file_id, where, kind, limit, accepts)  # before reading any
        kept = bytearray()
        async for chunk in chunks:
            kept += chunk
            if len(kept) > limit:
                break
        return mime, bytes(kept)


def _check(
    mime: str,
    size: int,
    file_id: str,
    where: str,
    kind: str,
    limit: int,
    accepts: Callable[[str], bool],
) -> None:
    if not accepts(mime):
        raise _invalid(f"{where}: file {file_id!r} is {mime}, which cannot be {kind}")
    if size > limit:
        raise _invalid(f"{where}: file {file_id!r} is {size} bytes; {kind} may be {limit} at most")
