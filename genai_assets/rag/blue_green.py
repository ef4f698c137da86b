"""Blue/green serving of versioned Qdrant collections behind one alias.

``document_embeddings`` writes into ``{alias}-{settings fingerprint}``; readers
use the alias. This module moves the alias:

* :meth:`BlueGreenIndex.promote` points the alias at a candidate in ONE
  ``update_collection_aliases`` call (delete + create), so readers never see a
  missing alias or a half-switched state. The collection it replaces is kept;
  of the collections that were once live, the ``keep_previous`` most recently
  retired are kept and older ones deleted. Candidates that never went live are
  never deleted here.
* :meth:`BlueGreenIndex.rollback` points the alias back at the most recently
  retired collection; the one rolled back from is marked ``rolled_back`` and is
  not a rollback target again, so repeated rollbacks walk further back.

The history lives in each versioned collection's own metadata (Qdrant
collection metadata, local mode and servers >= 1.16 alike), under the key
``blue_green``: its status (``live``, ``previous``, ``rolled_back``), when it was
promoted and retired, and its events. Nothing is kept on the local disk, so
every worker and the rollback command see the same history.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qdrant_client import QdrantClient, models

METADATA_KEY = "blue_green"
MAX_EVENTS = 50


class BlueGreenError(RuntimeError):
    """A promotion or rollback that cannot be done; the message says why."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class VersionInfo:
    """A versioned collection of the alias and what its metadata says about it."""

    name: str
    status: str  # "live", "previous", "rolled_back" or "candidate" (never live)
    promoted_at: str | None = None
    retired_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SwapResult:
    """What a promotion or rollback did."""

    action: str  # "promoted", "already_live", "rolled_back"
    alias: str
    live: str
    previous_live: str | None
    kept: list[str]
    deleted: list[str]
    message: str


