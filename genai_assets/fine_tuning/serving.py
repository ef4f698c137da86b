"""The serving configuration of the promoted model, and its history (no dagster import).

Layout of a serving folder:

* ``vllm_serve.yaml``: what ``vllm serve --config vllm_serve.yaml`` loads
  (only vLLM's own long option names, so vLLM accepts it as is);
* ``serving_state.json``: the source of truth: the ``current`` entry (model
  folder, manifest, vLLM config, metrics, when and why it was promoted), the
  ``history`` of the entries it replaced (newest last) and the entries that
  were ``rolled_back``.

Both are committed in one atomic step: they are written into a new
``generations/<n>/`` folder and the link ``current`` is switched to it with one
``os.replace``; the two names at the top are links through ``current``. A reader
sees the old pair or the new pair, never one of each and never a half-written
file. Every read-modify-write of the state (promotion, rollback, the rollback
command) holds an exclusive fcntl lock on ``.lock``, and promotion is a
compare-and-swap: it refuses when the champion it was judged against is no
longer current. Rollback pops the newest history entry back into ``current``.
"""

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from genai_assets.fine_tuning import weights

VLLM_CONFIG = "vllm_serve.yaml"
STATE = "serving_state.json"
LOCK = ".lock"
CURRENT = "current"
GENERATIONS = "generations"
KEEP_GENERATIONS = 20  # older generations are only history, which the state keeps anyway
ANY = object()  # promote() without a compare-and-swap expectation


def build_vllm_config(
    *,
    model_dir: str,
    artifact: str,
    base_model: str,
    served_model_name: str,
    max_model_len: int,
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    max_lora_rank: int = 16,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``vllm serve`` config (long option names) for a fine-tuned model folder.

    A merged or fully fine-tuned model is served directly; a kept LoRA adapter
    is served on its base model with ``enable-lora`` and ``lora-modules``, under
    ``served_model_name``.
    """
    if artifact not in ("merged_model", "full_model", "lora_adapter"):
        raise ValueError(f"unknown model artifact kind {artifact!r}")
    if tensor_parallel_size < 1 or max_model_len < 1:
        raise ValueError("tensor_parallel_size and max_model_len must be positive")
    config: dict[str, Any] = {
        "dtype": dtype,
        "max-model-len": max_model_len,
        "tensor-parallel-size": tensor_parallel_size,
    }
    if artifact == "lora_adapter":
        config["model"] = base_model
        config["served-model-name"] = f"{served_model_name}-base"
        config["enable-lora"] = True
        config["max-lora-rank"] = max_lora_rank
        config["lora-modules"] = [f"{served_model_name}={model_dir}"]
    else:
        config["model"] = model_dir
        config["served-model-name"] = served_model_name
    config.update(extra or {})
    return dict(sorted(config.items()))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


class ServingConflict(ValueError):
    """The serving config changed since the promotion was decided (compare-and-swap failed)."""


@contextmanager
def serving_lock(serving_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``serving_dir`` (an fcntl lock on ``.lock``).

    Promotion, rollback and the rollback command read, modify and write the state
    only while they hold it, so no update is lost between two of them. The lock
    is released when the holder exits, even when it crashes.
    """
    serving_dir = Path(serving_dir)
    serving_dir.mkdir(parents=True, exist_ok=True)
    with (serving_dir / LOCK).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_state(serving_dir: Path) -> dict[str, Any]:
    """The serving state; ``{"current": None, "history": [], "rolled_back": []}`` if none yet."""
    path = Path(serving_dir) / STATE
    if not path.exists():
        return {"current": None, "history": [], "rolled_back": []}
    return json.loads(path.read_text(encoding="utf-8"))


def current_entry(serving_dir: Path) -> dict[str, Any] | None:
    """The entry being served now, or None before the first promotion."""
    return read_state(serving_dir)["current"]


def champion(serving_dir: Path, base_model: str) -> dict[str, Any]:
    """The model serving now (the base model before any promotion), checked against its entry.

    Returns ``path``, ``source``, ``version`` (None before any promotion) and
    ``weights_sha256`` (None for the base model or an entry from before weight hashes).

    Raises:
        FileNotFoundError: when the entry names a folder that no longer exists.
        weights.WeightsMismatch: when its files no longer hash to the recorded weights.
    """
    entry = current_entry(serving_dir)
    if entry is None:
        return {
            "path": base_model,
            "source": "base model (no serving config yet)",
            "version": None,
            "weights_sha256": None,
        }
    if not Path(entry["model_dir"]).exists():
        raise FileNotFoundError(
            f"the serving config (version {entry['version']}) names {entry['model_dir']}, "
            "which no longer exists; restore it or roll back before evaluating"
        )
    recorded = entry.get("weights_sha256")
    if recorded is not None:  # the champion's numbers must be those of the weights being served
        weights.verify(entry["model_dir"], recorded, f"serving config version {entry['version']}")
    return {
        "path": entry["model_dir"],
        "source": f"serving config version {entry['version']}",
        "version": entry["version"],
        "weights_sha256": recorded,
    }


def context_length(model_dir: Path, base_model: str) -> int:
    """The model's context length from its config.json (or its base model's, for an adapter)."""
    for folder in (Path(model_dir), Path(base_model)):
        config_file = folder / "config.json"
        if config_file.exists():
            config = json.loads(config_file.read_text())
            for key in ("max_position_embeddings", "n_positions"):
                if key in config:
                    return int(config[key])
    raise ValueError(f"cannot find the context length of {model_dir}; set max_model_len")


def _replace_with_symlink(path: Path, target: str) -> None:
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}"
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _write(serving_dir: Path, state: dict[str, Any]) -> None:
    """Commit both serving files in one step: a new generation folder, then one rename.

    ``vllm_serve.yaml`` and ``serving_state.json`` are links into ``current``, itself
    a link to ``generations/<n>/`` that holds both files; replacing ``current``
    (``os.replace``, atomic) switches both at once, so nobody ever sees the new
    state beside the old vLLM config. Call it holding :func:`serving_lock`.
    """
    serving_dir = Path(serving_dir)
    generations = serving_dir / GENERATIONS
    generations.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in generations.iterdir() if p.name.isdigit()]
    number = max(numbers, default=0) + 1
    staging = generations / f".tmp-{number}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    atomic_write_text(staging / STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")
    current = state["current"]
    if current is not None:
        text = "# Written by genai_assets serving_config; load with: vllm serve --config <this>\n"
        text += yaml.safe_dump(current["vllm"], sort_keys=True)
        atomic_write_text(staging / VLLM_CONFIG, text)
    final = generations / f"{number:06d}"
    os.replace(staging, final)
    _replace_with_symlink(serving_dir / CURRENT, f"{GENERATIONS}/{final.name}")  # the commit
    for name in (STATE, VLLM_CONFIG):
        link = serving_dir / name
        if not link.is_symlink():  # first write, or a folder from before generations
            _replace_with_symlink(link, f"{CURRENT}/{name}")
    for old in sorted(p for p in generations.iterdir() if p.name.isdigit())[:-KEEP_GENERATIONS]:
        shutil.rmtree(old)


