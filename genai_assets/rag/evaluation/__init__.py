"""RAG evaluation: how well an index answers a golden set, and whether it may go live.

One module per job, in the order an evaluation uses them:

* ``golden_set``: the questions and what answers each;
* ``retrieval_metrics``: relevance of a retrieved chunk, hit rate, recall, MRR, nDCG;
* ``ragas_metrics``: the ragas metrics, without an LLM and LLM-judged;
* ``collection``: retrieving from a collection and scoring every question (one row each);
* ``scores``: means and coverage over those rows, and the worst questions;
* ``gate``: the retrieval quality gate on the means.
"""
