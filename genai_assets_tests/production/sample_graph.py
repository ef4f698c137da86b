"""A small asset graph that exercises every storage format and partitions.

Used by the IO manager tests and by the whole-graph runner's own test. The
values describe the sample product (Skyline Vault by Corvid Systems).
"""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

DOCUMENT_ROWS = [
    {
        "doc_id": "skyvault-cli",
        "text": "Run `skyvault snapshot create` to take a snapshot of a vault.",
        "metadata": {"source": "docs/cli.md", "tags": ["cli", "snapshots"], "size": 61},
    },
    {
        "doc_id": "keystone",
        "text": "Keystone manages the encryption keys; rotate them with `skyvault keys rotate`.",
        "metadata": {"source": "docs/keystone.md", "tags": ["security"], "size": 78},
    },
    {"doc_id": "empty", "text": "", "metadata": {"source": "docs/empty.md", "tags": []}},
]
CORPUS_SUMMARY = {
    "product": "Skyline Vault",
    "documents": 3,
    "by_tag": {"cli": 1, "security": 1, "snapshots": 1},
    "quality_gate": {"passed": True, "threshold": 0.8, "notes": None},
}
CHUNK_FRAME = pd.DataFrame(
    {
        "chunk_id": ["skyvault-cli#0", "keystone#0", "keystone#1"],
        "tokens": np.array([14, 9, 11], dtype="int64"),
        "score": [0.91, 0.75, float("nan")],
    }
)
MODEL_FILES = {
    "config.json": b'{"architectures": ["GPT2LMHeadModel"], "n_layer": 2}',
    "tokenizer/vocab.json": b'{"vault": 0, "snapshot": 1}',
    "weights.bin": bytes(range(256)) * 64,
}
# Keys with characters that must not break storage keys: '.', '/', '%', space.
VAULT_PARTITIONS = ["primary", "retention.policy", "site/secondary", "quota 50%"]


def write_model_folder(folder: Path) -> Path:
    """Write MODEL_FILES under ``folder`` (as a training step would)."""
    for relative, content in MODEL_FILES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def folder_digest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def vault_rows_for(partition: str) -> list[dict[str, Any]]:
    """The rows the partitioned sample asset writes for ``partition``."""
    return [{"vault": partition, "snapshot": i, "bytes": 1000 * (i + 1)} for i in range(3)]


def build_sample_assets(model_source: Path) -> list[dg.AssetsDefinition]:
    """The sample graph; ``model_source`` is where the 'training' step writes its folder."""

    @dg.asset(group_name="storage_sample", kinds={"json"})
    def document_table() -> list[dict[str, Any]]:
        """Nested table rows (stored as JSONL)."""
        return DOCUMENT_ROWS

    @dg.asset(group_name="storage_sample", kinds={"json"})
    def corpus_summary(document_table: list[dict[str, Any]]) -> dict[str, Any]:
        """A JSON document computed from the table."""
        if document_table != DOCUMENT_ROWS:
            raise AssertionError(f"document_table came back as {document_table!r}")
        return CORPUS_SUMMARY

    @dg.asset(group_name="storage_sample", kinds={"pandas"})
    def chunk_frame() -> pd.DataFrame:
        """A DataFrame (stored as Parquet)."""
        return CHUNK_FRAME

    @dg.asset(group_name="storage_sample", kinds={"pytorch"})
    def model_folder() -> Path:
        """A folder of model files."""
        return write_model_folder(model_source)

    @dg.asset(group_name="storage_sample", kinds={"json"})
    def roundtrip_report(
        document_table: list[dict[str, Any]],
        corpus_summary: dict[str, Any],
        chunk_frame: pd.DataFrame,
        model_folder: Path,
    ) -> dict[str, Any]:
        """What the downstream asset received, compared with what was written."""
        return {
            "table_equal": document_table == DOCUMENT_ROWS,
            "summary_equal": corpus_summary == CORPUS_SUMMARY,
            "frame_equal": bool(chunk_frame.equals(CHUNK_FRAME)),
            "frame_dtypes": {name: str(dtype) for name, dtype in chunk_frame.dtypes.items()},
            "folder_is_local_dir": isinstance(model_folder, Path) and model_folder.is_dir(),
            "folder_digest": folder_digest(model_folder),
        }

    vaults = dg.StaticPartitionsDefinition(VAULT_PARTITIONS)

    @dg.asset(group_name="storage_sample", partitions_def=vaults, kinds={"json"})
    def vault_snapshots(context: dg.AssetExecutionContext) -> list[dict[str, Any]]:
        """One table per vault partition."""
        return vault_rows_for(context.partition_key)

    @dg.asset(group_name="storage_sample", partitions_def=vaults, kinds={"json"})
    def vault_snapshot_stats(
        context: dg.AssetExecutionContext, vault_snapshots: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Partition to partition: receives its own partition's rows."""
        if vault_snapshots != vault_rows_for(context.partition_key):
            raise AssertionError(f"got {vault_snapshots!r} for {context.partition_key!r}")
        return {"vault": context.partition_key, "snapshots": len(vault_snapshots)}

    @dg.asset(group_name="storage_sample", kinds={"json"})
    def vault_totals(vault_snapshots: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Unpartitioned downstream: receives every partition as a dict."""
        return {key: sum(row["bytes"] for row in rows) for key, rows in vault_snapshots.items()}

    return [
        document_table,
        corpus_summary,
        chunk_frame,
        model_folder,
        roundtrip_report,
        vault_snapshots,
        vault_snapshot_stats,
        vault_totals,
    ]