def promote(
    serving_dir: Path, entry: dict[str, Any], expected_version: int | None | object = ANY
) -> dict[str, Any]:
    """Make ``entry`` current; the previous current entry goes to the history.

    ``entry`` needs at least ``model_dir`` and ``vllm``; ``promoted_at`` and a
    ``version`` (one more than the highest so far) are added.

    Args:
        serving_dir: the serving folder.
        entry: what to serve.
        expected_version: compare-and-swap: the version of the champion the candidate
            was judged against (None: no serving config then); a different current
            version raises :class:`ServingConflict` and changes nothing.
    """
    for key in ("model_dir", "vllm"):
        if key not in entry:
            raise ValueError(f"serving entry is missing {key!r}")
    with serving_lock(serving_dir):
        state = read_state(serving_dir)
        now = state["current"]["version"] if state["current"] else None
        if expected_version is not ANY and now != expected_version:
            raise ServingConflict(
                f"the serving config in {serving_dir} is version {now} now, but the candidate "
                f"was judged against version {expected_version}; nothing was changed: "
                "evaluate again against the current champion"
            )
        versions = [e["version"] for e in [state["current"], *state["history"]] if e] + [
            e["version"] for e in state["rolled_back"]
        ]
        entry = {
            **entry,
            "version": max(versions, default=0) + 1,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if state["current"] is not None:
            state["history"].append(state["current"])
        state["current"] = entry
        _write(serving_dir, state)
    return entry


def rollback(serving_dir: Path, reason: str = "") -> dict[str, Any]:
    """Restore the previous serving entry; the current one is kept under ``rolled_back``.

    Raises:
        ValueError: when there is no previous entry to roll back to.
    """
    with serving_lock(serving_dir):
        state = read_state(serving_dir)
        if state["current"] is None or not state["history"]:
            raise ValueError(
                f"nothing to roll back to in {serving_dir}: no previous serving config"
            )
        rolled = {
            **state["current"],
            "rolled_back_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rollback_reason": reason,
        }
        state["rolled_back"].append(rolled)
        state["current"] = state["history"].pop()
        _write(serving_dir, state)
    return state["current"]
