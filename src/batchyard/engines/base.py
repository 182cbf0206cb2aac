"""The engine contract."""

from __future__ import annotations

from typing import Protocol

from batchyard.wire.messages import Message, MessageCreateParams


class EngineError(Exception):
    """An engine could not answer.

    `error_type` is the Anthropic error type the caller will see; `retryable`
    says whether trying again may help, `retry_after` how long to wait first.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class Engine(Protocol):
    name: str
    capacity: int
    """How many requests the engine serves at once; the scheduler keeps it full."""

    async def create_message(self, params: MessageCreateParams) -> Message: ...

    async def aclose(self) -> None: ...
