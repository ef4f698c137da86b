"""Chunking in model tokens: limits, preferred breaks, overlap, full coverage, stable ids."""

import pytest

from genai_assets.rag.chunking import Chunker, contextual_prefix, section_headings
from genai_assets.rag.model_files import PACKAGED_MODEL, load_tokenizer, max_chunk_tokens
from genai_assets.rag.versioning import IngestSettings, chunk_point_ids, point_id


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(PACKAGED_MODEL)


def n_tokens(tokenizer, text):
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_model_limit_leaves_room_for_special_tokens():
    assert max_chunk_tokens(PACKAGED_MODEL) == 256 - 2


@pytest.mark.parametrize(("chunk_tokens", "overlap"), [(254, 0), (254, 32), (64, 8), (16, 0)])
def test_no_chunk_exceeds_the_limit_and_every_token_is_covered(tokenizer, chunk_tokens, overlap):
    text = (
        "\n\n".join(
            f"## Section {i}\n\n"
            + " ".join(f"Sentence {j} of part {i} mentions snapshots." for j in range(i * 7))
            for i in range(1, 8)
        )
        + "\n\nsupercalifragilisticexpialidocious" * 3
        + " "
        + "x" * 200  # one [UNK] wordpiece (a word over 100 characters), within the char cap
    )
    chunker = Chunker(tokenizer, chunk_tokens, overlap)
    result = chunker.chunk_document(text)
    assert len(result.chunks) > 1
    for chunk in result.chunks:
        assert chunk.n_tokens == n_tokens(tokenizer, chunk.text) <= chunk_tokens
        assert chunk.text == text[chunk.start_char : chunk.end_char]
    assert result.covered_tokens == result.document_tokens
    assert [c.index for c in result.chunks] == list(range(len(result.chunks)))


def test_breaks_prefer_headings_then_paragraphs(tokenizer):
    intro = "Intro. " + "Filler words about vaults. " * 20
    section = "Snapshot details and retention rules apply. " * 30
    text = f"{intro}\n\n## Snapshots\n\n{section}"
    chunks = Chunker(tokenizer, 254, 0).chunk(text)
    assert len(chunks) >= 2
    assert chunks[0].text.endswith("about vaults.")
    assert chunks[1].text.startswith("## Snapshots")


def test_overlap_repeats_the_tail_only_inside_a_cut_paragraph(tokenizer):
    paragraph = " ".join(f"Sentence number {i} describes a restore point." for i in range(80))
    chunks = Chunker(tokenizer, 64, 16).chunk(paragraph)
    assert len(chunks) > 2
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk.start_char < previous.end_char  # overlap
        assert chunk.text.startswith("Sentence number")  # starts at a sentence
    separate = Chunker(tokenizer, 64, 16).chunk(
        "First paragraph. " * 20 + "\n\n" + "Second one. " * 20
    )
    assert separate[1].start_char >= separate[0].end_char  # no overlap across paragraphs


def test_a_short_tail_is_not_left_on_its_own(tokenizer):
    # Two paragraphs (160 tokens) and a one-line footer just overflow one chunk: the
    # latest paragraph break is before the footer, which used to become a 5-token chunk.
    body = "\n\n".join(
        " ".join(f"Point {p}.{i} about restores." for i in range(count))
        for p, count in ((1, 10), (2, 10))
    )
    text = f"{body}\n\nSee also the index."
    assert n_tokens(tokenizer, text) == 165
    result = Chunker(tokenizer, 160, 0).chunk_document(text)
    assert [chunk.n_tokens for chunk in result.chunks] == [80, 85]
    assert result.chunks[1].text.startswith("Point 2.0")  # cut at the earlier paragraph
    assert result.covered_tokens == result.document_tokens


def test_a_megabyte_line_without_spaces_is_capped_by_characters(tokenizer):
    # The model reads a 3 MB word as one [UNK] token: one chunk of 3,000,000 characters
    # with "all" its tokens covered. With the character cap it is in no chunk and the
    # coverage says a token was left out; the text around it is chunked as usual.
    blob = "Q" * 3_000_000
    text = f"Intro paragraph about vaults.\n\n{blob}\n\nClosing paragraph about snapshots."
    chunker = Chunker(tokenizer, 254, 32)
    result = chunker.chunk_document(text)
    assert [chunk.text for chunk in result.chunks] == [
        "Intro paragraph about vaults.",
        "Closing paragraph about snapshots.",
    ]
    assert all(len(chunk.text) <= chunker.max_chunk_chars for chunk in result.chunks)
    assert result.covered_tokens == result.document_tokens - 1
    only_blob = chunker.chunk_document(blob)
    assert only_blob.chunks == []
    assert (only_blob.covered_tokens, only_blob.document_tokens) == (0, 1)


def test_long_wordy_text_is_cut_within_the_character_cap(tokenizer):
    words = " ".join("a" * 90 for _ in range(200))  # 90-char words: many wordpieces each
    chunker = Chunker(tokenizer, 254, 0, max_chunk_chars=1000)
    result = chunker.chunk_document(words)
    assert len(result.chunks) > 1
    assert all(len(chunk.text) <= 1000 for chunk in result.chunks)
    assert result.covered_tokens == result.document_tokens


