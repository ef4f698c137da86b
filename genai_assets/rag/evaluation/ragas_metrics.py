"""ragas metrics for a RAG index: the ones that need no LLM always, the LLM-judged ones on demand.

Without an LLM:

* ``non_llm_context_recall`` and ``non_llm_context_precision`` (ragas
  ``NonLLMContextRecall`` / ``NonLLMContextPrecisionWithReference``) compare the
  retrieved chunks with the question's *reference contexts*: the chunks of the
  evaluated collection that contain a relevant passage (or, for a question
  without passages, the chunks of its relevant documents). ragas compares
  whole strings, so reference contexts must be chunks, not short excerpts.
* ``semantic_similarity`` (ragas ``SemanticSimilarity`` with the index's own
  embedding model) and ``rouge_l`` (ragas ``RougeScore``) compare the answer with
  the reference answer, where the golden set has one. The answer is the LLM's
  when one is configured, else the top-ranked chunk (an extractive answer).

With an LLM (any OpenAI-compatible endpoint), the answer is generated from the
retrieved chunks and judged: ``faithfulness``, ``answer_relevancy`` and
``context_precision`` (the last one needs a reference answer). Without one they
are None ("not run"), never 0.
"""

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

NON_LLM_METRICS = (
    "non_llm_context_recall",
    "non_llm_context_precision",
    "semantic_similarity",
    "rouge_l",
)
LLM_METRICS = ("faithfulness", "answer_relevancy", "context_precision")

ANSWER_SYSTEM_PROMPT = (
    "You answer questions about a product using only the numbered context passages. "
    "Answer in one to three sentences. If the context does not contain the answer, say so."
)

_RAGAS_COLUMNS = {
    "non_llm_context_recall": "non_llm_context_recall",
    "non_llm_context_precision_with_reference": "non_llm_context_precision",
    "semantic_similarity": "semantic_similarity",
    "rouge_score(mode=fmeasure)": "rouge_l",
}


@dataclass(frozen=True)
class RagasSample:
    """One question as ragas sees it."""

    question: str
    retrieved_contexts: list[str]
    reference_contexts: list[str]
    response: str | None
    reference: str | None


