"""Our format-aware IO manager against the same formats on Dagster's ``UPathIOManager``.

Both store the same values the same way (tables as JSONL, dicts as JSON,
DataFrames as Parquet, the entry suffix naming the format), both on the local
backend: the UPath variant is the smallest ``dg.UPathIOManager`` subclass that
keeps our formats (``dump_to_path`` picks the entry by value, ``load_from_path``
probes the entries). Each value is written and read back ``--rounds`` times
through real ``build_output_context`` / ``build_input_context`` calls; the table
gives the median milliseconds of one write + read. A second check interrupts a
write halfway and reports whether a partial object is left at the entry.

    PYTHONPATH=. .venv/bin/python -m bench.io_manager_roundtrip 2>/dev/null
    PYTHONPATH=. .venv/bin/python -m bench.io_manager_roundtrip --rounds 50 2>/dev/null

(stderr carries the test contexts' debug line per write and read.)

S3 is not compared here: UPath reaches S3 through ``s3fs``, whose aiobotocore
pins botocore below the one the project's boto3 (dagster-aws) needs; see the
module docstring of :mod:`genai_assets.io_managers.io_manager`.
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from genai_assets.io_managers import LocalFormatIOManager, formats


class UPathFormatIOManager(dg.UPathIOManager):
    """Our formats on ``UPathIOManager``: the base path carries no extension, the entry does."""

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        """Write ``obj`` to ``path`` + the suffix of its format."""
        fmt = formats.format_for(obj)
        encode = {
            formats.JSONL: formats.encode_jsonl,
            formats.JSON: formats.encode_json,
            formats.PARQUET: formats.encode_parquet,
        }[fmt]
        self.write_entry(path.with_name(path.name + formats.ENTRY_SUFFIXES[fmt]), encode(obj))

    def write_entry(self, entry: UPath, data: bytes) -> None:
        """UPath's own write: in place."""
        entry.write_bytes(data)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        """The value of the first entry that exists next to ``path``."""
        decode = {
            formats.JSONL: formats.decode_jsonl,
            formats.JSON: formats.decode_json,
            formats.PARQUET: formats.decode_parquet,
        }
        for fmt, suffix in formats.ENTRY_SUFFIXES.items():
            entry = path.with_name(path.name + suffix)
            if fmt in decode and entry.exists():
                return decode[fmt](entry.read_bytes())
        raise FileNotFoundError(f"nothing stored at {path}")


class AtomicUPathFormatIOManager(UPathFormatIOManager):
    """The same with our write discipline: a temporary file, fsync, then a rename."""

    def write_entry(self, entry: UPath, data: bytes) -> None:
        """Readers see the old or the new entry, and a crash leaves no part of one."""
        temporary = entry.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{entry.name}")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(entry)


VALUES = {
    "table (200 rows)": [{"id": i, "text": f"chunk {i} " * 20, "score": i / 7} for i in range(200)],
    "dict (small)": {"model": "all-MiniLM-L6-v2", "dim": 384, "scores": [0.9, 0.8, 0.7]},
    "DataFrame (1,000 x 3)": pd.DataFrame(
        {
            "id": range(1000),
            "text": [f"row {i}" for i in range(1000)],
            "x": [i * 0.5 for i in range(1000)],
        }
    ),
}


def round_trip_ms(manager: dg.IOManager, value: Any, rounds: int) -> float:
    """Median milliseconds of one handle_output + load_input of ``value``."""
    key = dg.AssetKey(["bench", "value"])
    timings = []
    for _ in range(rounds):
        # Contexts are built outside the timing: building one costs more than the storage.
        output = dg.build_output_context(asset_key=key)
        input_context = dg.build_input_context(asset_key=key, upstream_output=output)
        started = time.perf_counter()
        manager.handle_output(output, value)
        manager.load_input(input_context)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


class _Interrupted(Exception):
    pass


def partial_object_left(write_entry) -> bool:
    """Whether a write that fails halfway leaves a (partial) object at the entry."""
    first_half = b'{"rows": ['
    with tempfile.TemporaryDirectory() as folder:
        entry = Path(folder) / "value.json"
        with contextlib.suppress(_Interrupted):
            write_entry(entry, first_half)
        return entry.exists()


def _ours_interrupted(entry: Path, first_half: bytes) -> None:
    from genai_assets.io_managers.storage import LocalObjectStore

    def write(handle) -> None:
        handle.write(first_half)
        raise _Interrupted

    LocalObjectStore(entry.parent)._atomic_write(entry.name, write)


def _upath_interrupted(entry: Path, first_half: bytes) -> None:
    with UPath(entry).open("wb") as handle:
        handle.write(first_half)
        raise _Interrupted


def main(argv: list[str] | None = None) -> int:
    """Print the round-trip table and the interrupted-write check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="round trips per value")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as upath_dir:
        managers = {
            "ours (LocalFormatIOManager)": LocalFormatIOManager(base_dir=ours_dir),
            "UPath, in-place writes": UPathFormatIOManager(base_path=UPath(upath_dir)),
            "UPath, atomic writes": AtomicUPathFormatIOManager(base_path=UPath(upath_dir)),
        }
        header = f"{'value':<24}" + "".join(f"{name:>29}" for name in managers)
        print("median ms per write + read, local folder")
        print(header)
        print("-" * len(header))
        for label, value in VALUES.items():
            times = [round_trip_ms(manager, value, args.rounds) for manager in managers.values()]
            print(f"{label:<24}" + "".join(f"{ms:>29.2f}" for ms in times))
    print()
    print("partial object left by a write interrupted halfway:")
    print(f"  ours:  {partial_object_left(_ours_interrupted)}")
    print(f"  UPath: {partial_object_left(_upath_interrupted)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
