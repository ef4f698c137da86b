"""Token-aware chunking with the embedding model's own tokenizer.

A chunk never holds more tokens than the model embeds, so nothing is silently
truncated. Breaks go, in order of preference, before a heading, at a paragraph,
at a line or sentence start, at a word start; a token boundary inside a word is
the last resort. Overlap repeats the tail of the previous chunk only where a
chunk was cut inside a paragraph: a chunk that starts at a paragraph or heading
is self-contained.

Two floors keep chunks useful: the last chunk of a document is never shorter
than a quarter of the limit when the document is longer than one chunk (the cut
before it moves back instead of leaving a footer or the end of a code block on
its own), and a chunk never spans more than ``max_chunk_chars`` characters, so a
long run without spaces (which the model sees as one ``[UNK]`` token) is left out
and counted as uncovered instead of becoming one giant chunk.

Every chunk carries the heading path of the section it starts in (reST
underlined titles and Markdown ``#`` headings). With ``contextual=True`` the text
the model embeds is the document title and that path, then the chunk text (see
:func:`contextual_prefix`); the prefix's tokens count against the limit, so the
model still sees every token of every chunk.
"""

import bisect
import re
from collections.abc import Callable
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
    heading_path: tuple[str, ...] = ()
    context: str = ""
    context_token_ids: tuple[int, ...] = ()

    @property
    def n_tokens(self) -> int:
        """The chunk's length in model tokens (special tokens excluded)."""
        return len(self.token_ids)

    @property
    def embed_text(self) -> str:
        """The text the model embeds: the contextual prefix (if any), then the chunk text."""
        return self.context + self.text

    @property
    def embed_token_ids(self) -> tuple[int, ...]:
        """The token ids of :attr:`embed_text`; within the chunker's limit."""
        return self.context_token_ids + self.token_ids


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
# A reST section title: an optional overline, a title line that starts unindented, and
# an underline of one repeated punctuation character; the level follows the order in
# which the (character, overline) styles first appear in the document.
_RST_SECTION = re.compile(
    r"^(?:(?P<over>([=\-~^\"'`#*+])\2{2,})[ \t]*\n)?(?P<title>\S[^\n]*)\n"
    r"(?P<under>([=\-~^\"'`#*+])\5{2,})[ \t]*$",
    re.MULTILINE,
)
_MD_SECTION = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
# Characters per token above which a chunk is capped by characters instead: real text
# runs at 3 to 5 characters per wordpiece; only runs the model reads as [UNK] (a word
# of over 100 characters) come near this.
MAX_CHARS_PER_TOKEN = 16
# A contextual prefix takes at most this share of the token limit; the rest of a long
# heading path is cut.
CONTEXT_SHARE = 4
CONTEXT_SEPARATOR = " > "
# Inline markup in titles, which the model would otherwise read as noise: a role with
# an optional explicit target (:func:`text <target>`), then ``literals`` and `quotes`.
_RST_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)*:`[~!]?([^`<]*?)\s*(?:<[^>`]*>)?`")
_INLINE_LITERAL = re.compile(r"``?([^`]+)``?")


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


def section_headings(text: str) -> list[tuple[int, int, str]]:
    """The section titles of a reST or Markdown text: (character offset, level, title).

    Levels start at 0. A Markdown ``#`` line inside a fenced code block is not a
    heading; a reST title must start unindented, so code in literal blocks is not one.
    """
    headings = []
    styles: dict[tuple[str, bool], int] = {}
    for match in _RST_SECTION.finditer(text):
        over, under = match.group("over"), match.group("under")
        title = match.group("title").strip()
        # docutils wants the underline (and overline) at least as long as the title;
        # checking it keeps "# comment" above a ``` fence from counting as a title.
        if (over and (over[0] != under[0] or len(over) < len(title))) or len(under) < len(title):
            continue
        if set(title) <= set(under[0] + " "):  # a run of the same character is no title
            continue
        style = (under[0], bool(over))
        level = styles.setdefault(style, len(styles))
        headings.append((match.start("over") if over else match.start("title"), level, title))
    fences = [match.start() for match in _MD_FENCE.finditer(text)]
    for match in _MD_SECTION.finditer(text):
        if bisect.bisect_left(fences, match.start()) % 2:  # inside a ``` block
            continue
        headings.append((match.start(), len(match.group("hashes")) - 1, match.group("title")))
    headings.sort()
    return headings


class _HeadingPaths:
    """The heading path in force at any character offset of one text."""

    def __init__(self, text: str):
        self.positions: list[int] = []
        self.paths: list[tuple[str, ...]] = []
        stack: list[tuple[int, str]] = []
        for position, level, title in section_headings(text):
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            self.positions.append(position)
            self.paths.append(tuple(title for _, title in stack))

    def at(self, position: int) -> tuple[str, ...]:
        i = bisect.bisect_right(self.positions, position)
        return self.paths[i - 1] if i else ()


def _plain(title: str) -> str:
    """A title without reST/Markdown inline markup: ``:mod:`bisect``` reads as ``bisect``."""
    return _INLINE_LITERAL.sub(r"\1", _RST_ROLE.sub(r"\1", title)).strip()


def contextual_prefix(title: str | None, heading_path: tuple[str, ...]) -> str:
    """What the model reads before a chunk's text: the document title, the heading path.

    ``Title > Section > Subsection`` and a blank line; the path's first heading is left out when
    it repeats the title; empty when there is neither.
    """
    parts = [_plain(title)] if title and _plain(title) else []
    for heading in map(_plain, heading_path):
        if heading and (not parts or heading != parts[-1]):
            parts.append(heading)
    return CONTEXT_SEPARATOR.join(parts) + "\n\n" if parts else ""


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
        chunk_tokens: the most tokens the model reads per chunk, special tokens
            excluded (the contextual prefix included); must not exceed what the model
            embeds.
        overlap_tokens: tokens of the previous chunk repeated at the start of the
            next one when a paragraph had to be cut.
        max_chunk_chars: the most characters in a chunk; default
            ``chunk_tokens * MAX_CHARS_PER_TOKEN``. A single token longer than this
            (a run the model reads as one ``[UNK]``) is in no chunk and counts as
            uncovered.
        contextual: prefix the text the model embeds with the document title and the
            chunk's heading path (:attr:`Chunk.embed_text`); the stored text is unchanged.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        chunk_tokens: int,
        overlap_tokens: int = 0,
        max_chunk_chars: int | None = None,
        contextual: bool = False,
    ):
        if chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
        if not 0 <= overlap_tokens < chunk_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be in [0, chunk_tokens/2), got {overlap_tokens} "
                f"for chunk_tokens={chunk_tokens}"
            )
        if max_chunk_chars is None:
            max_chunk_chars = chunk_tokens * MAX_CHARS_PER_TOKEN
        if max_chunk_chars < chunk_tokens:
            raise ValueError(
                f"max_chunk_chars must be at least chunk_tokens ({chunk_tokens}), "
                f"got {max_chunk_chars}"
            )
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chunk_chars = max_chunk_chars
        self.contextual = contextual

    def chunk(self, text: str, title: str | None = None) -> list[Chunk]:
        """The chunks of ``text``, in order, each within the token limit."""
        return self.chunk_document(text, title).chunks

    def chunk_document(self, text: str, title: str | None = None) -> ChunkedDocument:
        """The chunks of ``text`` and the share of its tokens they cover.

        ``title`` (the document's) goes into the contextual prefix when the chunker is
        contextual; the heading path of each chunk is found either way.
        """
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        paths = _HeadingPaths(text)
        contexts: dict[tuple[str, ...], tuple[str, tuple[int, ...]]] = {}

        def context_at(position: int) -> tuple[str, tuple[int, ...]]:
            path = paths.at(position)
            if path not in contexts:
                contexts[path] = self._context(title, path) if self.contextual else ("", ())
            return contexts[path]

        def limit_at(position: int) -> int:
            return self.chunk_tokens - len(context_at(position)[1])

        verified = self._verified(text, self._spans(text, offsets, limit_at), limit_at)
        chunks = [
            Chunk(
                index=i,
                text=text[start:end],
                start_char=start,
                end_char=end,
                token_ids=ids,
                heading_path=paths.at(start),
                context=context_at(start)[0],
                context_token_ids=context_at(start)[1],
            )
            for i, (start, end, ids) in enumerate(verified)
        ]
        return ChunkedDocument(chunks, len(offsets), _covered(offsets, verified))

    def _context(self, title: str | None, path: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
        """The contextual prefix for ``path`` and its token ids, within its share of the limit.

        A prefix too long keeps the title and the innermost heading, then the title
        alone, then as many of the title's tokens as fit.
        """
        room = self.chunk_tokens // CONTEXT_SHARE
        candidates = [path, path[-1:], ()] if path else [()]
        for candidate in candidates:
            prefix = contextual_prefix(title, candidate)
            if not prefix:
                return "", ()
            encoding = self.tokenizer.encode(prefix, add_special_tokens=False)
            if len(encoding.ids) <= room:
                return prefix, tuple(encoding.ids)
        cut = prefix[: encoding.offsets[max(room - 1, 0)][1]] + "\n\n"
        return cut, tuple(self.tokenizer.encode(cut, add_special_tokens=False).ids[:room])

    def _spans(
        self,
        text: str,
        offsets: list[tuple[int, int]],
        limit_at: Callable[[int], int] | None = None,
    ) -> list[tuple[int, int]]:
        """Character spans of the chunks, chosen in token space.

        A token longer than ``max_chunk_chars`` cannot be in any chunk: the text on
        either side of it is chunked as if it were a document end.
        """
        scores = _break_scores(text)
        spans: list[tuple[int, int]] = []
        run_start = 0
        for i, (start, end) in enumerate(offsets):
            if end - start > self.max_chunk_chars:
                spans.extend(self._run_spans(scores, offsets[run_start:i], limit_at))
                run_start = i + 1
        spans.extend(self._run_spans(scores, offsets[run_start:], limit_at))
        return spans

    def _run_spans(
        self,
        scores: dict[int, int],
        offsets: list[tuple[int, int]],
        limit_at: Callable[[int], int] | None,
    ) -> list[tuple[int, int]]:
        """The spans of one run of tokens that all fit the character cap."""
        n = len(offsets)
        if n == 0:
            return []
        starts = [start for start, _ in offsets]
        ends = [end for _, end in offsets]
        token_score = [ANYWHERE] * n
        for i in range(1, n):
            if starts[i] > ends[i - 1]:
                token_score[i] = WORD
        for position, score in scores.items():
            i = bisect.bisect_left(starts, position)
            if i < n and starts[i] == position and score > token_score[i]:
                token_score[i] = score

        spans = []
        a = 0
        while a < n:
            limit = limit_at(starts[a]) if limit_at else self.chunk_tokens
            # The chunk may end no later than token a + limit, and no later than the
            # last token that keeps it within max_chunk_chars.
            by_chars = bisect.bisect_right(ends, starts[a] + self.max_chunk_chars)
            upper = min(a + limit, by_chars)
            if n <= upper:
                spans.append((starts[a], ends[n - 1]))
                break
            # The next chunk starts at b: the strongest break past the first quarter of
            # the window, the latest one among equals. A quarter, not a half, so that a
            # heading early in the window still starts the next chunk.
            lowest = min(a + max(1, limit // 4), upper)
            # The last chunk of the text gets at least a quarter of the limit: the cut
            # moves back rather than leave a footer or a code block's end on its own.
            if n - upper < limit // 4:
                upper = max(lowest, n - limit // 4)
            b = max(range(lowest, upper + 1), key=lambda i: (token_score[i], i))
            spans.append((starts[a], ends[b - 1]))
            next_start = b
            if self.overlap_tokens and token_score[b] < PARAGRAPH:
                # The overlap starts at its strongest break, the earliest among equals.
                window = range(max(a + 1, b - self.overlap_tokens), b)
                best = max(window, key=lambda i: (token_score[i], -i), default=b)
                if token_score[best] >= WORD and ends[b - 1] - starts[best] < self.max_chunk_chars:
                    next_start = best
            a = next_start
        return spans

    def _verified(
        self,
        text: str,
        spans: list[tuple[int, int]],
        limit_at: Callable[[int], int],
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
            limit = limit_at(start)
            if len(encoding.ids) <= limit:
                verified.append((start, end, tuple(encoding.ids)))
                continue
            # Rare: cut the slice at its own token boundaries, without overlap.
            inner = Chunker(self.tokenizer, limit, 0, self.max_chunk_chars)._spans(
                text[start:end], encoding.offsets
            )
            verified.extend(
                self._verified(text, [(start + s, start + e) for s, e in inner], limit_at)
            )
        return verified
