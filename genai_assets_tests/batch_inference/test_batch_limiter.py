"""The limiter's own grants, on the real clock with short windows."""

import asyncio
import time

import pytest

from genai_assets.batch_inference.limiter import (
    DEFAULT_OUTPUT_BUDGET,
    RateLimiter,
    estimate_tokens,
)


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def acquire_many(limiter: RateLimiter, count: int, tokens: int, workers: int = 6):
    grants = []

    async def worker(share: int):
        for _ in range(share):
            grants.append(await limiter.acquire(tokens))

    await asyncio.gather(*(worker(count // workers) for _ in range(workers)))
    return grants


def test_requests_per_window_are_capped_and_paced():
    limiter = RateLimiter(requests_per_period=8, period_s=0.4)
    started = time.monotonic()
    grants = asyncio.run(acquire_many(limiter, 24, tokens=1))
    elapsed = time.monotonic() - started
    times = [grant.granted_at for grant in grants]
    assert most_in_any_window(times, 0.4) <= 8
    # Paced on a grid of period / limit (0.05 s), not one burst per window; a late grant
    # may be followed by one made-up slot, never more.
    for index, granted in enumerate(times):
        assert granted - times[0] >= (index - 1) * 0.05 - 1e-3
    assert 22 * 0.05 <= elapsed < 2 * 23 * 0.05


def test_tokens_per_window_are_capped():
    limiter = RateLimiter(tokens_per_period=100, period_s=0.3)
    grants = asyncio.run(acquire_many(limiter, 12, tokens=30))
    times = [grant.granted_at for grant in grants]
    assert most_in_any_window(times, 0.3) <= 3  # 3 x 30 <= 100 < 4 x 30


def test_settling_with_actual_usage_frees_the_window():
    async def scenario():
        limiter = RateLimiter(tokens_per_period=100, period_s=10.0)
        first = await limiter.acquire(90)
        first.settle(10)  # the API said 10 tokens, not 90
        started = time.monotonic()
        await limiter.acquire(80)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0  # not the 10 s the estimate would cost


def test_request_larger_than_the_token_limit_goes_alone_once_the_window_is_empty():
    async def scenario():
        limiter = RateLimiter(tokens_per_period=50, period_s=0.2)
        await limiter.acquire(10)
        started = time.monotonic()
        await limiter.acquire(500)
        return time.monotonic() - started

    assert 0.15 <= asyncio.run(scenario()) < 1.5


def test_pause_for_holds_every_new_request():
    async def scenario():
        limiter = RateLimiter()
        limiter.pause_for(0.2)
        started = time.monotonic()
        await limiter.acquire(1)
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.19


def test_estimate_counts_prompt_characters_and_output_budget():
    messages = [{"role": "user", "content": "x" * 40}]
    assert estimate_tokens(messages, 16) == 10 + 4 + 16
    assert estimate_tokens(messages, None) == 10 + 4 + DEFAULT_OUTPUT_BUDGET
    parts = [{"role": "user", "content": [{"type": "text", "text": "y" * 8}]}]
    assert estimate_tokens(parts, 1) == 2 + 4 + 1


@pytest.mark.parametrize(
    "kwargs",
    [{"requests_per_period": 0}, {"tokens_per_period": -1}, {"period_s": 0}],
)
def test_invalid_limits_are_rejected(kwargs):
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(**kwargs)
