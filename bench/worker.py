"""Run one phase of one system in this process and write its result as JSON.

The harness (``bench/ingestion_benchmark.py``) starts this module once per
system and phase, so that every measurement starts from a fresh process (as a
scheduled rerun does) and the peak RSS the harness reads is that phase's alone:

    python -m bench.worker SYSTEM PHASE SPEC_JSON RESULT_JSON
"""

import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    system, phase, spec_path, result_path = argv
    started = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    if system == "langchain":
        from bench.peers import run_langchain as run
    elif system in ("llamaindex", "llamaindex-sized"):
        from bench.peers import run_llamaindex as run

        spec["llamaindex_sized"] = system == "llamaindex-sized"
    elif system == "ours":
        from bench.ours import run_pipeline as run
    elif system == "bare":
        from bench.ours import run_bare_encode as run
    else:
        raise ValueError(f"unknown system {system!r}")
    import_s = time.perf_counter() - started
    result = run(spec, phase)
    result.update(
        system=system,
        phase=phase,
        import_s=import_s,
        self_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    Path(result_path).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
