"""Model inputs built from token ids, learnt from a sentence-transformers model's preprocessing."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TokenInputs:
    """Builds a sentence-transformers model's input features from token ids.

    Learnt from the model's own preprocessing of some texts (the special tokens
    around the text's tokens, the padding, the other inputs) and used only if it
    reproduces those features exactly, so the embeddings are the same as from
    ``model.encode`` of the texts.
    """

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pad_id: int
    max_length: int
    token_types: bool
    other: tuple[tuple[str, Any], ...]  # entries that are not tensors (e.g. the modality)

    @classmethod
    def matching(
        cls, model: Any, texts: list[str], token_ids: list[Sequence[int]]
    ) -> "TokenInputs | None":
        """The builder that reproduces ``model.preprocess(texts)`` from ``token_ids``, or None."""
        import torch

        # sentence-transformers 6 calls it preprocess(); 5 called it tokenize().
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        expected = preprocess(texts)
        input_ids, mask = expected.get("input_ids"), expected.get("attention_mask")
        pad_id = getattr(model.tokenizer, "pad_token_id", None)
        if input_ids is None or mask is None or pad_id is None:
            return None
        first = input_ids[0][mask[0].bool()].tolist()
        own = list(token_ids[0])
        start = next(
            (i for i in range(len(first) - len(own) + 1) if first[i : i + len(own)] == own), None
        )
        if start is None:
            return None
        inputs = cls(
            prefix=tuple(first[:start]),
            suffix=tuple(first[start + len(own) :]),
            pad_id=pad_id,
            max_length=model.max_seq_length,
            token_types="token_type_ids" in expected,
            other=tuple((k, v) for k, v in expected.items() if not isinstance(v, torch.Tensor)),
        )
        built = inputs.features(token_ids)
        same = built.keys() == expected.keys() and all(
            torch.equal(value, expected[key])
            if isinstance(value, torch.Tensor)
            else value == expected[key]
            for key, value in built.items()
        )
        return inputs if same else None

    def features(self, token_ids: Sequence[Sequence[int]], multiple: int = 1) -> dict[str, Any]:
        """Padded input features for a batch, truncated as the model's tokenizer truncates.

        ``multiple``: pad to a width that is a multiple of it, at most the model's
        ``max_length`` (the model's own preprocessing pads to the longest row,
        ``multiple=1``).
        """
        import torch

        room = self.max_length - len(self.prefix) - len(self.suffix)
        rows = [(*self.prefix, *ids[:room], *self.suffix) for ids in token_ids]
        # Rounded up to the multiple, but never past the model's limit: positions beyond
        # it may not exist in the model (a limit of 514 rounds up to 528).
        width = min(-(-max(len(row) for row in rows) // multiple) * multiple, self.max_length)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        features: dict[str, Any] = {"input_ids": torch.from_numpy(input_ids)}
        if self.token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        features["attention_mask"] = torch.from_numpy(mask)
        features.update(self.other)
        return features
