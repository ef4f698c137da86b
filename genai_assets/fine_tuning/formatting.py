"""Turning chat records into token ids and loss masks, shared by training and evaluation.

Only assistant turns are learned (and scored for perplexity): every other token
gets the label ``-100``, which Hugging Face losses ignore. Text is rendered with
the tokenizer's own ``chat_template``, so the same code works for the tiny local
model (ChatML) and for any instruction-tuned model from the Hub.
"""

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids of one conversation and the labels the loss sees."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_target_tokens(self) -> int:
        """How many tokens count in the loss (assistant tokens)."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def render(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The conversation as text, through the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat_template; "
            "fine-tuning needs one to format conversations"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without extra special tokens (the template already has them)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def count_tokens(tokenizer: Any, messages: list[dict]) -> int:
    """Length in tokens of the whole rendered conversation."""
    return len(encode(tokenizer, render(tokenizer, messages)))


def tokenize_conversation(
    tokenizer: Any, messages: list[dict], max_length: int
) -> TokenizedExample:
    """Token ids of ``messages`` with labels only on assistant turns, cut at ``max_length``.

    Each assistant turn's span is found by rendering the conversation up to the
    turn with a generation prompt (the prefix) and up to the end of the turn; the
    tokens in between are the targets. A template whose rendered prefix is not a
    prefix of the longer rendering falls back to learning the whole sequence.
    """
    input_ids = encode(tokenizer, render(tokenizer, messages))
    labels = [IGNORE_INDEX] * len(input_ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(encode(tokenizer, render(tokenizer, messages[:index], True)))
        upto = encode(tokenizer, render(tokenizer, messages[: index + 1]))
        end = len(upto)
        if input_ids[:end] != upto:
            labels = list(input_ids)
            break
        labels[start:end] = input_ids[start:end]
    return TokenizedExample(input_ids=input_ids[:max_length], labels=labels[:max_length])


def prompt_and_reference(messages: list[dict]) -> tuple[list[dict], str]:
    """The conversation up to its last assistant turn, and that turn's text (the reference)."""
    last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
    return messages[:last], messages[last]["content"]
