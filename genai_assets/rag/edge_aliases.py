"""The alias files of the embedded index: a pointer per alias, its history and its lock.

    <root>/aliases/<alias>.json                 the alias: its collection and record
    <root>/aliases/<alias>.history.jsonl        one line per swap, appended after it
    <root>/aliases/<alias>.lock                 held while a swap compares and writes

The alias file is replaced atomically (write a temporary file, fsync, rename,
fsync the folder): a process killed at any point leaves the old pointer or the
new one. The history is the witness that an alias existed, so a lost pointer is
reported instead of silently starting over.
"""

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genai_assets.rag.vector_store import AliasState, DamagedIndexError, check_expected_live

ALIAS_FORMAT = 1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class AliasFiles:
    """The aliases of the store at ``root``; each points at a collection ``collection_exists``.

    The files are read on every call, never cached: another process may swap an
    alias at any time.
    """

    def __init__(self, root: Path, collection_exists: Callable[[str], bool]):
        self.root = root
        self._collection_exists = collection_exists

    def path(self, alias: str, suffix: str) -> Path:
        """One of the alias's files (``.json``, ``.history.jsonl``, ``.lock``)."""
        if not alias or "/" in alias or alias.startswith("."):
            raise ValueError(f"invalid alias name {alias!r}")
        return self.root / "aliases" / f"{alias}{suffix}"

    def read(self, alias: str) -> AliasState | None:
        """The pointer file; a lost or unreadable one is damage."""
        pointer = self.path(alias, ".json")
        history = self.path(alias, ".history.jsonl")
        recover = (
            f"recover: delete {pointer} and {history} and materialize rag_serving_index again "
            "(it promotes the collection that passes the quality gate)"
        )
        try:
            text = pointer.read_text()
        except FileNotFoundError:
            if history.is_file() and history.stat().st_size > 0:
                raise DamagedIndexError(
                    f"the alias pointer {pointer} is missing, but {history} records swaps of "
                    f"alias {alias!r}; {recover}"
                ) from None
            return None
        try:
            data = json.loads(text)
            if data.get("format") != ALIAS_FORMAT or data.get("alias") != alias:
                raise ValueError("not an alias pointer of this format")
            state = AliasState(alias, str(data["collection"]), dict(data.get("record") or {}))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise DamagedIndexError(
                f"the alias pointer {pointer} is unreadable ({error}); {recover}"
            ) from error
        if not self._collection_exists(state.collection):
            raise DamagedIndexError(
                f"the alias pointer {pointer} points at {state.collection!r}, which is not in "
                f"{self.root / 'collections'}; {recover}"
            )
        return state

    @contextmanager
    def _lock(self, alias: str) -> Iterator[None]:
        lock = self.path(alias, ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            # Blocking: a swap takes milliseconds; two swaps run one after the other and
            # the second one's compare step sees what the first one did.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def swap(self, alias: str, target: str, expected: str | None, record: dict[str, Any]) -> None:
        """Compare, then replace the pointer atomically; the history line follows it."""
        with self._lock(alias):
            check_expected_live(alias, self.read(alias), expected)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            pointer = {
                "format": ALIAS_FORMAT,
                "alias": alias,
                "collection": target,
                "swapped_at": now,
                "record": record,
            }
            write_atomically(self.path(alias, ".json"), json.dumps(pointer, indent=1))
            history = self.path(alias, ".history.jsonl")
            with open(history, "a") as handle:
                line = {"at": now, "collection": target, "replaced": expected}
                handle.write(json.dumps(line) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
