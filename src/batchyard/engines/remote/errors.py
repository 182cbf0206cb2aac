"""What remote engines share: HTTP failures mapped to EngineError, and AIMD concurrency.

429, 529, 408, 5xx, timeouts and connection errors may be retried (honouring
`retry-after` / `retry-after-ms`); other 4xx are final and keep the upstream's
message under the matching Anthropic error type. Concurrency adapts to 429s
(`AdaptiveLimit`): slow start to the first 429, then gentle probing, so a batch
settles just under the upstream's rate limit without a storm of refusals.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from batchyard.engines.slots import PrioritySlots
from batchyard.errors import EngineError, type_of_status


class Answer(Protocol):
    """An upstream's answer read whole (`http.Reply`; an `httpx.Response` fits too)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def reason_phrase(self) -> str: ...


def retry_after(headers: Mapping[str, str]) -> float | None:
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def upstream_message(response: Answer) -> str:
    """The upstream's own error text (Anthropic or OpenAI error shape, or the raw body)."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        text = response.content[:2000].decode("utf-8", "replace")[:500]
        return text or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return msgspec.json.encode(body).decode()[:500]


def error_for_status(response: Answer, who: str) -> EngineError:
    status = response.status_code
    message = f"{who} answered {status}: {upstream_message(response)}"
    if status == 429:
        return EngineError(
            "rate_limit_error", message, retryable=True, retry_after=retry_after(response.headers)
        )
    if status == 529 or status == 503:
        return EngineError(
            "overloaded_error", message, retryable=True, retry_after=retry_after(response.headers)
        )
    if status == 408 or status == 504:
        return EngineError(
            "timeout_error", message, retryable=True, retry_after=retry_after(response.headers)
        )
    if status >= 500:
        return EngineError(
            "api_error", message, retryable=True, retry_after=retry_after(response.headers)
        )
    return EngineError(type_of_status(status), message, retryable=False)


class Unreachable(EngineError):
    """A call that got no (whole) answer from the server: refused, cut off, timed out."""


def unreachable(exc: BaseException, who: str) -> Unreachable:
    """A call that got no (whole) answer: retryable, a timeout named as one."""
    if isinstance(exc, asyncio.TimeoutError):
        return Unreachable(
            "timeout_error", f"{who} did not answer in time ({exc!r})", retryable=True
        )
    return Unreachable("api_error", f"cannot reach {who} ({exc!r})", retryable=True)


class AdaptiveLimit:
    """Concurrency that finds an upstream's rate limit and holds just under it.

    Like TCP: slow start (one more slot per success, so the limit doubles every
    round trip) until the first 429, which halves it; from then on a 429 storm
    takes `decrease` off (at most once per cooldown) and the limit grows by one
    slot per quiet cooldown period, so it probes the ceiling gently instead of
    sawing through it with a storm of refusals.

    `latency_aware` (for servers that queue instead of refusing, such as vLLM
    without its metrics): the moving latency per output token well above its floor
    (`latency_rise` times the lowest one seen, which drifts up slowly so it follows a
    change of workload) counts as a 429 storm, and the limit grows only while it
    stays near the floor (`latency_near` times it). Per token, as a whole call's
    latency follows the answer's length: short answers then long ones are no
    slow-down. Latency alone never cuts below `start` (only 429s do), so a change of
    workload it misreads cannot starve the engine.
    """

    def __init__(
        self,
        slots: PrioritySlots,
        maximum: int,
        *,
        cooldown: float = 1.0,
        decrease: float = 0.9,
        start: int = 4,
        latency_aware: bool = False,
        latency_rise: float = 2.0,
        latency_near: float = 1.3,
    ) -> None:
        self.slots = slots
        self.maximum = maximum
        self.cooldown = cooldown
        self.decrease = decrease
        self.latency_aware = latency_aware
        self.latency_rise = latency_rise
        self.latency_near = latency_near
        self._limit = float(min(start, maximum))
        self.start = max(1, int(self._limit))
        """The level latency alone never cuts below."""
        self.slots.set_capacity(int(self._limit))
        self._slow_start = True
        self._last_increase = 0.0
        self._last_decrease = 0.0
        self._samples = 0
        self.latency: float | None = None
        """Moving average of successful calls' duration."""
        self.tokens: float | None = None
        """Moving average of their output tokens (1 for a call that did not say)."""
        self.latency_floor: float | None = None
        """The lowest moving latency per token seen (drifting up by 0.05% a call)."""

    @property
    def limit(self) -> int:
        return self.slots.capacity

    def resume_from(self, capacity: int) -> None:
        """Take over at `capacity` (set by another controller), past slow start."""
        self._limit = float(max(1, min(capacity, self.maximum)))
        self._slow_start = False
        self.slots.set_capacity(int(self._limit))

    @property
    def token_latency(self) -> float | None:
        """Moving latency per output token: the moving duration over the moving tokens."""
        if self.latency is None or not self.tokens:
            return None
        return self.latency / self.tokens

    def record(self, elapsed: float, output_tokens: int | None = None) -> None:
        """Take one successful call into the latency figures, without acting on it."""
        tokens = float(max(1, output_tokens or 1))
        if self.latency is None or self.tokens is None:
            self.latency, self.tokens = elapsed, tokens
        else:
            self.latency = 0.9 * self.latency + 0.1 * elapsed
            self.tokens = 0.9 * self.tokens + 0.1 * tokens
        self._samples += 1
        per_token = self.token_latency
        assert per_token is not None
        floor = per_token if self.latency_floor is None else self.latency_floor * 1.0005
        self.latency_floor = min(floor, per_token)

    def _latency_says(self) -> str:
        """'rise', 'near' or 'hold', from the moving latency per token against its floor."""
        per_token, floor = self.token_latency, self.latency_floor
        assert per_token is not None and floor is not None
        if self._samples < 10:  # the moving average is still mostly its first samples
            return "near"
        if per_token > self.latency_rise * floor:
            return "rise"
        return "near" if per_token <= self.latency_near * floor else "hold"

    def on_success(self, elapsed: float, output_tokens: int | None = None) -> None:
        """A call that succeeded in `elapsed` seconds with an answer of `output_tokens`
        (None: not known; the whole call then counts as one token)."""
        self.record(elapsed, output_tokens)
        if self.latency_aware:
            verdict = self._latency_says()
            if verdict == "rise":
                self._decrease(time.monotonic(), floor=float(self.start))
                return
            if verdict == "hold":
                return
        if self._limit >= self.maximum:
            return
        if self._slow_start:
            self._limit = min(self.maximum, self._limit + 1.0)
        else:
            now = time.monotonic()
            quiet_since = max(self._last_increase, self._last_decrease)
            if now - quiet_since < self.cooldown:
                return  # one slot more per quiet cooldown period
            self._last_increase = now
            self._limit = min(self.maximum, self._limit + 1.0)
        self.slots.set_capacity(int(self._limit))

    async def on_rate_limited(self) -> None:
        """Shrink, then keep the caller's slot about as long as an answer takes: a 429
        comes back at once, and a slot freed at once would send the next request
        straight into the same limit (a storm of 429s instead of a steady rate)."""
        self._decrease(time.monotonic())
        await asyncio.sleep(self.latency if self.latency is not None else 0.1)

    def _decrease(self, now: float, floor: float = 1.0) -> None:
        """Cut (at most once per cooldown), to no less than `floor` (but no growth)."""
        if now - self._last_decrease >= self.cooldown or self._slow_start:
            # Leaving slow start, the limit overshot by up to a round trip of
            # doubling: halve it, as TCP does, then step by `decrease`.
            factor = 0.5 if self._slow_start else self.decrease
            self._slow_start = False
            self._last_decrease = now
            self._limit = min(self._limit, max(floor, 1.0, self._limit * factor))
            self.slots.set_capacity(int(self._limit))
