"""The device and dtype an embedding model runs at, decided once per machine and remembered.

Configured values are used as they are; ``auto`` is decided from the hardware (a
GPU) or by the :class:`~genai_assets.rag.embedder.Embedder`'s probe (a CPU), and
remembered per model revision, torch build and processor, so an unchanged rerun
knows it without importing torch.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_assets.rag.model_files import model_revision

log = logging.getLogger(__name__)

DTYPES = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Precision:
    """The device and dtype a model runs at, and why."""

    device: str
    dtype: str
    reason: str


_DECISIONS: dict[str, Precision] = {}


def _cpu_model() -> str:
    # On Linux /proc/cpuinfo names the processor; platform.processor() runs `uname -p`
    # (50 ms, and "unknown" on many Linux systems), so it is only the fallback.
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor()


def decision_key(model: str, device: str, dtype: str) -> str:
    """What a precision decision depends on, read without importing torch.

    The model and its revision, the requested device and dtype, the torch build, the
    processor and the CPUs and GPUs this process may use.
    """
    import importlib.metadata
    import platform

    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "none"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
    return "|".join(
        [
            model,
            model_revision(model),
            device,
            dtype,
            torch_version,
            platform.machine(),
            _cpu_model(),
            f"cpus={cpus}",
            f"threads={os.environ.get('OMP_NUM_THREADS', '')}",
            f"gpus={','.join(gpus)}",
            f"visible={os.environ.get('CUDA_VISIBLE_DEVICES', '')}",
        ]
    )


def _read_decisions(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        return json.loads(cache_file.read_text())
    except json.JSONDecodeError:
        log.warning(f"ignoring unreadable dtype cache {cache_file}")
        return {}


def remember_precision(key: str, precision: Precision, cache_file: Path | None) -> None:
    """Keep a decision for this process and, with a ``cache_file``, for later ones."""
    _DECISIONS[key] = precision
    if cache_file is None:
        return
    decisions = _read_decisions(cache_file)
    decisions[key] = [precision.device, precision.dtype, precision.reason]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(decisions, indent=1))
    tmp.replace(cache_file)


def known_precision(
    model: str, device: str = "auto", dtype: str = "auto", cache_file: Path | None = None
) -> Precision | None:
    """The device and dtype ``model`` runs at, when that is known without loading it.

    Configured values are used as they are. ``auto`` values come from an earlier
    decision on this machine (this process, or ``cache_file``) without importing
    torch, so an unchanged rerun stays cheap; else they are decided now (a GPU: bf16
    where supported, else fp16). None when only a probe of the loaded model can
    decide: ``dtype="auto"`` on a CPU (see :class:`~genai_assets.rag.embedder.Embedder`).

    Raises:
        ValueError: ``device`` or ``dtype`` is not one of the known names.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device != "auto" and dtype != "auto":
        return Precision(device, dtype, "configured")
    key = decision_key(model, device, dtype)
    if key in _DECISIONS:
        return _DECISIONS[key]
    cached = _read_decisions(cache_file).get(key)
    if isinstance(cached, list) and len(cached) == 3 and cached[1] in TORCH_DTYPES:
        precision = Precision(
            cached[0], cached[1], f"{cached[2]} (decided earlier on this machine)"
        )
        _DECISIONS[key] = precision
        return precision
    resolved = resolve_device(device)
    if dtype != "auto":
        precision = Precision(resolved, dtype, "configured")
    elif resolved == "cuda":
        import torch

        bf16 = torch.cuda.is_bf16_supported()
        precision = Precision(
            "cuda", *(("bf16", "GPU with native bf16") if bf16 else ("fp16", "GPU without bf16"))
        )
    elif resolved == "cpu":
        return None
    else:
        precision = Precision(resolved, "fp32", f"no probe for device {resolved}")
    remember_precision(key, precision, cache_file)
    return precision
