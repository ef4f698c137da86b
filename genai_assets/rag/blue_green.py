"""Blue/green serving of versioned collections behind one alias.

``document_embeddings`` writes into ``{alias}-{settings fingerprint}``; readers
use the alias. This module moves the alias:

* :meth:`BlueGreenIndex.promote` points the alias at a candidate. The collection
  it replaces is kept; of the collections that were once live, the
  ``keep_previous`` most recently retired are kept and older ones deleted.
  Candidates that never went live are never deleted here.
* :meth:`BlueGreenIndex.rollback` points the alias back at the most recently
  retired collection; the one rolled back from is marked ``rolled_back`` and is
  not a rollback target again, so repeated rollbacks walk further back.

The history (each once-live collection's status, when it was promoted and
retired, and its events) is ONE record that the store writes together with the
alias in one atomic step (``VectorStore.swap_alias``). A process killed at any
point of a swap leaves the old alias with the old record or the new alias with
the new record, so the next rollback targets the right collection. Every swap
is a compare-and-swap: it names the collection it expects live and is refused
when another promotion or rollback moved the alias first. Deleting collections
beyond ``keep_previous`` comes after the swap, and is redone by the next
promotion if a run dies during it.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genai_assets.rag.vector_store import AliasConflictError, VectorStore

MAX_EVENTS = 50


class AsRead:
    """The default of ``expected``: the collection live when the call reads the alias."""


AS_READ = AsRead()


class BlueGreenError(RuntimeError):
    """A promotion or rollback that cannot be done; the message says why."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class VersionInfo:
    """A versioned collection of the alias and what the alias's record says about it."""

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
        store: an open vector store (either engine).
        alias: the name readers use.
        keep_previous: how many once-live collections to keep besides the live one.
    """

    def __init__(self, store: VectorStore, alias: str, keep_previous: int = 2):
        if keep_previous < 0:
            raise ValueError(f"keep_previous must be >= 0, got {keep_previous}")
        self.store = store
        self.alias = alias
        self.keep_previous = keep_previous
        self._versioned = re.compile(rf"^{re.escape(alias)}-[0-9a-f]{{12}}$")

    def is_versioned(self, collection: str) -> bool:
        """Whether ``collection`` is one of this alias's versioned collections."""
        return bool(self._versioned.match(collection))

    def live(self) -> str | None:
        """The collection the alias points at, or None when there is no alias yet."""
        state = self.store.read_alias(self.alias)
        return state.collection if state else None

    def _state(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        state = self.store.read_alias(self.alias)
        if state is None:
            return None, {}
        versions = state.record.get("versions") or {}
        return state.collection, {name: dict(v) for name, v in versions.items()}

    def versions(self) -> list[VersionInfo]:
        """Every versioned collection of the alias, most recently promoted first."""
        live, records = self._state()
        infos = []
        for name in self.store.list_collections():
            if not self.is_versioned(name):
                continue
            record = records.get(name, {})
            status = "live" if name == live else record.get("status") or "candidate"
            infos.append(
                VersionInfo(
                    name=name,
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

    def _swap(
        self,
        target: str,
        current: str | None,
        records: dict[str, dict[str, Any]],
        target_event: dict[str, Any],
        old_status: str,
        old_event: dict[str, Any],
    ) -> None:
        """Build the new record and swap it in with the alias, expecting ``current`` live.

        ``target_event`` goes on ``target``'s history, ``old_event`` on ``current``'s
        (which takes ``old_status``); both are stamped with the time of the swap.
        """
        now = _now()
        target_event, old_event = {"at": now, **target_event}, {"at": now, **old_event}
        existing = set(self.store.list_collections())
        new = {name: dict(v) for name, v in records.items() if name in existing}
        entry = new.setdefault(target, {})
        entry.update(status="live", promoted_at=now, retired_at=None)
        entry["events"] = [*entry.get("events", []), target_event][-MAX_EVENTS:]
        if current is not None and self.is_versioned(current):
            old = new.setdefault(current, {})
            old.update(status=old_status, retired_at=now)
            old["events"] = [*old.get("events", []), old_event][-MAX_EVENTS:]
        try:
            self.store.swap_alias(self.alias, target, current, {"versions": new})
        except AliasConflictError as error:
            raise BlueGreenError(str(error)) from error

    def _check_expected(self, current: str | None, expected: str | None | AsRead) -> None:
        """Refuse a swap when the alias no longer points where the caller saw it."""
        if not isinstance(expected, AsRead) and expected != current:
            raise BlueGreenError(
                f"alias {self.alias!r} points at {current}, not {expected} as expected: another "
                "promotion or rollback changed it; nothing was changed"
            )

    def _check_target(self, collection: str) -> None:
        if not self.is_versioned(collection):
            raise BlueGreenError(
                f"{collection!r} is not a versioned collection of alias {self.alias!r} "
                f"(expected {self.alias}-<12 hex digits>)"
            )
        if not self.store.collection_exists(collection):
            raise BlueGreenError(f"collection {collection!r} does not exist")

    def promote(
        self, candidate: str, reason: str = "", expected: str | None | AsRead = AS_READ
    ) -> SwapResult:
        """Make ``candidate`` live by an atomic compare-and-swap of the alias.

        ``expected`` is the collection the caller saw live (None: no alias yet); by
        default the one live when this call reads it. The swap is refused when the
        alias points elsewhere by then.
        """
        self._check_target(candidate)
        if self.store.collection_exists(self.alias):
            raise BlueGreenError(
                f"a collection named {self.alias!r} exists, so it cannot be used as an alias; "
                "rename or delete it"
            )
        current, records = self._state()
        if current == candidate:
            # Nothing to swap, whatever was expected. A promotion killed after its swap
            # has not pruned yet: finish that.
            deleted = self.prune()
            return SwapResult(
                "already_live",
                self.alias,
                candidate,
                current,
                self.kept(),
                deleted,
                f"{candidate} is already live behind {self.alias!r} (an in-place refresh); "
                "nothing to swap",
            )
        self._check_expected(current, expected)
        self._swap(
            candidate,
            current,
            records,
            {"event": "promoted", "replaced": current, "reason": reason},
            "previous",
            {"event": "retired", "by": candidate},
        )
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
            self.store.delete_collection(version.name)
            deleted.append(version.name)
        return deleted

    def rollback(self, reason: str = "", expected: str | None | AsRead = AS_READ) -> SwapResult:
        """Point the alias back at the most recently retired collection still kept.

        ``expected``: the collection the caller saw live; by default the one live now.
        """
        current, records = self._state()
        if current is None:
            raise BlueGreenError(f"alias {self.alias!r} does not exist: nothing to roll back")
        self._check_expected(current, expected)
        targets = [v for v in self.versions() if v.status == "previous"]
        if not targets:
            raise BlueGreenError(
                f"alias {self.alias!r} points at {current} and no previous collection is kept "
                "to roll back to"
            )
        target = targets[0].name
        self._swap(
            target,
            current,
            records,
            {"event": "restored", "replaced": current, "reason": reason},
            "rolled_back",
            {"event": "rolled_back", "by": target, "reason": reason},
        )
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
