"""What the RAG assets share in their specs and metadata: owners, tables, links, alias swaps."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from genai_assets.defs.automation.domains import RAG_GROUP
from genai_assets.rag.blue_green import SwapResult
from genai_assets.resources.qdrant import QdrantResource

OWNERS = ["team:ml-platform"]


def rag_asset(*, stage: str, **asset_args: Any) -> Any:
    """``@dg.asset`` in the RAG group, with its owners and a ``stage`` tag.

    Every other argument (kinds, retry policy, pool, code version...) is the
    decorator's own, written where the asset is.
    """
    return dg.asset(group_name=RAG_GROUP, owners=OWNERS, tags={"stage": stage}, **asset_args)


SKIPPED_COLUMNS = (("input", "string"), ("reason", "string"))


def table(
    columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, object]]
) -> dg.TableMetadataValue:
    """A table the UI renders with typed, sortable columns.

    Args:
        columns: ``(name, type)`` pairs, the type one of dg.TableColumn's
            (``"string"``, ``"int"``, ``"float"``, ``"bool"``).
        rows: mappings with a value (or None) for every column.
    """
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    records = [dg.TableRecord({name: row.get(name) for name, _ in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def skipped_table(skipped: Sequence[tuple[str, str]], limit: int = 50) -> dg.TableMetadataValue:
    """Skipped inputs and their reasons (the first ``limit``; the count is its own key)."""
    return table(SKIPPED_COLUMNS, ({"input": uri, "reason": why} for uri, why in skipped[:limit]))


def qdrant_location(qdrant: QdrantResource, collection: str) -> dg.MetadataValue:
    """A link to the collection in the Qdrant dashboard, or the local storage folder."""
    if qdrant.url:
        return dg.MetadataValue.url(f"{qdrant.url.rstrip('/')}/dashboard#/collections/{collection}")
    return dg.MetadataValue.path(qdrant.describe())


def swap_metadata(result: SwapResult) -> dict[str, object]:
    """What a promotion or rollback of the serving alias did."""
    return {
        "alias": result.alias,
        "live_collection": result.live,
        "action": result.action,
        "previous_live": result.previous_live or "none",
        "kept_collections": dg.MetadataValue.json(result.kept),
        "deleted_collections": dg.MetadataValue.json(result.deleted),
        "message": result.message,
    }