class BlueGreenIndex:
    """The alias ``alias`` and its versioned collections ``{alias}-<fingerprint>``.

    Args:
        client: an open Qdrant client.
        alias: the name readers use.
        keep_previous: how many once-live collections to keep besides the live one.
    """

    def __init__(self, client: QdrantClient, alias: str, keep_previous: int = 2):
        if keep_previous < 0:
            raise ValueError(f"keep_previous must be >= 0, got {keep_previous}")
        self.client = client
        self.alias = alias
        self.keep_previous = keep_previous
        self._versioned = re.compile(rf"^{re.escape(alias)}-[0-9a-f]{{12}}$")

    def is_versioned(self, collection: str) -> bool:
        """Whether ``collection`` is one of this alias's versioned collections."""
        return bool(self._versioned.match(collection))

    def live(self) -> str | None:
        """The collection the alias points at, or None when there is no alias yet."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.alias:
                return alias.collection_name
        return None

    def _metadata(self, collection: str) -> dict[str, Any]:
        metadata = self.client.get_collection(collection).config.metadata or {}
        return dict(metadata.get(METADATA_KEY) or {})

    def _write(self, collection: str, record: dict[str, Any]) -> None:
        record["events"] = record.get("events", [])[-MAX_EVENTS:]
        self.client.update_collection(collection, metadata={METADATA_KEY: record})

    def versions(self) -> list[VersionInfo]:
        """Every versioned collection of the alias, most recently promoted first."""
        live = self.live()
        infos = []
        for description in self.client.get_collections().collections:
            if not self.is_versioned(description.name):
                continue
            record = self._metadata(description.name)
            status = record.get("status") or "candidate"
            if description.name == live:
                status = "live"
            elif status == "live":  # the alias was moved by someone else
                status = "previous"
            infos.append(
                VersionInfo(
                    name=description.name,
                    status=status,
                    promoted_at=record.get("promoted_at"),
                    retired_at=record.get("retired_at"),
                    events=list(record.get("events", [])),
                )
            )
        live_first = [v for v in infos if v.status == "live"]
        retired = sorted(
            (v for v in infos if v.status != "live" and v.retired_at),
            key=lambda v: v.retired_at,
            reverse=True,
        )
        never = sorted((v for v in infos if v.status != "live" and not v.retired_at), key=_name)
        return live_first + retired + never

    def kept(self) -> list[str]:
        """Once-live collections kept for rollback, most recently retired first."""
        return [v.name for v in self.versions() if v.status in ("previous", "rolled_back")]

    def history(self) -> list[dict[str, Any]]:
        """Every recorded event of the alias's collections, oldest first."""
        events = [
            {**event, "collection": version.name}
            for version in self.versions()
            for event in version.events
        ]
        # A swap writes two events with one timestamp: the new live one's comes first.
        second = {"retired", "rolled_back"}
        return sorted(events, key=lambda e: (e.get("at", ""), e.get("event") in second))

    def _swap(self, target: str, current: str | None) -> None:
        operations: list[Any] = []
        if current is not None:
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=target, alias_name=self.alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def _check_target(self, collection: str) -> None:
        if not self.is_versioned(collection):
            raise BlueGreenError(
                f"{collection!r} is not a versioned collection of alias {self.alias!r} "
                f"(expected {self.alias}-<12 hex digits>)"
            )
        if not self.client.collection_exists(collection):
            raise BlueGreenError(f"collection {collection!r} does not exist")

    def promote(self, candidate: str, reason: str = "") -> SwapResult:
        """Make ``candidate`` live by an atomic alias swap; keep and prune the previous ones."""
        self._check_target(candidate)
        if self.alias in {c.name for c in self.client.get_collections().collections}:
            raise BlueGreenError(
                f"a collection named {self.alias!r} exists, so it cannot be used as an alias; "
                "rename or delete it"
            )
        current = self.live()
        if current == candidate:
            return SwapResult(
                "already_live",
                self.alias,
                candidate,
                current,
                self.kept(),
                [],
                f"{candidate} is already live behind {self.alias!r} (an in-place refresh); "
                "nothing to swap",
            )
        now = _now()
        self._swap(candidate, current)
        record = self._metadata(candidate)
        record.update(status="live", promoted_at=now, retired_at=None)
        record.setdefault("events", []).append(
            {"at": now, "event": "promoted", "replaced": current, "reason": reason}
        )
        self._write(candidate, record)
        if current is not None and self.is_versioned(current):
            old = self._metadata(current)
            old.update(status="previous", retired_at=now)
            old.setdefault("events", []).append({"at": now, "event": "retired", "by": candidate})
            self._write(current, old)
        deleted = self.prune()
        return SwapResult(
            "promoted",
            self.alias,
            candidate,
            current,
            self.kept(),
            deleted,
            f"{self.alias!r} now points at {candidate}"
            + (f" (was {current})" if current else " (first promotion)"),
        )

    def prune(self) -> list[str]:
        """Delete once-live collections beyond the ``keep_previous`` most recently retired."""
        retired = [v for v in self.versions() if v.status in ("previous", "rolled_back")]
        deleted = []
        for version in retired[self.keep_previous :]:
            self.client.delete_collection(version.name)
            deleted.append(version.name)
        return deleted

    def rollback(self, reason: str = "") -> SwapResult:
        """Point the alias back at the most recently retired collection still kept."""
        current = self.live()
        if current is None:
            raise BlueGreenError(f"alias {self.alias!r} does not exist: nothing to roll back")
        targets = [v for v in self.versions() if v.status == "previous"]
        if not targets:
            raise BlueGreenError(
                f"alias {self.alias!r} points at {current} and no previous collection is kept "
                "to roll back to"
            )
        target = targets[0].name
        now = _now()
        self._swap(target, current)
        record = self._metadata(target)
        record.update(status="live", promoted_at=now, retired_at=None)
        record.setdefault("events", []).append(
            {"at": now, "event": "restored", "replaced": current, "reason": reason}
        )
        self._write(target, record)
        if self.is_versioned(current):
            old = self._metadata(current)
            old.update(status="rolled_back", retired_at=now)
            old.setdefault("events", []).append(
                {"at": now, "event": "rolled_back", "by": target, "reason": reason}
            )
            self._write(current, old)
        return SwapResult(
            "rolled_back",
            self.alias,
            target,
            current,
            self.kept(),
            [],
            f"{self.alias!r} rolled back from {current} to {target}",
        )


def _name(version: VersionInfo) -> str:
    return version.name
