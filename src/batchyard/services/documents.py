"""The text of a document file: text files as they are, PDFs as their pages' text.

Everything here is bounded, because a file is whatever its uploader made it: at most
`MAX_PDF_PAGES` pages, `MAX_DOCUMENT_CHARS` characters of text, `PDF_SECONDS` of
extraction, and pypdf's own limits lowered (`_LIMITS`) so that a decompression bomb
or a deeply nested object stops early. Any failure is a `DocumentError` whose message
can be shown to the caller.
"""

from __future__ import annotations

import io
import time

import pypdf
from pypdf.errors import DependencyError, LimitReachedError, PyPdfError

MAX_PDF_PAGES = 100
"""As the hosted API: a PDF of more pages is refused."""
MAX_DOCUMENT_CHARS = 4_000_000
"""About a million tokens: more text than any model here reads."""
PDF_SECONDS = 20.0
"""Wall-clock time one PDF may take to extract (checked between pages)."""

_STREAM_BYTES = 16 * 1024 * 1024
_LIMITS = pypdf.Configuration(
    maximum_declared_stream_length=_STREAM_BYTES,
    array_based_stream_maximum_output_length=_STREAM_BYTES,
    jbig2_maximum_output_length=_STREAM_BYTES,
    lzw_maximum_output_length=_STREAM_BYTES,
    run_length_maximum_output_length=_STREAM_BYTES,
    zlib_maximum_output_length=_STREAM_BYTES,
    brotli_maximum_output_length=_STREAM_BYTES,
    image_maximum_buffer_size=_STREAM_BYTES,
    stream_decoding_work_maximum_length=4 * _STREAM_BYTES,
    jbig2dec_binary=None,  # never run an external decoder on an upload
)
"""pypdf's resource limits, each a fraction of its default (75 MB a stream)."""

PDF = "application/pdf"
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/jsonl",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
    }
)


class DocumentError(ValueError):
    """The file cannot be read as a document (its message says why, for the caller)."""


def is_text_type(mime_type: str) -> bool:
    """Whether a file of `mime_type` is read as plain text (text/*, JSON, XML, YAML, …)."""
    kind = mime_type.split(";", 1)[0].strip().lower()
    return (
        kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml", "+yaml"))
    )


def readable_type(mime_type: str) -> bool:
    """Whether `document_text` reads files of `mime_type`."""
    return mime_type == PDF or is_text_type(mime_type)


def document_text(data: bytes, mime_type: str) -> str:
    """The text of a document file of `mime_type` (raises DocumentError)."""
    if not data:
        raise DocumentError("the file is empty")
    if mime_type == PDF:
        return pdf_text(data)
    if not is_text_type(mime_type):
        raise DocumentError(
            f"documents of type {mime_type!r} are not supported (PDF and text files are)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"the file is not UTF-8 text (byte {exc.start}); a {mime_type} document must be"
        ) from None
    if len(text) > MAX_DOCUMENT_CHARS:
        raise DocumentError(f"the file has more than {MAX_DOCUMENT_CHARS} characters of text")
    return text


def pdf_text(data: bytes, *, seconds: float = PDF_SECONDS) -> str:
    """Every page's text, each after a `--- page N of M ---` line (raises DocumentError)."""
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise DocumentError("the file is not a PDF (it does not start with %PDF-)")
    deadline = time.monotonic() + seconds
    try:
        with pypdf.apply_configuration(_LIMITS):
            return _pages_text(data, deadline)
    except DocumentError:
        raise
    except DependencyError:
        raise DocumentError("the PDF is encrypted") from None
    except LimitReachedError as exc:
        raise DocumentError(f"the PDF is too large inside ({exc})") from None
    except (PyPdfError, RecursionError, MemoryError) as exc:
        raise DocumentError(f"the PDF cannot be read ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # pypdf meets a malformed file with all kinds of errors
        raise DocumentError(f"the PDF is malformed ({type(exc).__name__}: {exc})") from None


def _pages_text(data: bytes, deadline: float) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise DocumentError("the PDF is encrypted (with a password)")
    count = len(reader.pages)
    if count == 0:
        raise DocumentError("the PDF has no pages")
    if count > MAX_PDF_PAGES:
        raise DocumentError(f"the PDF has {count} pages; at most {MAX_PDF_PAGES} are read")
    parts: list[str] = []
    size = 0
    for number, page in enumerate(reader.pages, 1):
        if time.monotonic() > deadline:
            raise DocumentError(f"the PDF took too long to read (stopped at page {number})")
        page.get_contents()  # extract_text would read a stream over the limits as empty
        text = page.extract_text()
        size += len(text)
        if size > MAX_DOCUMENT_CHARS:
            raise DocumentError(f"the PDF has more than {MAX_DOCUMENT_CHARS} characters of text")
        parts.append(f"--- page {number} of {count} ---\n{text.strip()}")
    return "\n\n".join(parts)
