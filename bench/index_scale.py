"""Index scale benchmark: Qdrant Edge (our embedded default) against qdrant-client local mode.

    PYTHONPATH=. python -m bench.index_scale                      # 100k and 300k points
    PYTHONPATH=. python -m bench.index_scale --points 2000 --local-max 2000   # a smoke run

Synthetic points with this project's real payload (the fourteen keys
``document_embeddings`` writes: document id, content hash, source, title,
~900 characters of text, its contextual prefix and heading path, chunk index
and count, settings, model, device, dtype, token count), 384-d normalised
vectors (all-MiniLM-L6-v2's size) and, for Qdrant Edge, the BM25 sparse vector
of the prefix and text, written through the
project's own index interface (``VectorStore``). Every phase runs in its own
fresh process, whose peak RSS the harness reads with ``os.wait4``:

* ``build``: create the collection and upsert every point in batches of 1,024
  (upsert points/s, before any vector index is built), then close (Qdrant Edge
  builds its HNSW index at close: "index build s").
* ``open``: open the index and count its points (a rerun's first contact).
* ``query``: 200 dense top-5 queries, then 200 hybrid (dense + BM25, RRF) ones;
  p50 and p95 after 10 warm-up queries.
* ``changed``: a changed rerun: open, upsert 1% new points, delete 1% old ones,
  close; wall time and peak RSS.

qdrant-client local mode runs the sizes up to ``--local-max`` points (default
50,000), and at that size when the others exceed it:
it unpickles the whole storage when it opens and searches by brute force, and
past that it is no longer usable on a laptop. Prints one markdown table; the
targets of issue 16 are printed under it.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

DIMENSION = 384
BATCH = 1024
COLLECTION = "documents-0123456789ab"
WORDS = [
    "snapshot",
    "vault",
    "retention",
    "replication",
    "restore",
    "agent",
    "policy",
    "encryption",
    "key",
    "schedule",
    "volume",
    "backup",
    "quota",
    "monitoring",
    "error",
    "target",
    "region",
    "storage",
    "license",
    "upgrade",
    "console",
    "immutable",
    "window",
    "daily",
    "weekly",
    "offsite",
    "bandwidth",
    "checksum",
    "catalog",
    "tenant",
    "audit",
]


def payload(i: int) -> dict:
    """A payload with the keys and sizes of document_embeddings' (about 1.2 kB of JSON)."""
    rng = random.Random(i)
    text = " ".join(rng.choice(WORDS) for _ in range(120))[:900]
    doc = i // 12
    section = (f"Module {doc}", f"Section {i % 12 // 4}")
    return {
        "doc_id": uuid.UUID(int=doc).hex,
        "source": f"/corpus/library/module-{doc}.rst.txt",
        "title": f"Module {doc}",
        "doc_hash": f"{(doc * 2654435761) % 2**64:016x}" * 4,
        "chunk_count": 12,
        "settings": "0123456789ab",
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
        "embedding_device": "cpu",
        "embedding_dtype": "fp32",
        "chunk_index": i % 12,
        "text": text,
        "context": " > ".join(section) + "\n\n",
        "heading_path": list(section),
        "n_tokens": 200,
    }