RST = """\
=====================
Logging in the vault
=====================

Intro to the vault logs.

Handlers
========

Text about handlers.

Rotating files
--------------

How files rotate::

    # not a heading, an indented literal block
    rotate()

Filters
=======

Text about filters.
"""


def test_chunks_carry_the_heading_path_of_their_section(tokenizer):
    assert [(level, title) for _, level, title in section_headings(RST)] == [
        (0, "Logging in the vault"),
        (1, "Handlers"),
        (2, "Rotating files"),
        (1, "Filters"),
    ]
    chunks = Chunker(tokenizer, 12, 0).chunk(RST)

    def path_of(snippet):
        return next(chunk.heading_path for chunk in chunks if snippet in chunk.text)

    assert path_of("Intro to the vault logs.") == ("Logging in the vault",)
    assert path_of("rotate()") == ("Logging in the vault", "Handlers", "Rotating files")
    assert path_of("Text about filters.") == ("Logging in the vault", "Filters")


def test_markdown_headings_outside_code_fences():
    text = "# Guide\n\n## Setup\n\n```sh\n# a shell comment\n```\n\n### Details\n"
    assert [(level, title) for _, level, title in section_headings(text)] == [
        (0, "Guide"),
        (1, "Setup"),
        (2, "Details"),
    ]


def test_contextual_prefix():
    assert contextual_prefix("Logging", ("Logging", "Handlers")) == "Logging > Handlers\n\n"
    assert contextual_prefix(None, ("Handlers",)) == "Handlers\n\n"
    assert contextual_prefix(None, ()) == ""
    # Inline markup in reST titles is dropped: the model reads the words.
    assert (
        contextual_prefix(":mod:`bisect` --- Array bisection", ("Using ``insort``",))
        == "bisect --- Array bisection > Using insort\n\n"
    )
    assert contextual_prefix(None, (":func:`sorted <python:sorted>` keys",)) == "sorted keys\n\n"


@pytest.mark.parametrize("chunk_tokens", [254, 32])
def test_contextual_chunks_fit_the_limit_with_their_prefix(tokenizer, chunk_tokens):
    text = RST + "\n\n".join(
        " ".join(f"Filter rule {i}.{j} drops noisy records." for j in range(9)) for i in range(12)
    )
    chunker = Chunker(tokenizer, chunk_tokens, 4, contextual=True)
    result = chunker.chunk_document(text, title="Logging in the vault")
    assert len(result.chunks) > 1
    for chunk in result.chunks:
        assert chunk.text == text[chunk.start_char : chunk.end_char]  # stored text unchanged
        full = contextual_prefix("Logging in the vault", chunk.heading_path)
        if n_tokens(tokenizer, full) <= chunk_tokens // 4:
            assert chunk.context == full
        else:  # too long for its quarter of the limit: the title and the innermost heading
            assert chunk.context == contextual_prefix(
                "Logging in the vault", chunk.heading_path[-1:]
            )
        assert chunk.embed_text.startswith("Logging in the vault")
        assert len(chunk.embed_token_ids) <= chunk_tokens
        # The ids the model gets are exactly those of the text it is said to embed.
        assert (
            list(chunk.embed_token_ids)
            == tokenizer.encode(chunk.embed_text, add_special_tokens=False).ids
        )
    assert result.covered_tokens == result.document_tokens
    plain = Chunker(tokenizer, chunk_tokens, 4).chunk(text)
    assert all(chunk.context == "" and chunk.embed_text == chunk.text for chunk in plain)


def test_invalid_settings_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="overlap_tokens"):
        Chunker(tokenizer, 64, 40)
    with pytest.raises(ValueError, match="chunk_tokens"):
        Chunker(tokenizer, 4, 0)
    with pytest.raises(ValueError, match="max_chunk_chars"):
        Chunker(tokenizer, 64, 0, max_chunk_chars=10)


def test_point_ids_are_stable_and_content_derived():
    runs_at = {"model_revision": "r1", "device": "cpu", "dtype": "fp32"}
    fingerprint = IngestSettings(PACKAGED_MODEL, 254, 32, **runs_at).fingerprint()
    assert fingerprint == IngestSettings(PACKAGED_MODEL, 254, 32, **runs_at).fingerprint()
    assert fingerprint != IngestSettings(PACKAGED_MODEL, 128, 32, **runs_at).fingerprint()
    a = point_id("doc", fingerprint, "text", 0)
    assert a == point_id("doc", fingerprint, "text", 0)
    assert a != point_id("doc2", fingerprint, "text", 0)
    assert a != point_id("doc", fingerprint, "text!", 0)
    assert a != point_id("doc", "other", "text", 0)


def test_repeated_chunk_texts_in_one_document_get_distinct_ids(tokenizer):
    text = "A paragraph repeated verbatim, word for word.\n\n" * 3
    chunks = Chunker(tokenizer, 12, 0).chunk(text)
    ids = chunk_point_ids("doc", "fp", chunks)
    assert [c.text for c in chunks] == ["A paragraph repeated verbatim, word for word."] * 3
    assert len(set(ids)) == len(ids) == 3
    assert ids == chunk_point_ids("doc", "fp", chunks)
