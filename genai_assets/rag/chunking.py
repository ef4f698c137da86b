"""Token-aware chunking with the embedding model's own tokenizer.

A chunk never holds more tokens than the model embeds, so nothing is silently
truncated. Breaks go, in order of preference, before a heading, at a paragraph,
at a line or sentence start, at a word start; a token boundary inside a word is
the last resort. Overlap repeats the tail of the previous chunk only where a
chunk was cut inside a paragraph: a chunk that starts at a paragraph or heading
is self-contained.
"""

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Encoding(Protocol):
    """The part of a ``tokenizers.Encoding`` the chunker uses."""

    ids: list[int]
    offsets: list[tuple[int, int]]


class Tokenizer(Protocol):
    """The part of a ``tokenizers.Tokenizer`` the chunker uses (no special tokens added)."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> Encoding: ...  # noqa: D102

    def encode_batch(  # noqa: D102
        self, texts: list[str], add_special_tokens: bool = ...
    ) -> list[Encoding]: ...


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text, where it sits, and its model tokens.

    ``token_ids`` are the chunk text's own token ids (no special tokens): the
    chunker has them from checking the limit, so the model need not tokenise
    the text again.
    """

    index: int
    text: str
    start_char: int
    end_char: int
    token_ids: tuple[int, ...]

    @property
    def n_tokens(self) -> int:
        """The chunk's length in model tokens (special tokens excluded)."""
        return len(self.token_ids)


@dataclass(frozen=True)
class ChunkedDocument:
    """A document's chunks, its length in tokens, and how many of those the chunks cover."""

    chunks: list[Chunk]
    document_tokens: int
    covered_tokens: int


HEADING, PARAGRAPH, LINE, SENTENCE, WORD, ANYWHERE = 5, 4, 3, 2, 1, 0

_PARAGRAPH_START = re.compile(r"\n[ \t]*\n\s*(?=\S)")
_LINE_START = re.compile(r"\n[ \t]*(?=\S)")
_SENTENCE_START = re.compile(r"(?<=[.!?:;])[\"')\]]*\s+(?=\S)")
_MD_HEADING = re.compile(r"#{1,6}\s")
_RST_UNDERLINE = re.compile(r"[^\n]+\n([=\-~^\"'`#*+])\1{2,}[ \t]*(\n|$)")


def _break_scores(text: str) -> dict[int, int]:
    """Preferred break positions (character offsets) and their strength."""
    scores: dict[int, int] = {}
    for pattern, score in ((_SENTENCE_START, SENTENCE), (_LINE_START, LINE)):
        for match in pattern.finditer(text):
            scores[match.end()] = score
    for match in _PARAGRAPH_START.finditer(text):
        start = match.end()
        heading = _MD_HEADING.match(text, start) or _RST_UNDERLINE.match(text, start)
        scores[start] = HEADING if heading else PARAGRAPH
    return scores


def _covered(offsets: list[tuple[int, int]], spans: list[tuple[int, int, object]]) -> int:
    """How many tokens lie wholly inside some chunk's character span."""
    if not offsets or not spans:
        return 0
    token_starts, token_ends = np.asarray(offsets, dtype=np.int64).T
    span_starts, span_ends = np.asarray([(start, end) for start, end, _ in spans]).T
    # Spans are in order and overlap only with their neighbour, so a token can lie only
    # in the first span that ends at or after it, or in the one before that.
    first = np.searchsorted(span_ends, token_ends)
    inside = np.zeros(len(token_starts), dtype=bool)
    for candidate in (first, first - 1):
        valid = (candidate >= 0) & (candidate < len(span_ends))
        index = np.clip(candidate, 0, len(span_ends) - 1)
        inside |= valid & (span_starts[index] <= token_starts) & (token_ends <= span_ends[index])
    return int(inside.sum())


class Chunker:
    """Splits text into chunks of at most ``chunk_tokens`` tokens of ``tokenizer``.

    Args:
        tokenizer: the embedding model's tokenizer (``tokenizers.Tokenizer``) with
            truncation and padding off.
        chunk_tokens: the most tokens in a chunk, special tokens excluded; must not
            exceed what the model embeds.
        overlap_tokens: tokens of the previous chunk repeated at the start of the
            next one when a paragraph had to be cut.
    """

    def __init__(self, tokenizer: Tokenizer, chunk_tokens: int, overlap_tokens: int = 0):
        if chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
        if not 0 <= overlap_tokens < chunk_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be in [0, chunk_tokens/2), got {overlap_tokens} "
                f"for chunk_tokens={chunk_tokens}"
            )
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, text: str) -> list[Chunk]:
        """The chunks of ``text``, in order, each within the token limit."""
        return self.chunk_document(text).chunks

    def chunk_document(self, text: str) -> ChunkedDocument:
        """The chunks of ``text`` and the share of its tokens they cover."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        verified = self._verified(text, self._spans(text, offsets))
        chunks = [
            Chunk(
                index=i,
                text=text[start:end],
                start_char=start,
                end_char=end,
                token_ids=ids,
            )
            for i, (start, end, ids) in enumerate(verified)
        ]
        return ChunkedDocument(chunks, len(offsets), _covered(offsets, verified))

    def _spans(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Character spans of the chunks, chosen in token space."""
        n = len(offsets)
        if n == 0:
            return []
        scores = _break_scores(text)
        starts = [start for start, _ in offsets]
        token_score = [ANYWHERE] * n
        for i in range(1, n):
            if starts[i] > offsets[i - 1][1]:
                token_score[i] = WORD
        for position, score in scores.items():
            i = bisect.bisect_left(starts, position)
            if i < n and starts[i] == position and score > token_score[i]:
                token_score[i] = score

        limit = self.chunk_tokens
        spans = []
        a = 0
        while a < n:
            if n - a <= limit:
                spans.append((starts[a], offsets[n - 1][1]))
                break
            # The next chunk starts at b: the strongest break past the first quarter of
            # the window, the latest one among equals. A quarter, not a half, so that a
            # heading early in the window still starts the next chunk.
            lowest = a + max(1, limit // 4)
            b = max(range(lowest, a + limit + 1), key=lambda i: (token_score[i], i))
            spans.append((starts[a], offsets[b - 1][1]))
            next_start = b
            if self.overlap_tokens and token_score[b] < PARAGRAPH:
                # The overlap starts at its strongest break, the earliest among equals.
                window = range(max(a + 1, b - self.overlap_tokens), b)
                best = max(window, key=lambda i: (token_score[i], -i), default=b)
                if token_score[best] >= WORD:
                    next_start = best
            a = next_start
        return spans

    def _verified(
        self, text: str, spans: list[tuple[int, int]]
    ) -> list[tuple[int, int, tuple[int, ...]]]:
        """Spans with their own token ids, re-split where re-tokenising a slice grew it.

        A slice can tokenise differently from the same tokens inside the whole text
        (a word cut at the edge); checking every chunk makes the limit a guarantee.
        """
        if not spans:
            return []
        encodings = self.tokenizer.encode_batch(
            [text[start:end] for start, end in spans], add_special_tokens=False
        )
        verified = []
        for (start, end), encoding in zip(spans, encodings, strict=True):
            if len(encoding.ids) <= self.chunk_tokens:
                verified.append((start, end, tuple(encoding.ids)))
                continue
            # Rare: cut the slice at its own token boundaries, without overlap.
            inner = Chunker(self.tokenizer, self.chunk_tokens)._spans(
                text[start:end], encoding.offsets
            )
            verified.extend(self._verified(text, [(start + s, start + e) for s, e in inner]))
        return verified
