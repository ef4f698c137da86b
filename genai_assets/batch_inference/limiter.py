"""A client-side limiter for requests per period and tokens per period.

Providers publish limits as requests per minute (RPM) and tokens per minute
(TPM). The limiter keeps both within their limit over every sliding window of
``period_s`` seconds (a log of recent grants, so the cap is exact rather than
an average), and paces requests on a grid of ``period_s / requests_per_period``
so that they do not arrive as one burst at the start of each window.

Tokens are estimated before a call (prompt characters / 4 plus the output
budget) and corrected with the usage the API reports afterwards, through the
:class:`Grant` that :meth:`RateLimiter.acquire` returns.
"""

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
DEFAULT_OUTPUT_BUDGET = 256


def estimate_tokens(messages: Any, max_tokens: int | None) -> int:
    """Tokens a request may count against a TPM limit: prompt estimate plus output budget.

    Providers count ``max_tokens`` against the limit when the request arrives, so the
    estimate includes it (``DEFAULT_OUTPUT_BUDGET`` when the request sets none).
    """
    prompt_chars = 0
    count = 0
    for message in messages:
        count += 1
        content = message.get("content", "")
        if isinstance(content, str):
            prompt_chars += len(content)
        else:  # a list of content parts
            prompt_chars += sum(len(str(part.get("text", ""))) for part in content)
    prompt_tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * count
    return prompt_tokens + (max_tokens if max_tokens is not None else DEFAULT_OUTPUT_BUDGET)


@dataclass
class Grant:
    """One request's share of the window; :meth:`settle` replaces the estimate."""

    granted_at: float
    tokens: int
    _limiter: "RateLimiter | None" = field(default=None, repr=False)
    _in_window: bool = field(default=False, repr=False)

    def settle(self, actual_tokens: int) -> None:
        """Replace the estimated tokens with what the API reported."""
        if self._limiter is not None and self._in_window:
            self._limiter._token_total += actual_tokens - self.tokens
        self.tokens = actual_tokens


class RateLimiter:
    """Requests-per-period and tokens-per-period limits over a sliding window.

    Args:
        requests_per_period: Most requests in any window; ``None`` for no limit.
        tokens_per_period: Most tokens (estimated, then actual) in any window; ``None``
            for no limit.
        period_s: The window length: 60 for per-minute limits (shorter in tests).
        clock: A monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        requests_per_period: int | None = None,
        tokens_per_period: int | None = None,
        period_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_period is not None and requests_per_period < 1:
            raise ValueError(f"requests_per_period must be >= 1, got {requests_per_period}")
        if tokens_per_period is not None and tokens_per_period < 1:
            raise ValueError(f"tokens_per_period must be >= 1, got {tokens_per_period}")
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.requests_per_period = requests_per_period
        self.tokens_per_period = tokens_per_period
        self.period_s = period_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._grants: deque[Grant] = deque()
        self._token_total = 0
        self._next_slot = -math.inf
        self._paused_until = -math.inf

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.requests_per_period is not None or self.tokens_per_period is not None

    def pause_for(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (the API said Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _expire(self, now: float) -> None:
        while self._grants and self._grants[0].granted_at <= now - self.period_s:
            grant = self._grants.popleft()
            grant._in_window = False
            self._token_total -= grant.tokens

    def _wait_needed(self, now: float, tokens: int) -> float:
        wait = max(0.0, self._paused_until - now)
        if self.requests_per_period is not None:
            wait = max(wait, self._next_slot - now)
            if len(self._grants) >= self.requests_per_period:
                oldest = self._grants[-self.requests_per_period]
                wait = max(wait, oldest.granted_at + self.period_s - now)
        if self.tokens_per_period is not None and self._grants:
            excess = self._token_total + tokens - self.tokens_per_period
            if excess > 0:
                # Wait until enough of the oldest grants leave the window. A request larger
                # than the whole limit goes alone once the window is empty.
                freed = 0
                expires_at = self._grants[-1].granted_at
                for grant in self._grants:
                    freed += grant.tokens
                    expires_at = grant.granted_at
                    if freed >= excess:
                        break
                wait = max(wait, expires_at + self.period_s - now)
        return wait

    async def acquire(self, tokens: int = 0) -> Grant:
        """Wait until a request of ``tokens`` estimated tokens fits, then record it."""
        if not self.enabled and self._paused_until == -math.inf:
            return Grant(granted_at=self._clock(), tokens=tokens)
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                self._expire(now)
                wait = self._wait_needed(now, tokens)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            grant = Grant(granted_at=now, tokens=tokens, _limiter=self, _in_window=True)
            self._grants.append(grant)
            self._token_total += tokens
            if self.requests_per_period is not None:
                # Slots form a grid, so a grant that is late by less than one interval
                # (scheduling lag) does not push every later slot back; after idle time
                # the grid restarts now instead of making up for missed slots.
                interval = self.period_s / self.requests_per_period
                slot = self._next_slot if self._next_slot >= now - interval else now
                self._next_slot = slot + interval
            return grant
