"""Estimated cost from a configurable price table (USD per 1M input/output tokens).

The table is JSON: ``{"models": {"gpt-4o-mini": {"input_per_1m": 0.15,
"output_per_1m": 0.6}, ...}}``. A model is matched exactly, else by the
longest table key it starts with (``gpt-4o-mini-2024-07-18`` uses
``gpt-4o-mini``). A model with no price gives ``None``, never a made-up zero.
"""

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelPrice:
    """USD per one million input and output tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of the given token counts."""
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1e6


def load_price_table(path: Path) -> dict[str, ModelPrice]:
    """Read a price table; raises ``ValueError`` naming the file and the bad entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"price table {path} cannot be read: {error}") from error
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f"price table {path} needs a 'models' object")
    table: dict[str, ModelPrice] = {}
    for model, entry in models.items():
        try:
            table[model] = ModelPrice(
                input_per_1m=float(entry["input_per_1m"]),
                output_per_1m=float(entry["output_per_1m"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"price table {path}: model {model!r} needs numeric 'input_per_1m' and "
                f"'output_per_1m' ({error})"
            ) from error
    return table


def price_for(model: str, table: dict[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model``: an exact entry, else the longest key it starts with."""
    if model in table:
        return table[model]
    prefixes = [key for key in table if model.startswith(key)]
    return table[max(prefixes, key=len)] if prefixes else None
