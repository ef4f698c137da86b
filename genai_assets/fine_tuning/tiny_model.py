"""The local default base model: a tiny GPT-2-architecture model built on this machine.

Nothing can be downloaded here, so the local default is NOT a real pretrained
model: a byte-level BPE tokenizer is trained with ``tokenizers`` on local text
(the shipped training data and the sample corpus), a 2-layer GPT-2 model is
initialised from config with a fixed seed, and it reads the sample corpus for a
few epochs of next-token prediction (seconds), so that fine-tuning, LoRA in
particular, starts from more than random weights. It is saved as an ordinary Hugging
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
    "locally-built tiny GPT-2 (tokenizer trained on local text, a few epochs of next-token "
    "training on the sample corpus; not a real pretrained model)"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEXT_SUFFIXES = {".jsonl", ".json", ".md", ".txt", ".rst", ".html", ".htm"}
# TinyModelSpec fields that GPT2Config takes as they are, and the special tokens it is told.
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "n_positions")
SPECIAL_ROLES = ("bos", "eos", "pad")
BUILD_VERSION = 2  # bump when the build recipe changes, so cached folders are rebuilt


@dataclass(frozen=True)
class TinyModelSpec:
    """Architecture and tokenizer settings of the locally-built model."""

    vocab_size: int = 4096
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 128
    n_positions: int = 256
    seed: int = 0
    pretrain_epochs: int = 4
    pretrain_max_tokens: int = 200_000
    pretrain_learning_rate: float = 3e-3


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


def build_key(files: list[Path], pretrain_files: list[Path], spec: TinyModelSpec) -> str:
    """A content hash of the text and the spec: the cache key of the build."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"spec": asdict(spec), "version": BUILD_VERSION}).encode())
    for group in (files, pretrain_files):
        digest.update(b"|")
        for path in group:
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
    text_folders: Iterable[Path],
    cache_dir: Path,
    spec: TinyModelSpec | None = None,
    pretrain_folders: Iterable[Path] = (),
) -> Path:
    """Build (or reuse) the tiny base model and return its folder.

    Args:
        text_folders: folders (or files) whose text trains the tokenizer.
        cache_dir: where built models are kept, one folder per build key.
        spec: architecture settings; the defaults match ENVIRONMENT.md.
        pretrain_folders: documents (plain text, no chat) the model reads a few times as a
            language model before it is saved, so it starts with more than random
            weights; none leaves it randomly initialised.

    Raises:
        ValueError: when the folders hold no text to train a tokenizer on.
    """
    spec = spec or TinyModelSpec()
    text_folders = [Path(folder) for folder in text_folders]
    files = collect_text_files(text_folders)
    pretrain_files = collect_text_files(pretrain_folders)
    if not files:
        folders = ", ".join(str(folder) for folder in text_folders)
        raise ValueError(f"no text files to train the tiny model's tokenizer on in: {folders}")
    target = Path(cache_dir) / f"tiny-gpt2-{build_key(files, pretrain_files, spec)[:16]}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        _build(files, pretrain_files, spec, staging)
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


def _pretrain(model, tokenizer, files: list[Path], spec: TinyModelSpec) -> dict[str, float]:
    """A few epochs of next-token prediction on ``files``, in fixed-size blocks."""
    import torch

    ids: list[int] = []
    for line in _text_lines(files):
        ids.extend(tokenizer(line, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= spec.pretrain_max_tokens:
            break
    width = spec.n_positions
    blocks = torch.tensor(ids[: len(ids) // width * width]).view(-1, width)
    if not len(blocks) or not spec.pretrain_epochs:
        return {"pretrain_tokens": 0, "pretrain_steps": 0}
    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.pretrain_learning_rate)
    batch_size = 8
    total = spec.pretrain_epochs * -(-len(blocks) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(spec.pretrain_epochs):
        order = torch.randperm(len(blocks), generator=generator)
        for start in range(0, len(blocks), batch_size):
            batch = blocks[order[start : start + batch_size]]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    model.eval()
    return {
        "pretrain_tokens": int(blocks.numel()),
        "pretrain_steps": total,
        "pretrain_final_loss": round(float(loss.detach()), 4),
    }


def _build(
    files: list[Path], pretrain_files: list[Path], spec: TinyModelSpec, output: Path
) -> None:
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
        **{name: getattr(spec, name) for name in ARCHITECTURE},
        **{f"{token}_token_id": getattr(tokenizer, f"{token}_token_id") for token in SPECIAL_ROLES},
    )
    model = GPT2LMHeadModel(config)
    pretraining = _pretrain(model, tokenizer, pretrain_files, spec)
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
                "pretrain_text_files": [str(path) for path in pretrain_files],
                **pretraining,
            },
            indent=2,
        )
    )
