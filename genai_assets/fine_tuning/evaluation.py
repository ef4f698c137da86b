"""Held-out evaluation of causal language models (no dagster import).

For each model (candidate, base, champion) on the same held-out records:

* perplexity over the assistant tokens (the same masking as training);
* ROUGE-L (F1, ``rouge_score``) and BLEU (``sacrebleu``, corpus level) of
  greedy generations against the reference answers.

A model is a Hugging Face id or folder, or a LoRA adapter folder (its
``adapter_config.json`` names the base model, which is loaded first).
"""

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_assets.fine_tuning.formatting import (
    IGNORE_INDEX,
    prompt_and_reference,
    render,
    tokenize_conversation,
)


@dataclass(frozen=True)
class EvalSettings:
    """How much of the held-out split to score, and how to generate."""

    max_length: int = 256
    max_new_tokens: int = 48
    max_generation_examples: int = 32
    batch_size: int = 16


def load_model(name_or_path: str) -> tuple[Any, Any]:
    """Model and tokenizer, in eval mode, on the GPU when there is one.

    A LoRA adapter folder is loaded onto its base model (from
    ``adapter_config.json``); its own tokenizer files are used when present.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    adapter_config = Path(name_or_path) / "adapter_config.json"
    if adapter_config.exists():
        from peft import PeftModel

        base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, name_or_path)
        has_tokenizer = (Path(name_or_path) / "tokenizer_config.json").exists()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path if has_tokenizer else base)
    else:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer


def perplexity(model: Any, tokenizer: Any, records: list[dict], settings: EvalSettings) -> float:
    """exp(mean negative log-likelihood) of the assistant tokens of ``records``.

    Returns ``inf`` when the loss is not finite (a diverged model).
    """
    import torch

    examples = [
        tokenize_conversation(tokenizer, record["messages"], settings.max_length)
        for record in records
    ]
    examples = [example for example in examples if example.n_target_tokens]
    if not examples:
        raise ValueError("no held-out record has assistant tokens to score")
    total_nll, total_tokens = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(examples), settings.batch_size):
            batch = examples[start : start + settings.batch_size]
            width = max(len(example.input_ids) for example in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            labels = torch.full((len(batch), width), IGNORE_INDEX)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, example in enumerate(batch):
                n = len(example.input_ids)
                ids[row, :n] = torch.tensor(example.input_ids)
                labels[row, :n] = torch.tensor(example.labels)
                mask[row, :n] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            shift_logits = logits[:, :-1, :].float()
            shift_labels = labels[:, 1:].to(device)
            nll = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)),
                shift_labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total_nll += float(nll)
            total_tokens += int((shift_labels != IGNORE_INDEX).sum())
    mean = total_nll / total_tokens
    return math.exp(mean) if math.isfinite(mean) and mean < 700 else math.inf


def generate(model: Any, tokenizer: Any, conversations: list[list[dict]], settings: EvalSettings):
    """Greedy answers to ``conversations`` (each ending before the assistant's turn)."""
    import torch

    device = next(model.parameters()).device
    answers: list[str] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(conversations), settings.batch_size):
        prompts = [
            render(tokenizer, messages, add_generation_prompt=True)
            for messages in conversations[start : start + settings.batch_size]
        ]
        batch = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
            truncation=True,
            max_length=max(8, settings.max_length - settings.max_new_tokens),
        ).to(device)
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        answers.extend(
            text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        )
    return answers


def text_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-L F1 and corpus BLEU (0-100) of ``predictions`` against ``references``."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score
    return {"rouge_l": sum(rouge) / len(rouge), "bleu": float(bleu)}


