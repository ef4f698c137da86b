"""Batch LLM inference: prompts in, every item out, rate limited, resumable, costed.

Pure logic with no Dagster import: request parsing (:mod:`.items`), the
client-side rate limiter (:mod:`.limiter`), the async engine with retries
(:mod:`.engine`), the reading of each answer into a completion or a classified
failure (:mod:`.responses`), the resumable results journal (:mod:`.results`),
prices (:mod:`.pricing`) and run statistics (:mod:`.stats`). :mod:`.runner`
ties them together for one input file; :mod:`.local_server` starts
``transformers serve`` for a local model.
"""
