"""The local default base model: a tiny GPT-2-architecture model built on this machine.

Nothing can be downloaded here, so the local default is NOT a pretrained model:
a byte-level BPE tokenizer is trained with ``tokenizers`` on local text (the
shipped training data and the sample corpus), and a 2-layer GPT-2 model is
initialised from config with a fixed seed. It is saved as an ordinary Hugging
Face folder (config, weights, tokenizer with a ChatML ``chat_template``) and
loaded back with the real ``from_pretrained``, so everything downstream treats
it exactly like a model id such as ``Qwen/Qwen2.5-0.5B-Instruct``.

The folder name is derived from the text and the settings, so a rebuild from
the same inputs reuses the cached folder and is reproducible.
"""

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

TINY_MODEL_LABEL = (
    "locally-built tiny GPT-2 (random init, tokenizer trained on local text; "
    "not a pretrained model)"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEXT_SUFFIXES = {".jsonl", ".json", ".md", ".txt", ".rst", ".html", ".htm"}
BUILD_VERSION = 1  # bump when the build recipe changes, so cached folders are rebuilt


@dataclass(frozen=True)
class TinyModelSpec:
    """Architecture and tokenizer settings of the locally-built model."""

    vocab_size: int = 4096
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 128
    n_positions: int = 256
    seed: int = 0


def collect_text_files(folders: Iterable[Path]) -> list[Path]:
    """Text files under ``folders`` (recursively, sorted); missing folders are skipped."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
        elif folder.is_dir():
            files.extend(
                path
                for path in folder.rglob("*")
                if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES
            )
    return sorted(set(files))


def build_key(files: list[Path], spec: TinyModelSpec) -> str:
    """A content hash of the tokenizer text and the spec: the cache key of the build."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"spec": asdict(spec), "version": BUILD_VERSION}).encode())
    for path in files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _text_lines(files: list[Path]) -> Iterable[str]:
    """Lines of text for tokenizer training; JSONL records contribute their string values."""
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if path.suffix == ".jsonl":
                try:
                    yield from _strings(json.loads(line))
                except json.JSONDecodeError:
                    yield line
            elif line.strip():
                yield line


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def ensure_tiny_model(
    text_folders: Iterable[Path], cache_dir: Path, spec: TinyModelSpec | None = None
) -> Path:
    """Build (or reuse) the tiny base model and return its folder.

    Args:
        text_folders: folders (or files) whose text trains the tokenizer.
        cache_dir: where built models are kept, one folder per build key.
        spec: architecture settings; the defaults match ENVIRONMENT.md.

    Raises:
        ValueError: when the folders hold no text to train a tokenizer on.
    """
    spec = spec or TinyModelSpec()
    files = collect_text_files(text_folders)
    if not files:
        folders = ", ".join(str(folder) for folder in text_folders)
        raise ValueError(f"no text files to train the tiny model's tokenizer on in: {folders}")
    target = Path(cache_dir) / f"tiny-gpt2-{build_key(files, spec)[:16]}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        _build(files, spec, staging)
        os.replace(staging, target)
    except OSError:
        if (target / "config.json").exists():  # another process finished the same build first
            shutil.rmtree(staging, ignore_errors=True)
            return target
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(files: list[Path], spec: TinyModelSpec, output: Path) -> None:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _text_lines(files),
        vocab_size=spec.vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=spec.n_positions,
    )
    tokenizer.chat_template = CHATML_TEMPLATE

    torch.manual_seed(spec.seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_embd=spec.n_embd,
        n_positions=spec.n_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    output.mkdir(parents=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / "tiny_model.json").write_text(
        json.dumps(
            {
                "label": TINY_MODEL_LABEL,
                "spec": asdict(spec),
                "parameters": sum(p.numel() for p in model.parameters()),
                "tokenizer_text_files": [str(path) for path in files],
            },
            indent=2,
        )
    )


def is_tiny_model(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is a folder built by this module."""
    return (Path(name_or_path) / "tiny_model.json").exists()
