"""A multipart upload read as it streams: the file part is counted while it arrives, and
past its limit (the size cap, or the room left in the workspace's quota) reading stops
and the request is answered 413 at once; nothing past the limit is spooled to disk,
and the spooled part is closed (its temporary file removed) whatever happens."""

from __future__ import annotations

from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from batchyard.api.bodies import bodies_of
from batchyard.errors import InvalidRequest, RequestTooLarge

MULTIPART_SLACK = 65536
"""Room for the multipart framing and the form's small fields around the file."""


class _Limited(MultiPartParser):
    """starlette's parser with a cap on the bytes of the file parts (its own caps only
    the other fields)."""

    def __init__(self, headers: Headers, request: Request, limit: int, too_large: RequestTooLarge):
        self.body = bodies_of(request).stream(
            request, limit + MULTIPART_SLACK, too_large, keep=False
        )
        super().__init__(headers, self.body, max_files=1, max_fields=16)
        self.limit = limit
        self.too_large = too_large
        self.file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.limit:
                raise self.too_large
        super().on_part_data(data, start, end)


async def read_form(request: Request, limit: int, too_large: RequestTooLarge) -> FormData:
    """The form, its file part at most `limit` bytes (else `too_large`, raised as soon as
    the part passes it). Close the form when done with it."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("Upload the file as multipart/form-data", param="file")
    parser = _Limited(request.headers, request, limit, too_large)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"file: {exc.message}", param="file") from None
    finally:
        await parser.body.aclose()  # its slot and bytes given back now, not at collection