def _score(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def non_llm_scores(samples: Sequence[RagasSample], embedding_model_path: str) -> list[dict]:
    """The LLM-free ragas metrics per sample; None where a sample lacks what a metric needs."""
    from ragas import EvaluationDataset, evaluate
    from ragas.embeddings import HuggingFaceEmbeddings
    from ragas.metrics import (
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        RougeScore,
        SemanticSimilarity,
    )

    results: list[dict[str, float | None]] = [dict.fromkeys(NON_LLM_METRICS) for _ in samples]
    context_rows = [
        i for i, s in enumerate(samples) if s.retrieved_contexts and s.reference_contexts
    ]
    answer_rows = [i for i, s in enumerate(samples) if s.response and s.reference]
    jobs = [
        (
            context_rows,
            [NonLLMContextRecall(), NonLLMContextPrecisionWithReference()],
            lambda s: {
                "user_input": s.question,
                "retrieved_contexts": s.retrieved_contexts,
                "reference_contexts": s.reference_contexts,
            },
        ),
        (
            answer_rows,
            [
                SemanticSimilarity(embeddings=HuggingFaceEmbeddings(model=embedding_model_path)),
                RougeScore(rouge_type="rougeL"),
            ],
            lambda s: {"user_input": s.question, "response": s.response, "reference": s.reference},
        ),
    ]
    for rows, metrics, to_record in jobs:
        if not rows:
            continue
        dataset = EvaluationDataset.from_list([to_record(samples[i]) for i in rows])
        table = evaluate(
            dataset, metrics=metrics, show_progress=False, raise_exceptions=True
        ).to_pandas()
        for position, i in enumerate(rows):
            for column, name in _RAGAS_COLUMNS.items():
                if column in table.columns:
                    results[i][name] = _score(table[column].iloc[position])
    return results


def _context_block(contexts: Sequence[str]) -> str:
    return "\n\n".join(f"[{n}] {text}" for n, text in enumerate(contexts, start=1))


async def generate_answer(client: Any, model: str, question: str, contexts: Sequence[str]) -> str:
    """The LLM's answer to ``question`` from the retrieved ``contexts`` (chat completions)."""
    completion = await client.chat.completions.create(
        model=model,
        temperature=0.0,
        messages=[
            {"role": "system", "content": ANSWER_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": f"Context:\n{_context_block(contexts)}\n\nQuestion: {question}",
            },
        ],
    )
    answer = (completion.choices[0].message.content or "").strip()
    if not answer:
        raise ValueError(f"the LLM {model!r} returned an empty answer")
    return answer


@dataclass
class LLMJudgement:
    """One question's generated answer and judged scores, and what failed.

    ``error`` is set when the answer could not be generated (nothing was judged) or
    when every judged metric failed; ``failures`` names each metric that failed and
    why, so that the others still count.
    """

    answer: str | None = None
    faithfulness: float | None = None
    answer_relevancy: float | None = None
    context_precision: float | None = None
    error: str | None = None
    failures: dict[str, str] = field(default_factory=dict)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


async def _judge_all(
    samples: Sequence[RagasSample],
    client: Any,
    model: str,
    embedding_model_path: str,
    concurrency: int,
) -> list[LLMJudgement]:
    from ragas.embeddings import HuggingFaceEmbeddings
    from ragas.llms import llm_factory
    from ragas.metrics.collections import AnswerRelevancy, ContextPrecision, Faithfulness

    llm = llm_factory(model, client=client)
    embeddings = HuggingFaceEmbeddings(model=embedding_model_path)
    faithfulness = Faithfulness(llm=llm)
    relevancy = AnswerRelevancy(llm=llm, embeddings=embeddings)
    precision = ContextPrecision(llm=llm)
    gate = asyncio.Semaphore(concurrency)

    async def judge(sample: RagasSample) -> LLMJudgement:
        result = LLMJudgement()
        async with gate:
            try:
                result.answer = await generate_answer(
                    client, model, sample.question, sample.retrieved_contexts
                )
            except Exception as error:  # recorded per question, counted, and raised if all fail
                result.error = f"answer generation failed: {_describe(error)}"
                log.warning("LLM answer failed for %r: %s", sample.question, result.error)
                return result
            scorers = {
                "faithfulness": lambda: faithfulness.ascore(
                    user_input=sample.question,
                    response=result.answer,
                    retrieved_contexts=sample.retrieved_contexts,
                ),
                "answer_relevancy": lambda: relevancy.ascore(
                    user_input=sample.question, response=result.answer
                ),
            }
            if sample.reference:
                scorers["context_precision"] = lambda: precision.ascore(
                    user_input=sample.question,
                    reference=sample.reference,
                    retrieved_contexts=sample.retrieved_contexts,
                )
            for metric, scorer in scorers.items():
                try:
                    setattr(result, metric, _score((await scorer()).value))
                except Exception as error:  # this metric unscored for this question, counted
                    result.failures[metric] = _describe(error)
                    log.warning("LLM judge %s failed for %r: %s", metric, sample.question, error)
            if len(result.failures) == len(scorers):
                result.error = "; ".join(f"{m}: {e}" for m, e in result.failures.items())
        return result

    return list(await asyncio.gather(*(judge(sample) for sample in samples)))


def llm_judgements(
    samples: Sequence[RagasSample],
    client: Any,
    model: str,
    embedding_model_path: str,
    concurrency: int = 4,
) -> list[LLMJudgement]:
    """Generate each answer with the LLM and judge it (faithfulness, relevancy, precision).

    A question whose LLM calls fail keeps its errors in ``LLMJudgement.error`` and
    ``LLMJudgement.failures`` (per metric), and the gate counts it as not scored;
    when every question fails the endpoint is unusable and this raises.

    Raises:
        RuntimeError: no question could be judged (first error in the message).
    """
    judgements = asyncio.run(_judge_all(samples, client, model, embedding_model_path, concurrency))
    errors = [j.error for j in judgements if j.error]
    if samples and len(errors) == len(samples):
        raise RuntimeError(
            f"the LLM {model!r} failed for all {len(samples)} questions; first error: {errors[0]}"
        )
    return judgements
