"""HTML text extraction: ours (BeautifulSoup blocks) against trafilatura, on python3-doc pages.

python3-doc ships each page twice: the reST source (``_sources/<page>.rst.txt``)
and the rendered HTML. That pairing gives a reference for both questions an
extractor answers:

* main content kept: of the source's distinct words that the page renders in
  its main column (``div.body``; reST markup such as directive names never
  renders), the share the extractor's text contains;
* boilerplate dropped: of the words only the navigation, sidebar and footer
  hold (in ``div.related``, ``div.sphinxsidebar``, ``div.footer`` or ``nav`` and
  not in the source), the share the extractor's text still contains.

Speed is pages per second of extraction alone (the bytes are read first).

    PYTHONPATH=. .venv/bin/python -m bench.html_extraction             # 120 pages, evenly spaced
    PYTHONPATH=. .venv/bin/python -m bench.html_extraction --pages 0   # every page with a source

trafilatura is not a project dependency: install it to compare
(``.venv/bin/pip install trafilatura==2.3.1``); without it only ours is measured.
"""

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

from bench.corpus import SOURCES_MARKER, SOURCES_SUFFIX, debian_doc_html, evenly_spaced
from genai_assets.rag.html_text import html_to_text

_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
BOILERPLATE_SELECTORS = ("div.related", "div.sphinxsidebar", "div.footer", "nav")


def words(text: str) -> set[str]:
    """Distinct lower-case words of three or more characters."""
    return set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class Page:
    """One rendered page, its source, and the two reference word sets."""

    html: bytes
    content_words: frozenset[str]
    boilerplate_words: frozenset[str]


def source_of(html_path: Path) -> Path | None:
    """The reST source of a python3-doc page, when the package ships one."""
    text = str(html_path)
    root, marker, _ = text.partition("/html/")
    if not marker:
        return None
    relative = text[len(root) + len(marker) :]
    source = Path(f"{root}/html{SOURCES_MARKER}{relative.removesuffix('.html')}{SOURCES_SUFFIX}")
    return source if source.is_file() else None


def reference(html: bytes, source_text: str) -> Page:
    """The page with the words its main column renders from the source, and its boilerplate."""
    soup = BeautifulSoup(html, "lxml")
    body = soup.select_one("div.body")
    rendered = words(body.get_text(" ")) if body else set()
    source = words(source_text)
    chrome: set[str] = set()
    for selector in BOILERPLATE_SELECTORS:
        for element in soup.select(selector):
            chrome |= words(element.get_text(" "))
    return Page(html, frozenset(source & rendered), frozenset(chrome - source - rendered))


def ours(html: bytes) -> str:
    """The project's extraction (what raw_documents indexes)."""
    return html_to_text(html)[0]


def extractors() -> dict[str, Callable[[bytes], str]]:
    """Ours, and trafilatura's two settings when it is installed."""
    found: dict[str, Callable[[bytes], str]] = {"ours (bs4 blocks)": ours}
    try:
        import trafilatura
    except ImportError:
        print("trafilatura is not installed: measuring ours only", file=sys.stderr)
        return found
    version = trafilatura.__version__
    found[f"trafilatura {version}"] = lambda html: trafilatura.extract(html) or ""
    found[f"trafilatura {version} favor_recall"] = lambda html: (
        trafilatura.extract(html, favor_recall=True, include_tables=True) or ""
    )
    return found


def measure(pages: list[Page], extract: Callable[[bytes], str]) -> dict[str, float]:
    """Mean content recall, mean boilerplate kept, and pages per second."""
    recalls, kept = [], []
    extract(pages[0].html)  # warm-up: lazy imports and caches are not per-page cost
    started = time.perf_counter()
    outputs = [extract(page.html) for page in pages]
    seconds = time.perf_counter() - started
    for page, text in zip(pages, outputs, strict=True):
        found = words(text)
        if page.content_words:
            recalls.append(len(page.content_words & found) / len(page.content_words))
        if page.boilerplate_words:
            kept.append(len(page.boilerplate_words & found) / len(page.boilerplate_words))
    return {
        "content_recall": statistics.fmean(recalls),
        "worst_recall": min(recalls),
        "boilerplate_kept": statistics.fmean(kept) if kept else 0.0,
        "pages_per_s": len(pages) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    """Print one table: every extractor on the same pages."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pages", type=int, default=120, help="pages to use, evenly spaced (0: all)"
    )
    args = parser.parse_args(argv)
    pairs = [(path, source) for path in debian_doc_html() if (source := source_of(path))]
    if not pairs:
        print("python3-doc is not installed (scripts/install_system_deps.sh)", file=sys.stderr)
        return 1
    if args.pages:
        pairs = evenly_spaced(pairs, args.pages)
    pages = [reference(path.read_bytes(), source.read_text()) for path, source in pairs]
    print(f"{len(pages)} python3-doc pages with their reST sources")
    header = (
        f"{'extractor':<34} {'content kept':>12} {'worst page':>10}"
        f" {'boilerplate kept':>16} {'pages/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, extract in extractors().items():
        result = measure(pages, extract)
        print(
            f"{name:<34} {result['content_recall']:>12.1%} {result['worst_recall']:>10.1%}"
            f" {result['boilerplate_kept']:>16.1%} {result['pages_per_s']:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
