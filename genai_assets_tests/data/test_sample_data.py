"""The shipped sample data is well-formed and means what the tests of other domains expect.

Reads genai_assets/data directly (no project code), so a broken data file shows
up here and not as a puzzling failure in an ingestion or fine-tuning test.
"""

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pypdf
import pytest
from bs4 import BeautifulSoup

DATA = Path(__file__).resolve().parents[2] / "genai_assets" / "data"
CORPUS = DATA / "sample_corpus"
BAD = DATA / "bad_documents"
FORMATS = {".md", ".rst", ".txt", ".html", ".pdf"}
BOILERPLATE = (
    "Skyline Vault is a product of Corvid Systems. This documentation is provided under the "
    "Corvid Systems Documentation License 2.1. For help, open a case at "
    "support.corvidsystems.example and attach the archive written by skyvault support-bundle."
)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@cache
def document_text(relative: str) -> str:
    """Whitespace-normalised text of a corpus document, as a simple extractor sees it."""
    path = CORPUS / relative
    if path.suffix == ".pdf":
        reader = pypdf.PdfReader(path)
        return normalise("\n".join(page.extract_text() for page in reader.pages))
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        soup = BeautifulSoup(raw, "html.parser")
        for tag in soup(["script", "style", "nav", "noscript"]):
            tag.decompose()
        return normalise(soup.get_text(" "))
    return normalise(raw)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def test_corpus_has_mixed_formats_in_subfolders():
    files = corpus_files()
    assert 30 <= len(files) <= 36
    assert {p.suffix for p in files} == FORMATS
    counts = Counter(p.suffix for p in files)
    assert counts[".pdf"] >= 2 and counts[".html"] >= 3 and counts[".rst"] >= 3
    assert len({p.parent for p in files}) >= 3
    assert not list(CORPUS.glob("*.*")), "documents live in subfolders only"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_document_has_substantial_text(path):
    words = len(document_text(str(path.relative_to(CORPUS))).split())
    assert 150 <= words <= 1600, f"{path.name}: {words} words"


def test_html_noise_is_not_visible_text():
    text = document_text("guides/monitoring.html")
    assert "Monitoring Skyline Vault" in text
    assert "dataLayer" not in text and "font-family" not in text
    assert "Search the docs" not in text  # <nav>
    raw = (CORPUS / "guides/monitoring.html").read_text(encoding="utf-8")
    assert "<script>" in raw and "<style>" in raw and "<nav>" in raw


def test_boilerplate_is_repeated_verbatim():
    holders = [p for p in corpus_files() if BOILERPLATE in document_text(str(p.relative_to(CORPUS)))]
    assert len(holders) >= 5


def test_rst_titles_are_underlined():
    for path in CORPUS.rglob("*.rst"):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert set(lines[1]) == {"="} and len(lines[1]) >= len(lines[0]), path.name


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.pdf")), ids=lambda p: p.name)
def test_pdfs_extract_title_and_spaced_text(path):
    reader = pypdf.PdfReader(path, strict=True)
    first = reader.pages[0].extract_text()
    assert reader.metadata.title and first.startswith(reader.metadata.title)
    assert "Skyline Vault" in first
    # Words are separated by spaces, not run together.
    assert max(len(word) for word in first.split()) < 40


def test_security_whitepaper_has_several_pages():
    assert len(pypdf.PdfReader(CORPUS / "whitepapers/security-whitepaper.pdf").pages) >= 2


GOLDEN = read_jsonl(DATA / "golden_set.jsonl")


def test_golden_set_shape():
    assert 30 <= len(GOLDEN) <= 40
    assert len({item["id"] for item in GOLDEN}) == len(GOLDEN)
    assert len({item["question"] for item in GOLDEN}) == len(GOLDEN)
    for item in GOLDEN:
        assert set(item) == {
            "id",
            "question",
            "reference_answer",
            "relevant_documents",
            "relevant_passages",
        }
        assert item["question"].endswith("?") and item["reference_answer"]
        assert item["relevant_documents"] and item["relevant_passages"]
    answered = {doc for item in GOLDEN for doc in item["relevant_documents"]}
    assert len(answered) >= 25
    assert {Path(doc).suffix for doc in answered} == FORMATS


@pytest.mark.parametrize("item", GOLDEN, ids=lambda item: item["id"])
def test_golden_passages_are_in_their_documents(item):
    texts = {doc: document_text(doc) for doc in item["relevant_documents"]}
    for passage in item["relevant_passages"]:
        assert not re.search(r"[`*]|\[|\]", passage), f"markup in passage {passage!r}"
        assert any(normalise(passage) in text for text in texts.values()), passage
    for doc, text in texts.items():
        assert any(normalise(p) in text for p in item["relevant_passages"]), (
            f"{doc} is listed but none of the passages is in it"
        )


def test_bad_documents_are_bad_in_the_intended_way():
    names = {p.name for p in BAD.iterdir()}
    assert names == {
        "empty.md",
        "blank.txt",
        "binary.md",
        "latin1.txt",
        "broken.pdf",
        "image.png",
        "ok.md",
    }
    assert (BAD / "empty.md").read_bytes() == b""
    blank = (BAD / "blank.txt").read_bytes()
    assert blank and not blank.strip()
    binary = (BAD / "binary.md").read_bytes()
    assert b"\x00" in binary
    for name in ("binary.md", "latin1.txt"):
        with pytest.raises(UnicodeDecodeError):
            (BAD / name).read_bytes().decode("utf-8")
    assert "café" in (BAD / "latin1.txt").read_bytes().decode("latin-1")
    assert (BAD / "broken.pdf").read_bytes().startswith(b"%PDF-")
    with pytest.raises(pypdf.errors.PdfReadError):
        pypdf.PdfReader(BAD / "broken.pdf")
    assert (BAD / "image.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "Skyline Vault" in (BAD / "ok.md").read_text(encoding="utf-8")
