"""A content hash of a model folder: what ties the promoted weights to the evaluated ones.

The hash covers every file of the folder (weights, config, tokenizer, adapter)
except ``manifest.json``, which records it. Training writes it into the
manifest; eval_report checks the folder against it before evaluating and
records it; serving_config promotes only a folder that still has the hash
that was evaluated. (No dagster import.)
"""

import hashlib
from pathlib import Path

EXCLUDED = frozenset({"manifest.json"})
CHUNK = 1 << 20


class WeightsMismatch(ValueError):
    """A model folder's files are not the ones that were recorded."""


def folder_sha256(folder: Path | str) -> str:
    """sha256 over the relative path and content of every file in ``folder`` (sorted).

    Raises:
        FileNotFoundError: when ``folder`` is not a folder or holds no files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in EXCLUDED
    )
    if not files:
        raise FileNotFoundError(f"model folder {folder} holds no files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        file_digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                file_digest.update(block)
        digest.update(file_digest.digest())
    return digest.hexdigest()


def verify(folder: Path | str, expected: str, what: str) -> str:
    """The folder's hash, checked against ``expected``.

    Args:
        folder: the model folder.
        expected: the hash recorded for it (manifest, eval report or serving entry).
        what: where ``expected`` comes from, for the message.

    Raises:
        WeightsMismatch: when the folder's files hash to something else.
    """
    actual = folder_sha256(folder)
    if actual != expected:
        raise WeightsMismatch(
            f"the files of {folder} changed: they hash to {actual[:12]}, {what} recorded "
            f"{expected[:12]}"
        )
    return actual
