"""The API's routes, one module per API: `messages` (and count_tokens), `complete` (the
legacy Text Completions), `message_batches`,
`models`, `admin` (the Admin API), and the OpenAI dialect's `chat`, `responses`,
`files` and `openai_batches`. Each route reads the request, calls a service, encodes its answer."""

from __future__ import annotations

from batchyard.api.endpoints import Endpoint, Table
from batchyard.api.routes import (
    admin,
    chat,
    complete,
    files,
    message_batches,
    messages,
    models,
    openai_batches,
    responses,
)

ENDPOINTS: tuple[Endpoint, ...] = (
    *message_batches.endpoints,
    *messages.endpoints,
    *complete.endpoints,
    *models.endpoints,
    *admin.endpoints,
    *files.endpoints,
    *chat.endpoints,
    *openai_batches.endpoints,
    *responses.endpoints,
)
"""In the order they are matched."""

TABLE = Table(ENDPOINTS)
"""The API's endpoints (the application adds its own and the dashboard's)."""
