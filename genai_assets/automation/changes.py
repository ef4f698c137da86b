"""Which files changed since a sensor's last tick, and the cursor that remembers them.

The cursor is JSON mapping each file's URI to a fingerprint (size and
modification time, or an ETag), so a file triggers exactly one run: on the
tick it appears or changes. The run key is derived from the change set, so a
sensor that is retried or restarted before its cursor was stored asks for
the same run key and Dagster launches nothing twice.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CURSOR_VERSION = 1


def fingerprint(
    size_bytes: int | None, modified_at: str | float | None, etag: str | None = None
) -> str:
    """What identifies one version of a file: its ETag, else size and modification time.

    A source that reports neither (a plain URL) gets a constant fingerprint, so it
    triggers once when it first appears; the schedule refreshes it afterwards.
    """
    if etag:
        return "etag:" + etag.strip('"')
    if size_bytes is None and modified_at is None:
        return "unknown"
    return f"{size_bytes}:{modified_at}"


@dataclass(frozen=True)
class ChangeSet:
    """Files added, changed and removed between two snapshots, each sorted by URI."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    key_material: str

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    @property
    def count(self) -> int:
        """How many files changed in any way."""
        return len(self.added) + len(self.changed) + len(self.removed)

    def run_key(self, prefix: str) -> str:
        """A run key that is the same for the same change set, whatever the tick."""
        digest = hashlib.sha256(self.key_material.encode("utf-8")).hexdigest()[:20]
        return f"{prefix}:{digest}"

    def summary(self, limit: int = 5) -> str:
        """A short human description, e.g. ``2 added (a.md, b.md), 1 removed (c.md)``."""
        parts = []
        for label, uris in (
            ("added", self.added),
            ("changed", self.changed),
            ("removed", self.removed),
        ):
            if uris:
                shown = ", ".join(uri.rsplit("/", 1)[-1] for uri in uris[:limit])
                more = f" and {len(uris) - limit} more" if len(uris) > limit else ""
                parts.append(f"{len(uris)} {label} ({shown}{more})")
        return ", ".join(parts) or "no change"


def diff(previous: Mapping[str, str], current: Mapping[str, str]) -> ChangeSet:
    """The change set from snapshot ``previous`` to snapshot ``current`` (URI -> fingerprint)."""
    added = tuple(sorted(uri for uri in current if uri not in previous))
    changed = tuple(
        sorted(uri for uri in current if uri in previous and previous[uri] != current[uri])
    )
    removed = tuple(sorted(uri for uri in previous if uri not in current))
    material = json.dumps(
        [
            [[uri, current[uri]] for uri in added],
            [[uri, previous[uri], current[uri]] for uri in changed],
            [[uri, previous[uri]] for uri in removed],
        ],
        separators=(",", ":"),
    )
    return ChangeSet(added=added, changed=changed, removed=removed, key_material=material)


def baseline(
    files: Iterable[tuple[str, str, float | None]], materialized_at: float | None
) -> dict[str, str]:
    """The snapshot a sensor without a cursor starts from: what the last run already read.

    ``files`` are ``(uri, fingerprint, modified timestamp)``. With no materialization
    yet the baseline is empty (every file is new). Otherwise every file counts as
    read except one modified after ``materialized_at`` (the start of the run that
    read the files); a file whose source gives no time (a plain URL) counts as read,
    the schedule refreshes it. A file removed since that run is not seen: the
    schedule's full refresh removes it.
    """
    if materialized_at is None:
        return {}
    return {
        uri: print_
        for uri, print_, modified in files
        if modified is None or modified <= materialized_at
    }


def snapshot(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A snapshot from ``(uri, fingerprint)`` pairs; a duplicate URI keeps its first entry."""
    result: dict[str, str] = {}
    for uri, print_ in entries:
        result.setdefault(uri, print_)
    return result


def encode_cursor(files: Mapping[str, str]) -> str:
    """The cursor for a snapshot: compact, key-sorted JSON with a format version."""
    return json.dumps(
        {"version": CURSOR_VERSION, "files": dict(sorted(files.items()))}, separators=(",", ":")
    )


def decode_cursor(cursor: str | None) -> dict[str, str]:
    """The snapshot stored in ``cursor``; an empty snapshot when there is none yet.

    Raises:
        ValueError: when the cursor is not one this module wrote (reset the sensor's
            cursor in the UI to start over).
    """
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError as error:
        raise ValueError(f"sensor cursor is not JSON ({error}); reset the cursor") from error
    if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
        raise ValueError(
            f"sensor cursor has an unknown format (expected version {CURSOR_VERSION}); "
            "reset the cursor"
        )
    files = data.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in files.items()
    ):
        raise ValueError("sensor cursor 'files' must map URIs to fingerprints; reset the cursor")
    return files
