"""Summary figures of a batch: counts, tokens, cost, throughput and latency percentiles."""

import math
from collections.abc import Sequence
from typing import Any

from genai_assets.batch_inference.pricing import Price
from genai_assets.batch_inference.results import MALFORMED_INPUT, STATUS_OK


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(
    rows: Sequence[dict[str, Any]],
    *,
    sent_this_run: int,
    attempts_this_run: int,
    errors_this_run: dict[str, int],
    latencies_this_run_s: Sequence[float],
    wall_s: float,
    price: Price | None,
) -> dict[str, Any]:
    """Figures for the materialization: whole-partition totals plus this run's throughput.

    Tokens and cost cover every successful row of the partition (earlier runs
    included); throughput and latency cover the requests this run sent, so they
    are ``None`` for a run that sent nothing (a rate of 0 would read as a stall).
    ``estimated_cost_usd`` is ``None`` when the model has no price.
    """
    ok_rows = [row for row in rows if row["status"] == STATUS_OK]
    input_tokens = sum(row.get("input_tokens") or 0 for row in rows)
    output_tokens = sum(row.get("output_tokens") or 0 for row in rows)
    cost = None
    if price is not None:  # request by request: a tiered price depends on each one's size
        cost = sum(
            price.cost(row.get("input_tokens") or 0, row.get("output_tokens") or 0)
            for row in rows
            if row.get("input_tokens") or row.get("output_tokens")
        )
    return {
        "items_total": len(rows),
        "items_ok": len(ok_rows),
        "items_failed": len(rows) - len(ok_rows),
        "items_malformed": sum(1 for row in rows if row.get("error_type") == MALFORMED_INPUT),
        "items_sent_this_run": sent_this_run,
        "items_resumed": sum(1 for row in rows if row.get("attempts")) - sent_this_run,
        "attempts_this_run": attempts_this_run,
        "retries_this_run": attempts_this_run - sent_this_run,
        "errors_this_run": dict(sorted(errors_this_run.items())),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "estimated_cost_usd": cost,
        "price_source": price.source if price is not None else None,
        "wall_s": round(wall_s, 3) if sent_this_run else None,
        "requests_per_s": round(sent_this_run / wall_s, 3) if sent_this_run and wall_s else None,
        "latency_p50_s": percentile(latencies_this_run_s, 0.5),
        "latency_p95_s": percentile(latencies_this_run_s, 0.95),
    }
