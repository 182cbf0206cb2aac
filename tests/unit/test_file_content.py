"""File-referenced content: documents' text (text files, PDFs with page markers), the
errors of bad files in bounded time, and `resolve_files` on the in-memory store."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Mapping

import msgspec
import pytest

from batchyard.clock import ManualClock
from batchyard.errors import EngineError
from batchyard.services.documents import MAX_PDF_PAGES, DocumentError, document_text, pdf_text
from batchyard.services.file_content import resolve_files, uses_files
from batchyard.services.files import FileService
from batchyard.store import MEMORY_URL, open_store
from batchyard.wire.messages import DocumentBlock, ImageBlock, MessageCreateParams, TextBlock
from batchyard.wire.params import decode_params
from batchyard.wire.sources import Base64Source, TextSource
from tests.pdfs import blank_pdf, bomb_pdf, nested_pdf, text_pdf
from tests.stubs import MemoryBlobs

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_a_pdf_is_its_pages_text_after_page_markers() -> None:
    text = pdf_text(text_pdf("Hello world", "Second page"))
    assert text == "--- page 1 of 2 ---\nHello world\n\n--- page 2 of 2 ---\nSecond page"
    assert document_text(text_pdf("Once"), "application/pdf").endswith("Once")


def test_text_files_are_read_as_utf8() -> None:
    assert document_text("\ufeffnotes: ø".encode(), "text/markdown") == "notes: ø"
    assert document_text(b'{"a": 1}', "application/json") == '{"a": 1}'
    assert document_text(b"x: 1", "application/vnd.api+json") == "x: 1"


@pytest.mark.parametrize(
    ("data", "mime", "says"),
    [
        (b"", "text/plain", "empty"),
        (b"", "application/pdf", "empty"),
        (b"\xff\xfe\x00binary", "text/plain", "not UTF-8"),
        (PNG, "image/png", "'image/png' are not supported"),
        (b"hello, not a pdf", "application/pdf", "not a PDF"),
        (text_pdf("secret", password="pw"), "application/pdf", "encrypted"),
        (text_pdf("Hello", "world")[:300], "application/pdf", "cannot be read"),
        (blank_pdf(MAX_PDF_PAGES + 1), "application/pdf", "101 pages"),
        (nested_pdf(), "application/pdf", "cannot be read"),
        (bomb_pdf(), "application/pdf", "too large inside"),
    ],
    ids=[
        "empty",
        "empty-pdf",
        "binary",
        "image",
        "wrong",
        "encrypted",
        "truncated",
        "pages",
        "nested",
        "bomb",
    ],
)
def test_bad_files_are_clear_errors_in_bounded_time(data: bytes, mime: str, says: str) -> None:
    started = time.monotonic()
    with pytest.raises(DocumentError, match=says):
        document_text(data, mime)
    assert time.monotonic() - started < 10


# --- resolve_files -------------------------------------------------------------------


async def stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def files() -> FileService:
    return FileService(open_store(MEMORY_URL).files, MemoryBlobs(), ManualClock())


def request(*blocks: Mapping[str, object]) -> MessageCreateParams:
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [*blocks, {"type": "text", "text": "Go"}]}],
    }
    return decode_params(msgspec.json.encode(body))


def doc(file_id: str, **extra: object) -> Mapping[str, object]:
    return {"type": "document", "source": {"type": "file", "file_id": file_id}, **extra}


@pytest.mark.anyio
async def test_documents_become_text_and_images_base64(files: FileService) -> None:
    notes = await files.create("ws", "notes.md", "user_data", stream(b"# The word is kiwi"))
    paper = await files.create("ws", "paper.pdf", "user_data", stream(text_pdf("Mango")))
    picture = await files.create("ws", "p.png", "user_data", stream(PNG))
    image = {"type": "image", "source": {"type": "file", "file_id": picture.id}}
    params = request(doc(notes.id, title="Notes"), doc(paper.id), image)
    assert uses_files(params)
    resolved = await resolve_files(params, files, "ws")
    content = resolved.messages[0].content
    assert isinstance(content, list)
    assert content[0] == DocumentBlock(
        TextSource("text/plain", "# The word is kiwi"), title="Notes"
    )
    assert content[1] == DocumentBlock(TextSource("text/plain", "--- page 1 of 1 ---\nMango"))
    assert content[2] == ImageBlock(Base64Source("image/png", base64.b64encode(PNG).decode()))
    assert content[3] == TextBlock("Go")
    assert "body" not in resolved.__dict__  # an upstream re-encodes it, with no file ids


@pytest.mark.anyio
async def test_a_request_without_files_is_left_as_it_is(files: FileService) -> None:
    params = request({"type": "text", "text": "hi"})
    assert not uses_files(params) and await resolve_files(params, files, "ws") is params


@pytest.mark.anyio
async def test_missing_foreign_and_unfit_files_are_invalid_requests(files: FileService) -> None:
    other = await files.create("other", "notes.txt", "user_data", stream(b"theirs"))
    gone = await files.create("ws", "gone.txt", "user_data", stream(b"gone"))
    await files.delete("ws", gone.id)
    picture = await files.create("ws", "p.png", "user_data", stream(PNG))
    text = await files.create("ws", "t.txt", "user_data", stream(b"text"))
    cases: list[tuple[Mapping[str, object], str]] = [
        (doc(other.id), f"no file '{other.id}' in this workspace"),
        (doc(gone.id), f"messages.0.content.0.source.file_id: no file '{gone.id}'"),
        (doc(picture.id), "is image/png, which cannot be a document"),
        ({"type": "image", "source": {"type": "file", "file_id": text.id}}, "cannot be an image"),
    ]
    for block, says in cases:
        with pytest.raises(EngineError, match=says) as caught:
            await resolve_files(request(block), files, "ws")
        assert caught.value.error_type == "invalid_request_error" and not caught.value.retryable
    with pytest.raises(EngineError, match="not available"):
        await resolve_files(request(doc(text.id)), None, "ws")


@pytest.mark.anyio
async def test_documents_inside_tool_results_are_read(files: FileService) -> None:
    notes = await files.create("ws", "n.txt", "user_data", stream(b"inside"))
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "Call f."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [doc(notes.id)]}
                ],
            },
        ],
    }
    resolved = await resolve_files(decode_params(msgspec.json.encode(body)), files, "ws")
    result = resolved.messages[2].content[0]
    assert result.content == [DocumentBlock(TextSource("text/plain", "inside"))]  # type: ignore[union-attr]