def vectors(start: int, count: int) -> np.ndarray:
    rows = np.random.default_rng(start).normal(size=(count, DIMENSION)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def point_id(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{i}"))


def open_store(engine: str, folder: Path):
    from genai_assets.rag.edge_store import EdgeStore
    from genai_assets.rag.server_store import ServerStore

    if engine == "edge":
        return EdgeStore(folder / "edge")
    from qdrant_client import QdrantClient

    (folder / "local").mkdir(parents=True, exist_ok=True)
    return ServerStore(QdrantClient(path=str(folder / "local")), "local mode")


def write(
    store, engine: str, start: int, count: int, time_conversion: bool = False
) -> tuple[float, float]:
    """Upsert points ``start`` .. ``start + count``.

    Returns the seconds spent in upserts and, with ``time_conversion`` (Qdrant Edge),
    the seconds the same batches take to convert to the engine's points alone (timed
    apart, once more).
    """
    from genai_assets.rag.edge_store import edge_points
    from genai_assets.rag.index import chunk_bm25
    from genai_assets.rag.vector_store import IndexPoint

    spent = converting = 0.0
    for first in range(start, start + count, BATCH):
        n = min(BATCH, start + count - first)
        rows = vectors(first, n).tolist()
        points = []
        for j in range(n):
            body = payload(first + j)
            sparse = chunk_bm25(body) if engine == "edge" else None
            points.append(IndexPoint(point_id(first + j), rows[j], body, sparse))
        if time_conversion:
            started = time.perf_counter()
            edge_points(points)
            converting += time.perf_counter() - started
        started = time.perf_counter()
        store.upsert(COLLECTION, points)
        spent += time.perf_counter() - started
    return spent, converting


def phase(engine: str, folder: Path, name: str, points: int) -> dict:
    """Run one phase in this process; returns its figures."""
    # Imports (qdrant-client takes seconds) before any timer, as a running step has them.
    import genai_assets.rag.edge_store  # noqa: F401
    import genai_assets.rag.server_store  # noqa: F401
    from genai_assets.rag.vector_store import CollectionSpec, bm25_query

    result: dict = {}
    started = time.perf_counter()
    if name == "build":
        store = open_store(engine, folder)
        sparse = "qdrant-bm25-en-v1" if engine == "edge" else None
        store.create_collection(COLLECTION, CollectionSpec(DIMENSION, sparse_model=sparse))
        upsert_s, converting_s = write(store, engine, 0, points, engine == "edge")
        closing = time.perf_counter()
        store.close()
        result = {
            "upsert_points_per_s": points / upsert_s,
            "index_build_s": time.perf_counter() - closing,
        }
        if engine == "edge":
            result["conversion_share"] = converting_s / upsert_s
    elif name == "open":
        store = open_store(engine, folder)
        count = store.count(COLLECTION)
        result = {"open_s": time.perf_counter() - started, "count": count}
        store.close()
    elif name == "query":
        store = open_store(engine, folder)
        store.count(COLLECTION)
        queries = vectors(10**9, 210).tolist()
        rng = random.Random(1)
        for mode in ("dense", "hybrid") if engine == "edge" else ("dense",):
            times = []
            for i, vector in enumerate(queries):
                text = " ".join(rng.choice(WORDS) for _ in range(6))
                sparse = bm25_query(text) if mode == "hybrid" else None
                began = time.perf_counter()
                store.query(COLLECTION, mode=mode, dense=vector, sparse=sparse, limit=5)
                if i >= 10:
                    times.append(time.perf_counter() - began)
            result[f"{mode}_p50_ms"] = 1000 * statistics.median(times)
            result[f"{mode}_p95_ms"] = 1000 * statistics.quantiles(times, n=20)[18]
        store.close()
    elif name == "changed":
        store = open_store(engine, folder)
        changed = max(1, points // 100)
        write(store, engine, points, changed)
        store.delete(COLLECTION, [point_id(i) for i in range(changed)])
        store.close()
        result = {"changed_rerun_s": time.perf_counter() - started}
    return result


def run_phase(engine: str, folder: Path, name: str, points: int) -> dict:
    """The phase in a fresh process; adds its peak RSS."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.index_scale",
                "--phase",
                name,
                "--engine",
                engine,
                "--folder",
                str(folder),
                "--points",
                str(points),
                "--out",
                out.name,
            ],
            env=env,
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        if status != 0:
            raise RuntimeError(f"{engine} {name} at {points} points failed (status {status})")
        result = json.loads(Path(out.name).read_text())
    result[f"{name}_peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.index_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--points", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--local-max", type=int, default=50_000, help="largest local-mode run")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        figures = phase(args.engine, Path(args.folder), args.phase, args.points[0])
        Path(args.out).write_text(json.dumps(figures))
        return 0

    rows = []
    # Local mode at every size it can take, and at --local-max where the sizes exceed it.
    local_sizes = sorted({p for p in args.points if p <= args.local_max} | {args.local_max})
    for engine in ("edge", "local"):
        for points in args.points if engine == "edge" else local_sizes:
            folder = Path(tempfile.mkdtemp(prefix=f"index-scale-{engine}-"))
            try:
                row = {"engine": engine, "points": points}
                for name in ("build", "open", "query", "changed"):
                    row.update(run_phase(engine, folder, name, points))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    print(table(rows))
    print(targets(rows))
    return 0


def table(rows: list[dict]) -> str:
    columns = [
        ("engine", "engine", "{}"),
        ("points", "points", "{:,}"),
        ("upsert_points_per_s", "upsert points/s", "{:,.0f}"),
        ("conversion_share", "of which Python to engine conversion", "{:.0%}"),
        ("index_build_s", "index build s", "{:.1f}"),
        ("open_s", "open s", "{:.3f}"),
        ("open_peak_rss_mb", "open RSS MB", "{:.0f}"),
        ("dense_p50_ms", "dense p50 ms", "{:.2f}"),
        ("dense_p95_ms", "dense p95 ms", "{:.2f}"),
        ("hybrid_p50_ms", "hybrid p50 ms", "{:.2f}"),
        ("changed_rerun_s", "1% changed rerun s", "{:.2f}"),
        ("changed_peak_rss_mb", "changed rerun RSS MB", "{:.0f}"),
    ]
    lines = [
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [fmt.format(row[key]) if key in row else "-" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(rows: list[dict]) -> str:
    edge = {row["points"]: row for row in rows if row["engine"] == "edge"}
    lines = ["", "Targets (issue 16), Qdrant Edge:"]
    for points, row in sorted(edge.items()):
        lines.append(
            f"- {points:,} points: open {row['open_s']:.3f} s (<= 0.2), dense query p50 "
            f"{row['dense_p50_ms']:.2f} ms (<= 5), upsert {row['upsert_points_per_s']:,.0f}/s "
            "(>= 20,000)"
        )
    if len(edge) >= 2:
        small, large = min(edge), max(edge)
        ratio = edge[large]["changed_peak_rss_mb"] / edge[small]["changed_peak_rss_mb"]
        lines.append(
            f"- changed-rerun peak RSS {large:,} vs {small:,} points: {ratio:.2f}x (<= 1.3x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
