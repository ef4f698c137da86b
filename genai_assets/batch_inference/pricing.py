"""Estimated cost of a batch, priced request by request (USD).

Prices come from one of three sources, chosen by :func:`resolve_price`:

* both prices given explicitly (USD per 1M input and output tokens);
* a table of your own, for models no public table knows (a self-hosted model
  with an internal rate): JSON ``{"models": {"my-model": {"input_per_1m": 0.15,
  "output_per_1m": 0.6}, ...}}``, matched exactly, else by the longest key the
  model name starts with (``my-model-v2`` uses ``my-model``);
* the maintained table of the ``genai-prices`` package (pydantic/genai-prices:
  hundreds of models of OpenAI, Anthropic, Google and others, with dated
  names, price history and context-size tiers, bundled with the package, so
  no network is needed; upgrading the package updates the prices).

Each request is priced on its own, because tiered prices depend on one
request's size (Gemini 2.5 Pro costs twice as much per token above 200k input
tokens), not on the batch's total. A model with no price gives ``None``, never
a made-up zero.
"""

import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Price(Protocol):
    """Prices one request; ``source`` says where the price came from."""

    @property
    def source(self) -> str:
        """Where the price came from, for the materialization's metadata."""
        ...

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of one request with these token counts."""
        ...


@dataclass(frozen=True)
class ModelPrice:
    """Flat USD per one million input and output tokens."""

    input_per_1m: float
    output_per_1m: float
    source: str = "configured prices"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of the given token counts."""
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1e6


@dataclass(frozen=True)
class MaintainedPrice:
    """A model's price in the ``genai-prices`` table, as found by :func:`maintained_price`."""

    model: str
    provider_id: str
    model_id: str

    @property
    def source(self) -> str:
        """The package version and the entry that matched."""
        version = importlib.metadata.version("genai-prices")
        return f"genai-prices {version}: {self.provider_id} {self.model_id}"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of one request, at today's price and the tier its size falls in."""
        from genai_prices import Usage, calc_price

        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        found = calc_price(usage, model_ref=self.model, provider_id=self.provider_id)
        return float(found.total_price)


def maintained_price(model: str) -> MaintainedPrice | None:
    """The ``genai-prices`` entry for ``model``, or ``None`` if it has none.

    A plain name is looked up across providers; a gateway's ``provider/model`` name
    (``openai/gpt-4o-mini``, as LiteLLM and OpenRouter spell them) with that provider.
    """
    # Imported here: its table is a 1.6 MB module (half a second), needed only when a
    # batch is priced, not whenever the code location loads.
    from genai_prices import Usage, calc_price

    provider, _, name = model.rpartition("/")
    for model_ref, provider_id in ((model, None), (name, provider or None)):
        try:
            found = calc_price(
                Usage(input_tokens=0, output_tokens=0),
                model_ref=model_ref,
                provider_id=provider_id,
            )
        except LookupError:  # the package's answer for a model or provider it does not know
            continue
        return MaintainedPrice(model_ref, provider_id=found.provider.id, model_id=found.model.id)
    return None


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
                source=f"price table {path}: {model}",
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"price table {path}: model {model!r} needs numeric 'input_per_1m' and "
                f"'output_per_1m' ({error})"
            ) from error
    return table


def price_for(model: str, table: dict[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model`` in ``table``: an exact entry, else the longest key it starts with."""
    if model in table:
        return table[model]
    prefixes = [key for key in table if model.startswith(key)]
    return table[max(prefixes, key=len)] if prefixes else None


def resolve_price(
    model: str,
    input_per_1m: float | None = None,
    output_per_1m: float | None = None,
    table_path: Path | None = None,
) -> Price | None:
    """The price of ``model``: explicit prices, else your table, else the maintained one.

    Raises:
        ValueError: only one of the two explicit prices is given, or the table is bad.
    """
    if (input_per_1m is None) != (output_per_1m is None):
        raise ValueError(
            "set both the input and the output price per 1M tokens, or neither "
            f"(got input {input_per_1m}, output {output_per_1m})"
        )
    if input_per_1m is not None and output_per_1m is not None:
        return ModelPrice(input_per_1m, output_per_1m, source="configured prices")
    if table_path is not None:
        own = price_for(model, load_price_table(table_path))
        if own is not None:
            return own
    return maintained_price(model)
