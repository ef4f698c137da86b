"""Unchanged-rerun cost of raw_documents on python3-doc's HTML pages (issue 14, point 5).

Runs ``raw_documents`` three times on a copy of the pages, each in the same
persistent Dagster instance (a temporary DAGSTER_HOME): a first run that parses
every page, an unchanged rerun that must reuse every extraction (the bytes hash
as before), and a rerun after one page was edited. Prints one table of the step
times Dagster recorded (STEP_START to STEP_SUCCESS) and what each run reused.

    PYTHONPATH=. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python -m bench.html_rerun
    ... -m bench.html_rerun --limit 20     # a smoke run on the first 20 pages
    ... -m bench.html_rerun --copies 2     # ~1,000 pages: the corpus twice, under two folders

The target: an unchanged rerun of ~1,000 pages well under 1 s of steps.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.corpus import Corpus, common_root, copy_corpus, debian_doc_html


def step_seconds(instance, run_id: str) -> float:
    """Seconds from the step's start to its success, as the event log recorded them."""
    import dagster as dg

    events = instance.all_logs(run_id)
    start = next(
        e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START
    )
    end = next(
        e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS
    )
    return end - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N pages sorted by path")
    parser.add_argument("--copies", type=int, default=2, help="copies of the pages (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    pages = debian_doc_html()
    if not pages:
        print("python3-doc is not installed: apt-get install -y python3-doc", file=sys.stderr)
        return 2
    root = common_root(pages)
    pages = pages[: args.limit] if args.limit else pages
    work = Path(tempfile.mkdtemp(prefix="html-rerun-"))
    os.environ["DAGSTER_HOME"] = str(work / "home")
    (work / "home").mkdir()
    corpus_dir = work / "corpus"
    corpus = Corpus(root=root, files=tuple(pages), description="python3-doc HTML pages")
    for copy in range(args.copies):
        copy_corpus(corpus, corpus_dir / f"copy{copy}")

    import dagster as dg

    from genai_assets.defs.rag.assets import raw_documents
    from genai_assets.resources.document_store import LocalDocumentStore
    from genai_assets.resources.documents import DocumentSourcesResource

    resources = {
        "document_sources": DocumentSourcesResource(
            sources=[str(corpus_dir)], include=["**/*.html"]
        ),
        "document_store": LocalDocumentStore(),
    }
    n_pages = len(pages) * args.copies
    megabytes = sum(p.stat().st_size for p in corpus_dir.rglob("*.html")) / 1e6
    rows = []
    with dg.DagsterInstance.get() as instance:
        for label, edit in (
            ("first run", None),
            ("unchanged rerun", None),
            ("1 page edited", True),
        ):
            if edit:
                first_page = sorted(corpus_dir.rglob("*.html"))[0]
                html = first_page.read_text()
                first_page.write_text(html.replace("</body>", "<p>Edited.</p></body>", 1))
            result = dg.materialize([raw_documents], resources=resources, instance=instance)
            metadata = result.get_asset_materialization_events()[0].materialization.metadata
            rows.append(
                (
                    label,
                    step_seconds(instance, result.run_id),
                    metadata["documents"].value,
                    metadata["extractions_reused"].value,
                    metadata["texts_written"].value,
                )
            )
    print(f"\nraw_documents on {n_pages} python3-doc HTML pages ({megabytes:.1f} MB), {root}\n")
    print("| run | step s | documents | extractions reused | texts written |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, seconds, docs, reused, written in rows:
        print(f"| {label} | {seconds:.2f} | {docs} | {reused} | {written} |")
    unchanged = rows[1][1]
    print(
        f"\nunchanged rerun: {unchanged:.2f} s of steps (target: well under 1 s for ~1,000 pages)"
    )
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
