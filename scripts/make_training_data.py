"""Generate the supervised fine-tuning sample data and the fixed evaluation set.

The facts live in ``scripts/training_facts.yaml`` (questions and answers per
fact of ``genai_assets/data/FACTS.md``, two-turn conversations, error codes,
ports, command tasks); this script only combines them:

* ``genai_assets/data/training/chat.jsonl``: chat ``messages`` records;
* ``genai_assets/data/training/instructions.jsonl``: ``instruction``/``input``/
  ``response`` records;
* ``genai_assets/data/eval_sets/skyline_v1.jsonl`` (+ ``.json`` manifest): the
  fixed evaluation set of the promotion gate, built from whole facts that the
  training files never contain (every ``HOLD_OUT_EVERY``-th fact).

Every record carries a ``group`` label (its fact, conversation, error code,
port or task), and the script keeps out of the evaluation set every pair whose
question or answer the training files contain. Deterministic: fixed seeds, so
re-running gives the same files. Changing the evaluation set needs a new
``EVAL_SET_VERSION`` (the loader refuses a changed file under an old version).

Usage::

    python scripts/make_training_data.py
"""

import json
import random
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_assets.fine_tuning import dataset as ds  # noqa: E402
from genai_assets.fine_tuning import eval_set  # noqa: E402

SOURCE = Path(__file__).with_name("training_facts.yaml")
OUT = ROOT / "genai_assets" / "data" / "training"
EVAL_SET = eval_set.DEFAULT_EVAL_SET
EVAL_SET_VERSION = 1
SEED = 20251104
N_CHAT = 250
N_INSTRUCTIONS = 250
HOLD_OUT_EVERY = 5  # facts 3, 8, 13, ... form the fixed evaluation set


def load_source() -> dict:
    """The facts file, with every fact numbered (its group label)."""
    source = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    for number, fact in enumerate(source["facts"]):
        fact["group"] = f"fact-{number:02d}"
    return source


def held_out(number: int) -> bool:
    """Whether fact ``number`` belongs to the evaluation set (never to training)."""
    return number % HOLD_OUT_EVERY == 3


def chat(system: str, turns: list[str], group: str) -> dict:
    """A chat record: the system prompt, then user and assistant turns alternating."""
    roles = ["user", "assistant"] * (len(turns) // 2)
    messages = [{"role": "system", "content": system}]
    messages += [{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)]
    return {"messages": messages, "group": group}


def question_answer_pairs(facts: list[dict]) -> list[tuple[str, str, str]]:
    """Every (question, answer, group) of ``facts``: each question with each of its answers."""
    return [
        (question, answer, fact["group"])
        for fact in facts
        for question in fact["questions"]
        for answer in fact["answers"]
    ]


def instruction(instruction: str, given: str, response: str, group: str) -> dict:
    """An instruction record (``given`` is its ``input`` field)."""
    return {"instruction": instruction, "input": given, "response": response, "group": group}


def chat_records(source: dict, facts: list[dict], rng: random.Random) -> list[dict]:
    """Single-turn records from (question, answer) pairs, plus two-turn follow-ups."""
    systems = source["system_prompts"]
    singles = question_answer_pairs(facts)
    rng.shuffle(singles)
    conversations = source["conversations"]
    n_two_turn = N_CHAT // 6
    records = [
        chat(systems[index % len(systems)], [question, answer], group)
        for index, (question, answer, group) in enumerate(singles[: N_CHAT - n_two_turn])
    ]
    for index in range(n_two_turn):
        talk = conversations[index % len(conversations)]
        system = systems[(index // len(conversations)) % len(systems)]
        turns = [talk["question"], talk["answer"], talk["follow_up"], talk["follow_up_answer"]]
        records.append(chat(system, turns, f"conversation-{index % len(conversations):02d}"))
    rng.shuffle(records)
    return records


def instruction_records(source: dict, facts: list[dict], rng: random.Random) -> list[dict]:
    """Question-style instructions plus small tasks that use the ``input`` field."""
    records = []
    for code, meaning in source["error_codes"].items():
        records.append(
            instruction(
                "Explain this Skyline Vault error code and what to do about it.",
                code,
                f"{code}: {meaning}",
                f"error-{code}",
            )
        )
    for service, port in source["ports"].items():
        records.append(
            instruction(
                "Which TCP port does Skyline Vault use for the following?",
                service,
                f"Port {port} by default.",
                f"port-{port}",
            )
        )
    for number, task in enumerate(source["command_tasks"]):
        for vault in rng.sample(source["vault_names"], 2):
            records.append(
                instruction(
                    "Write the skyvault command for this task.",
                    task["task"].format(v=vault),
                    task["command"].format(v=vault),
                    f"command-{number:02d}",
                )
            )
    pairs = []
    for fact in facts:
        for question in fact["questions"]:
            first, second = rng.sample(fact["answers"], 2)
            pairs.append((question, first, second, fact["group"]))
    rng.shuffle(pairs)
    # First every question once, then again with its other answer and another prefix.
    queue = [(q, a, i, g) for i, (q, a, _, g) in enumerate(pairs)]
    queue += [(q, a, i + 1, g) for i, (q, _, a, g) in enumerate(pairs)]
    prefixes = source["instruction_prefixes"]
    for question, answer, turn, group in queue:
        if len(records) >= N_INSTRUCTIONS:
            break
        prefix = prefixes[turn % len(prefixes)]
        records.append(instruction(prefix + question, "", answer, group))
    rng.shuffle(records)
    return records


def eval_records(source: dict, facts: list[dict]) -> list[dict]:
    """Every (question, answer) pair of the held-out facts, in the facts' order."""
    systems = source["system_prompts"]
    pairs = question_answer_pairs(facts)
    return [
        chat(systems[index % len(systems)], [question, answer], group)
        for index, (question, answer, group) in enumerate(pairs)
    ]


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Write one JSON object per line, refusing exact duplicates."""
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    if len(set(lines)) != len(lines):
        raise ValueError(f"{path}: generated duplicate records")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write(f"{path}: {len(lines)} records\n")


def main() -> None:
    """Write chat.jsonl, instructions.jsonl and the fixed evaluation set."""
    source = load_source()
    facts = source["facts"]
    trained = [fact for number, fact in enumerate(facts) if not held_out(number)]
    evaluated = [fact for number, fact in enumerate(facts) if held_out(number)]
    chats = chat_records(source, trained, random.Random(SEED))
    instructions = instruction_records(source, trained, random.Random(SEED + 1))
    # A two-turn conversation may ask a held-out fact's question word for word: such
    # pairs leave the evaluation set, which must hold nothing training has seen.
    trained_turns = set().union(*(ds.turn_keys(ds.normalise(r)) for r in chats + instructions))
    fixed = [
        r
        for r in eval_records(source, evaluated)
        if not ds.turn_keys(ds.normalise(r)) & trained_turns
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(OUT / "chat.jsonl", chats)
    write_jsonl(OUT / "instructions.jsonl", instructions)
    written = eval_set.write_eval_set(
        EVAL_SET,
        fixed,
        name="skyline",
        version=EVAL_SET_VERSION,
        description=f"Questions and answers of the {len(evaluated)} facts of FACTS.md that the "
        "shipped training data holds out (every fifth fact); no question or answer of it is in "
        "the training files.",
    )
    sys.stdout.write(f"{EVAL_SET}: {len(fixed)} records, sha256 {written.sha256[:12]}\n")


if __name__ == "__main__":
    main()
