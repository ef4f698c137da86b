"""Chunking in model tokens: limits, preferred breaks, overlap, full coverage, stable ids."""

import pytest

from genai_assets.rag.chunking import Chunker
from genai_assets.rag.embedder import PACKAGED_MODEL, load_tokenizer, max_chunk_tokens
from genai_assets.rag.sync import IngestSettings, chunk_point_ids, point_id


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
        + "x" * 3000
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


def test_invalid_settings_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="overlap_tokens"):
        Chunker(tokenizer, 64, 40)
    with pytest.raises(ValueError, match="chunk_tokens"):
        Chunker(tokenizer, 4, 0)


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
