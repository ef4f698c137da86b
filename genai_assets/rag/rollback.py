"""Command line: show the blue/green state of the RAG index, or roll the alias back.

    python -m genai_assets.rag.rollback                 # roll 'documents' back one step
    python -m genai_assets.rag.rollback --status        # live, kept collections, history
    python -m genai_assets.rag.rollback --expect documents-0123456789ab   # only if that is live
    python -m genai_assets.rag.rollback --alias documents --url http://qdrant:6333

Where the index is: ``--url`` (default ``$QDRANT_URL``, API key from
``$QDRANT_API_KEY``), else the local Qdrant Edge folder ``--location`` (default
``$DAGSTER_HOME/storage/index``, the one the code location uses). The same as
``rag_rollback_job`` in Dagster. A rollback is a compare-and-swap: it is refused
when a promotion moved the alias while the command ran (or, with ``--expect``,
when the alias is not where the caller saw it).
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from genai_assets import settings
from genai_assets.rag.blue_green import AS_READ, BlueGreenError, BlueGreenIndex
from genai_assets.rag.stores import open_store
from genai_assets.rag.vector_store import VectorStore, VectorStoreError


def open_index_store(url: str | None, location: str | None) -> VectorStore:
    """The store of a server URL or of a local Qdrant Edge folder."""
    if url:
        return open_store(url, os.environ.get("QDRANT_API_KEY") or None)
    path = Path(location) if location else settings.storage_root() / "index"
    if not path.is_dir():
        raise BlueGreenError(f"no local index at {path}")
    return open_store(
        folder=path, legacy_folder=None if location else settings.storage_root() / "qdrant"
    )


def status(index: BlueGreenIndex) -> dict:
    """The alias's live collection, its versioned collections and the history."""
    return {
        "alias": index.alias,
        "live": index.live(),
        "collections": [
            {"name": v.name, "status": v.status, "retired_at": v.retired_at}
            for v in index.versions()
        ],
        "history": index.history(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 done, 1 refused or failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m genai_assets.rag.rollback",
        description="Point the RAG serving alias back at the previous collection.",
    )
    parser.add_argument("--alias", default="documents", help="the alias readers use")
    parser.add_argument("--url", default=os.environ.get("QDRANT_URL") or None)
    parser.add_argument("--location", default=None, help="local Qdrant Edge folder")
    parser.add_argument("--reason", default="rollback from the command line")
    parser.add_argument("--expect", default=None, help="roll back only if this one is live")
    parser.add_argument("--status", action="store_true", help="show the state, change nothing")
    args = parser.parse_args(argv)
    try:
        store = open_index_store(args.url, args.location)
        try:
            index = BlueGreenIndex(store, args.alias)
            if args.status:
                sys.stdout.write(json.dumps(status(index), indent=2) + "\n")
                return 0
            expected = args.expect if args.expect else AS_READ
            result = index.rollback(reason=args.reason, expected=expected)
            sys.stdout.write(result.message + "\n")
            return 0
        finally:
            store.close()
    except (BlueGreenError, VectorStoreError) as error:
        sys.stderr.write(f"rollback refused: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
