"""Command line: migrate the previous embedded index (qdrant-client local mode) to Qdrant Edge.

    python -m genai_assets.rag.migrate       # $DAGSTER_HOME/storage/qdrant -> storage/index
    python -m genai_assets.rag.migrate --source OLD_FOLDER --target NEW_FOLDER

Every collection is copied with its vectors and payloads (nothing is
re-embedded; each point's BM25 vector is computed from its text, which takes
microseconds a chunk), then the aliases with their blue/green history and the
clean-sync summaries, so the next unchanged run opens neither the index nor the
model. The copy is checked point for point by count; the old folder is then
renamed to ``<name>.migrated`` (delete it once satisfied). A migration that
dies half way leaves the old folder as it was: run the command again.
"""

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from qdrant_client import QdrantClient

from genai_assets import settings
from genai_assets.rag.edge_store import EdgeStore, is_local_mode_folder
from genai_assets.rag.index import chunk_bm25
from genai_assets.rag.vector_store import CollectionSpec, IndexPoint

PAGE = 1024
SUMMARIES = "genai_assets_sync"
OLD_HISTORY_KEY = "blue_green"


def _dimension(client: QdrantClient, name: str) -> int:
    vectors = client.get_collection(name).config.params.vectors
    if isinstance(vectors, dict):
        raise ValueError(f"collection {name} has named vectors {sorted(vectors)}; not ours")
    return vectors.size


def migrate(source: Path, target: Path, report: Callable[[str], object] = print) -> dict[str, int]:
    """Copy every collection, alias and summary of ``source`` into ``target``.

    Returns the number of points copied per collection.

    Raises:
        ValueError: ``source`` is not local-mode storage, or a copy came out short.
    """
    if not is_local_mode_folder(source):
        raise ValueError(f"{source} is not qdrant-client local-mode storage (no meta.json)")
    try:
        client = QdrantClient(path=str(source))
    except RuntimeError as error:
        raise ValueError(f"{source} is open in another process ({error}); stop it first") from error
    store = EdgeStore(target)
    copied: dict[str, int] = {}
    try:
        names = sorted(c.name for c in client.get_collections().collections)
        for name in names:
            started = time.perf_counter()
            if store.collection_exists(name):  # a migration that died: copy it again
                store.delete_collection(name)
            store.create_collection(name, CollectionSpec(_dimension(client, name)))
            offset = None
            while True:
                points, offset = client.scroll(
                    name, limit=PAGE, offset=offset, with_payload=True, with_vectors=True
                )
                store.upsert(
                    name,
                    [
                        IndexPoint(
                            str(p.id),
                            list(p.vector),
                            dict(p.payload or {}),
                            chunk_bm25(p.payload or {}),
                        )
                        for p in points
                    ],
                )
                if offset is None:
                    break
            expected, found = client.count(name, exact=True).count, store.count(name)
            if found != expected:
                raise ValueError(f"{name}: copied {found} of {expected} points; run it again")
            copied[name] = found
            report(f"{name}: {found} points in {time.perf_counter() - started:.1f}s")
        for alias in client.get_aliases().aliases:
            record = {"versions": {}}
            for name in names:
                history = (client.get_collection(name).config.metadata or {}).get(OLD_HISTORY_KEY)
                if history and name.startswith(f"{alias.alias_name}-"):
                    record["versions"][name] = dict(history)
            live = store.read_alias(alias.alias_name)
            store.swap_alias(
                alias.alias_name,
                alias.collection_name,
                live.collection if live else None,
                record,
            )
            report(f"alias {alias.alias_name} -> {alias.collection_name}")
    finally:
        client.close()
        store.close()
    if (source / SUMMARIES).is_dir():
        shutil.copytree(source / SUMMARIES, target / SUMMARIES, dirs_exist_ok=True)
    source.rename(source.with_name(source.name + ".migrated"))
    report(f"done; the old storage is now {source.name}.migrated (delete it once satisfied)")
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m genai_assets.rag.migrate",
        description="Copy the qdrant-client local-mode index into Qdrant Edge (no re-embedding).",
    )
    parser.add_argument("--source", type=Path, default=settings.storage_root() / "qdrant")
    parser.add_argument("--target", type=Path, default=settings.storage_root() / "index")
    args = parser.parse_args(argv)
    try:
        migrate(args.source, args.target, report=lambda line: sys.stdout.write(line + "\n"))
    except ValueError as error:
        sys.stderr.write(f"migration failed: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