def evaluate_model(
    name_or_path: str, records: list[dict], settings: EvalSettings | None = None
) -> dict[str, Any]:
    """Perplexity, ROUGE-L and BLEU of one model on ``records``, with a few sample answers."""
    import torch

    settings = settings or EvalSettings()
    if not records:
        raise ValueError("no held-out records to evaluate on")
    started = time.monotonic()
    torch.manual_seed(0)
    model, tokenizer = load_model(name_or_path)
    ppl = perplexity(model, tokenizer, records, settings)
    subset = records[: settings.max_generation_examples]
    prompts, references = zip(
        *(prompt_and_reference(record["messages"]) for record in subset), strict=True
    )
    answers = generate(model, tokenizer, list(prompts), settings)
    result: dict[str, Any] = {
        "model": str(name_or_path),
        # None when the loss is not finite (a diverged model): JSON has no infinity.
        "perplexity": ppl if math.isfinite(ppl) else None,
        **text_metrics(answers, list(references)),
        "n_perplexity_records": len(records),
        "n_generation_records": len(subset),
        "eval_seconds": round(time.monotonic() - started, 3),
        "samples": [
            {"prompt": p[-1]["content"], "reference": r, "answer": a}
            for p, r, a in list(zip(prompts, references, answers, strict=True))[:3]
        ],
    }
    del model
    return result


def score_models(
    records: list[dict],
    settings: EvalSettings,
    *,
    candidate: str,
    base: str,
    champion: str | None,
    champion_is_candidate: bool,
    with_base: bool,
) -> dict[str, dict[str, Any]]:
    """Scores of ``candidate``, ``champion`` and (``with_base``) ``base`` on ``records``.

    No model is evaluated twice: before any promotion (``champion`` None) the
    champion is the base model, and a champion with the candidate's weights
    (``champion_is_candidate``) has the candidate's numbers.
    """
    scored = {"candidate": evaluate_model(candidate, records, settings)}
    if with_base or champion is None:
        scored["base"] = evaluate_model(base, records, settings)
    if champion is None:
        scored["champion"] = scored["base"]
    elif champion_is_candidate:
        scored["champion"] = scored["candidate"]
    else:
        scored["champion"] = evaluate_model(champion, records, settings)
    return scored


# The code that computes the numbers; a change to it means evaluating again.
EVALUATION_CODE = (Path(__file__), Path(__file__).with_name("formatting.py"))


def evaluation_key(**parts: object) -> str:
    """sha256 of what decides an evaluation's numbers: models, records, settings and code.

    Two evaluations with the same key compute the same numbers (generation is
    greedy and seeded), so the second can reuse the first's.
    """
    code = [hashlib.sha256(path.read_bytes()).hexdigest() for path in EVALUATION_CODE]
    text = json.dumps({**parts, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fmt(value: float | None) -> str:
    return "not finite" if value is None or not math.isfinite(value) else f"{value:.3f}"


def render_report(
    results: dict[str, dict[str, Any]],
    gate: dict[str, Any] | None,
    title: str = "",
    heading: str = "#",
) -> str:
    """A markdown report: a metrics table (one column per model), the gate, sample answers.

    ``title`` names what the models were scored on; ``heading`` is the level of
    the report's heading (``##`` for a section of a longer report).
    """
    names = list(results)
    lines = [
        f"{heading} Fine-tuning evaluation" + (f": {title}" if title else " report"),
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for metric, label in (
        ("perplexity", "perplexity (lower is better)"),
        ("rouge_l", "ROUGE-L F1"),
        ("bleu", "BLEU"),
    ):
        lines.append(f"| {label} | " + " | ".join(_fmt(results[n][metric]) for n in names) + " |")
    lines.append("| model | " + " | ".join(f"`{results[n]['model']}`" for n in names) + " |")
    if gate is not None:
        lines += ["", f"{heading}# Gate: {'PASSED' if gate['passed'] else 'REFUSED'}", ""]
        lines += [f"- {reason}" for reason in gate["reasons"]]
    candidate = results.get("candidate")
    if candidate and candidate.get("samples"):
        lines += ["", f"{heading}# Sample answers (candidate)", ""]
        for sample in candidate["samples"]:
            lines += [
                f"- **prompt:** {sample['prompt']}",
                f"  - reference: {sample['reference']}",
                f"  - answer: {sample['answer'] or '(empty)'}",
            ]
    return "\n".join(lines) + "\n"
