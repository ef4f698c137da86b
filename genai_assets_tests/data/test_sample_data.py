"""The shipped sample data is well-formed and means what the tests of other domains expect.

Reads genai_assets/data directly (no project code), so a broken data file shows
up here and not as a puzzling failure in an ingestion or fine-tuning test.
"""

import hashlib
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
    texts = [document_text(str(p.relative_to(CORPUS))) for p in corpus_files()]
    holders = [text for text in texts if BOILERPLATE in text]
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


ROLES = {"system", "user", "assistant"}


def check_chat_record(record: dict) -> None:
    messages = record["messages"]
    assert [m["role"] for m in messages if m["role"] != "system"][-1] == "assistant"
    for message in messages:
        assert set(message) == {"role", "content"} and message["role"] in ROLES
        assert isinstance(message["content"], str) and message["content"].strip()
    assert sum(m["role"] == "system" for m in messages) <= 1
    assert messages[0]["role"] in {"system", "user"}


def test_chat_training_data():
    path = DATA / "training" / "chat.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 200 <= len(lines) <= 300 and len(set(lines)) == len(lines)
    records = [json.loads(line) for line in lines]
    for record in records:
        assert set(record) == {"messages", "group"} and record["group"]
        check_chat_record(record)
        assistant = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert all(len(answer.split()) <= 60 for answer in assistant)
    two_turn = [r for r in records if sum(m["role"] == "user" for m in r["messages"]) == 2]
    assert 10 <= len(two_turn) < len(records) / 2


def test_instruction_training_data():
    path = DATA / "training" / "instructions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 200 <= len(lines) <= 300 and len(set(lines)) == len(lines)
    records = [json.loads(line) for line in lines]
    for record in records:
        assert set(record) == {"instruction", "input", "response", "group"}
        assert record["instruction"].strip() and record["response"].strip()
        assert isinstance(record["input"], str)
    assert sum(bool(r["input"]) for r in records) >= 20


def test_training_data_agrees_with_the_fact_sheet():
    text = (DATA / "training" / "chat.jsonl").read_text(encoding="utf-8")
    text += (DATA / "training" / "instructions.jsonl").read_text(encoding="utf-8")
    for fact in ("8443", "7443", "9443", "9464", "/etc/skyvault/vault.toml", "SV-4013"):
        assert fact in text
    for wrong in ("port 8080", "/etc/skyline", "vault.yaml", "180 days by default"):
        assert wrong not in text


def turns(record: dict) -> set[str]:
    """Questions and answers of a record in either format, case and spacing ignored."""
    if "messages" in record:
        texts = [m["content"] for m in record["messages"] if m["role"] != "system"]
    else:
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
        texts = [prompt, record["response"]]
    return {" ".join(text.casefold().split()) for text in texts}


def test_fixed_eval_set_is_versioned_and_shares_no_turn_with_the_training_data():
    eval_file = DATA / "eval_sets" / "skyline_v1.jsonl"
    manifest = json.loads(eval_file.with_suffix(".json").read_text(encoding="utf-8"))
    assert manifest["version"] == 1 and manifest["name"] == "skyline"
    assert manifest["sha256"] == hashlib.sha256(eval_file.read_bytes()).hexdigest()
    evaluation = read_jsonl(eval_file)
    assert manifest["records"] == len(evaluation) >= 50
    for record in evaluation:
        check_chat_record(record)
    trained = set()
    for name in ("chat.jsonl", "instructions.jsonl"):
        for record in read_jsonl(DATA / "training" / name):
            trained |= turns(record)
    assert not set().union(*(turns(r) for r in evaluation)) & trained
    # Whole facts are held out: no fact label is on both sides.
    trained_groups = {
        r["group"]
        for n in ("chat.jsonl", "instructions.jsonl")
        for r in read_jsonl(DATA / "training" / n)
    }
    assert not {r["group"] for r in evaluation} & trained_groups


def test_bad_training_file_has_each_kind_of_defect():
    lines = (DATA / "training_bad" / "bad.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[2])
    records = {n: json.loads(line) for n, line in enumerate(lines, start=1) if n != 3}
    assert "messages" not in records[4]
    assert "wizard" in {m["role"] for m in records[5]["messages"]}
    assert records[6]["messages"][-1] == {"role": "assistant", "content": ""}
    assert lines[6] == lines[0]
    assert len(records[8]["messages"][-1]["content"].split()) >= 5000
    for n in (1, 2, 9, 10):
        check_chat_record(records[n])
    for n in (4, 5, 6):
        with pytest.raises((KeyError, AssertionError)):
            check_chat_record(records[n])


def test_sample_prompts():
    items = read_jsonl(DATA / "prompts" / "sample_prompts.jsonl")
    assert len(items) == 40
    assert [item["id"] for item in items] == [f"p{n:03d}" for n in range(1, 41)]
    with_messages = 0
    for item in items:
        assert set(item) <= {"id", "prompt", "messages", "max_tokens", "temperature"}
        assert ("prompt" in item) != ("messages" in item)
        if "prompt" in item:
            assert item["prompt"].strip()
        else:
            with_messages += 1
            assert item["messages"][-1]["role"] == "user"
            assert all(m["role"] in ROLES and m["content"].strip() for m in item["messages"])
        assert isinstance(item.get("max_tokens", 1), int) and item.get("max_tokens", 1) > 0
        assert 0 <= item.get("temperature", 0) <= 2
    assert 5 <= with_messages < 20
    assert sum("max_tokens" in item for item in items) >= 5
