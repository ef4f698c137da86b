"""Which share of a corpus's tokens an embedding model really saw.

A sentence-transformers model truncates every input to ``max_seq_length``
wordpiece tokens (special tokens included). A splitter that cuts by characters
produces chunks longer than that, and the tail of each is silently dropped.
This module measures the share of each document's tokens that fell inside the
embedded (non-truncated) part of at least one chunk, with the model's tokenizer.
"""

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChunkSpan:
    """Where a chunk sits in its document, and how many tokens precede it in the input.

    ``prefix_tokens`` counts tokens the pipeline put in front of the chunk's text in
    the embedded input (LlamaIndex prepends metadata such as the file path).
    """

    start: int
    end: int
    prefix_tokens: int = 0


@dataclass
class TokenShare:
    """Totals over a corpus."""

    corpus_tokens: int = 0
    embedded_tokens: int = 0
    chunks: int = 0
    truncated_chunks: int = 0
    unlocated_chunks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.embedded_tokens / self.corpus_tokens if self.corpus_tokens else 1.0

    def as_dict(self) -> dict:
        return {
            "corpus_tokens": self.corpus_tokens,
            "embedded_tokens": self.embedded_tokens,
            "share": self.share,
            "chunks": self.chunks,
            "truncated_chunks": self.truncated_chunks,
            "unlocated_chunks": self.unlocated_chunks,
        }


def locate_chunks(text: str, chunks: list[str]) -> list[ChunkSpan | None]:
    """Find each chunk in ``text``, in order (chunks may overlap); None if not found."""
    spans: list[ChunkSpan | None] = []
    cursor = 0
    for chunk in chunks:
        stripped = chunk.strip()
        start = text.find(stripped, cursor)
        if start < 0:
            start = text.find(stripped)
        if start < 0 or not stripped:
            spans.append(None)
            continue
        spans.append(ChunkSpan(start, start + len(stripped)))
        cursor = start + 1
    return spans


def _offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(pair) for pair in encoded["offset_mapping"]]


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def add_document(
    totals: TokenShare,
    tokenizer,
    max_seq_length: int,
    text: str,
    spans: list[ChunkSpan | None],
) -> None:
    """Add one document and its chunks to ``totals``.

    Chunks that cannot be located in the document are counted in
    ``unlocated_chunks`` and contribute nothing (a conservative figure).
    """
    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    covered = []
    for span in spans:
        totals.chunks += 1
        if span is None:
            totals.unlocated_chunks += 1
            continue
        keep = budget - span.prefix_tokens
        offsets = _offsets(tokenizer, text[span.start : span.end])
        if len(offsets) <= keep:
            covered.append((span.start, span.end))
            continue
        totals.truncated_chunks += 1
        if keep > 0:
            covered.append((span.start, span.start + offsets[keep - 1][1]))
    merged = _merge(covered)
    starts = [start for start, _ in merged]
    document_offsets = _offsets(tokenizer, text)
    totals.corpus_tokens += len(document_offsets)
    for token_start, token_end in document_offsets:
        index = bisect.bisect_right(starts, token_start) - 1
        if index >= 0 and token_end <= merged[index][1]:
            totals.embedded_tokens += 1
