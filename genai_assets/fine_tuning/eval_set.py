"""The fixed, versioned evaluation set of the promotion gate (no dagster import).

The gate compares candidate and champion on this set, not on the held-out split
of the new training data: new data cannot change what "better" means (a model
trained on garbage looks good on a garbage split). An evaluation set is a JSONL
file of chat records beside a manifest ``<name>.json`` that gives its name,
version and the sha256 of the JSONL file. Loading checks the hash, so the file
cannot change under an old version: a new set is a new version, recorded in
every eval report with its hash. The shipped set is
``genai_assets/data/eval_sets/skyline_v1.jsonl`` (``scripts/make_training_data.py``
writes it from facts the shipped training data holds out).
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from genai_assets import settings
from genai_assets.fine_tuning import dataset as ds

DEFAULT_EVAL_SET = settings.PACKAGE_DATA / "eval_sets" / "skyline_v1.jsonl"


@dataclass(frozen=True)
class EvalSet:
    """A loaded evaluation set: its identity and its records (``id`` and ``messages``)."""

    path: str
    name: str
    version: int
    sha256: str
    records: list[dict] = field(repr=False)

    @property
    def label(self) -> str:
        """``name vN (sha256 prefix)``, as shown in reports."""
        return f"{self.name} v{self.version} ({self.sha256[:12]})"

    def reserved_turns(self) -> set[str]:
        """Its questions and answers, normalised: what no training record may repeat."""
        return set().union(*(ds.turn_keys(record["messages"]) for record in self.records))

    def identity(self) -> dict[str, object]:
        """What the eval report records about the set."""
        return {
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "records": len(self.records),
        }


def manifest_path(path: Path) -> Path:
    """The manifest beside an evaluation set file."""
    return Path(path).with_suffix(".json")


def load_eval_set(path: Path | str) -> EvalSet:
    """Read and verify an evaluation set.

    Raises:
        FileNotFoundError: when the file or its manifest is missing.
        ValueError: when the file's sha256 differs from the manifest's (changed without a
            new version), or a record is not a valid conversation.
    """
    path = Path(path)
    manifest_file = manifest_path(path)
    if not manifest_file.exists():
        raise FileNotFoundError(
            f"evaluation set {path} has no manifest {manifest_file} (name, version, sha256)"
        )
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest["sha256"]:
        raise ValueError(
            f"evaluation set {path} changed: its sha256 is {digest[:12]}, the manifest of "
            f"version {manifest['version']} says {manifest['sha256'][:12]}; a changed set needs "
            "a new version (write it with genai_assets.fine_tuning.eval_set.write_eval_set)"
        )
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = ds.normalise(json.loads(line))
        except (json.JSONDecodeError, ds.InvalidRecord) as error:
            raise ValueError(f"evaluation set {path} line {number}: {error}") from error
        records.append({"id": ds.record_id(messages), "messages": messages})
    if not records:
        raise ValueError(f"evaluation set {path} has no records")
    return EvalSet(str(path), manifest["name"], int(manifest["version"]), digest, records)


def write_eval_set(
    path: Path | str, records: list[dict], name: str, version: int, description: str = ""
) -> EvalSet:
    """Write an evaluation set and its manifest; refuse to change a version's content.

    Raises:
        ValueError: when ``path`` already holds this version with other content.
    """
    path = Path(path)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    manifest_file = manifest_path(path)
    if manifest_file.exists():
        old = json.loads(manifest_file.read_text(encoding="utf-8"))
        if int(old["version"]) == version and old["sha256"] != digest:
            raise ValueError(
                f"evaluation set {path} version {version} exists with other content; "
                "write the new content under a new version"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest = {
        "name": name,
        "version": version,
        "sha256": digest,
        "records": len(records),
        "description": description,
    }
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return load_eval_set(path)
