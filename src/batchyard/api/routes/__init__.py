"""The API's routes, one module per API: `messages` (and count_tokens), `complete` (the
legacy Text Completions), `message_batches`,
`models`, `admin` (the Admin API), and the OpenAI dialect's `chat`, `files` and
`openai_batches`. Each route reads the request, calls a service, encodes its answer."""

from __future__ import annotations

from starlette.routing import BaseRoute

from batchyard.api.routes import (
    admin,
    chat,
    complete,
    files,
    message_batches,
    messages,
    models,
    openai_batches,
)

ROUTES: tuple[BaseRoute, ...] = (
    *message_batches.routes,
    *messages.routes,
    *complete.routes,
    *models.routes,
    *admin.routes,
    *files.routes,
    *chat.routes,
    *openai_batches.routes,
)
"""In the order they are matched."""
