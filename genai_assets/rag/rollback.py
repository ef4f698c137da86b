"""Command line: show the blue/green state of the RAG index, or roll the alias back.

    python -m genai_assets.rag.rollback                 # roll 'documents' back one step
    python -m genai_assets.rag.rollback --status        # live, kept collections, history
    python -m genai_assets.rag.rollback --alias documents --url http://qdrant:6333

Where Qdrant is: ``--url`` (default ``$QDRANT_URL``, API key from
``$QDRANT_API_KEY``), else the local folder ``--location`` (default
``$DAGSTER_HOME/storage/qdrant``, the one the code location uses). The same as
``rag_rollback_job`` in Dagster.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence

from qdrant_client import QdrantClient

from genai_assets import settings
from genai_assets.rag.blue_green import BlueGreenError, BlueGreenIndex


def open_client(url: str | None, location: str | None) -> QdrantClient:
    """A Qdrant client for a server URL or a local folder."""
    if url:
        return QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY") or None)
    path = location or str(settings.storage_root() / "qdrant")
    if not os.path.isdir(path):
        raise BlueGreenError(f"no local Qdrant storage at {path}")
    try:
        return QdrantClient(path=path)
    except RuntimeError as error:
        if "already accessed" in str(error):
            raise BlueGreenError(
                f"the local Qdrant storage {path} is open in another process (a running step or "
                "`dagster dev`); stop it or use rag_rollback_job in Dagster"
            ) from error
        raise


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
    parser.add_argument("--location", default=None, help="local Qdrant folder")
    parser.add_argument("--reason", default="rollback from the command line")
    parser.add_argument("--status", action="store_true", help="show the state, change nothing")
    args = parser.parse_args(argv)
    try:
        client = open_client(args.url, args.location)
        try:
            index = BlueGreenIndex(client, args.alias)
            if args.status:
                sys.stdout.write(json.dumps(status(index), indent=2) + "\n")
                return 0
            result = index.rollback(reason=args.reason)
            sys.stdout.write(result.message + "\n")
            return 0
        finally:
            client.close()
    except BlueGreenError as error:
        sys.stderr.write(f"rollback refused: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
