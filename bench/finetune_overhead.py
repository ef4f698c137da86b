"""Fine-tuning overhead: the fine_tuned_model asset against the bare training entry point.

Both train the same base model on the same dataset folder with the same
hyperparameters, in a fresh subprocess each (the asset runs the entry point
under Dagster Pipes, as production does):

* ``bare``: ``python -m genai_assets.fine_tuning.sft --base-model M --dataset D
  --output O --hyperparameters H``, timed around the subprocess;
* ``asset``: ``dg.materialize([fine_tuned_model])`` with base_model and
  training_dataset loaded from the project's IO manager (materialized once
  beforehand, not timed), a fresh instance each time (so the asset never
  reuses an earlier candidate), timed around the call: run set-up, the fingerprint
  of the inputs, Pipes, the manifest and the metadata included.

Target: asset / bare <= 1.1 (medians over ``--repeats`` alternating pairs).
Run from the repository root (about 1 to 3 minutes per pair at the defaults):

    PYTHONPATH=. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python bench/finetune_overhead.py
    PYTHONPATH=. ... python bench/finetune_overhead.py --max-steps 5 --repeats 1   # smoke run
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.1


def main() -> int:
    """Print the table and the ratio; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs to time")
    parser.add_argument("--max-steps", type=int, default=-1, help="-1: the asset's epochs")
    parser.add_argument("--threads", type=int, default=0, help="OMP threads (0: torch default)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    os.environ["DAGSTER_HOME"] = str(work / "home")
    os.environ["FINE_TUNING_ROOT"] = str(work / "fine_tuning")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    os.environ.update(env)

    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from genai_assets.defs.fine_tuning.configs import FineTuneConfig
    from genai_assets.defs.fine_tuning.inputs import base_model, training_dataset
    from genai_assets.defs.fine_tuning.training import fine_tuned_model
    from genai_assets.io_managers import LocalFormatIOManager
    from genai_assets.resources.mlflow_tracking import MlflowTrackingResource
    from genai_assets.resources.training_runner import TrainingRunnerResource

    training = {"max_steps": args.max_steps}
    resources = {
        "training_runner": TrainingRunnerResource(env=env),
        "mlflow": MlflowTrackingResource(),  # off: the bare entry point records nothing either
        "s3": S3Resource(),  # unused: the training data is the shipped local folder
        "io_manager": LocalFormatIOManager(base_dir=str(work / "io")),
    }
    everything = [base_model, training_dataset, fine_tuned_model]
    setup = dg.materialize(everything[:2], resources=resources)
    base = setup.output_for_node("base_model")["name_or_path"]
    dataset = setup.output_for_node("training_dataset")
    hyperparameters = FineTuneConfig(**training).model_dump()

    bare_times, asset_times = [], []
    for repeat in range(args.repeats):
        output = work / "bare" / f"run-{repeat}"
        command = [sys.executable, "-m", "genai_assets.fine_tuning.sft", "--base-model", base]
        command += ["--dataset", dataset["path"], "--output", str(output)]
        command += ["--hyperparameters", json.dumps(hyperparameters)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        bare_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        result = dg.materialize(
            everything,
            selection=["fine_tuned_model"],
            resources=resources,
            run_config={"ops": {"fine_tuned_model": {"config": training}}},
        )
        asset_times.append(time.perf_counter() - started)
        trained = result.asset_materializations_for_node("fine_tuned_model")[0]
        if trained.metadata["trained"].value is not True:
            raise RuntimeError("the asset reused a candidate: the timing would mean nothing")

    bare, asset = statistics.median(bare_times), statistics.median(asset_times)
    ratio = asset / bare
    steps = json.loads((work / "bare" / "run-0" / "manifest.json").read_text())
    rows = [
        ("bare `python -m genai_assets.fine_tuning.sft`", bare_times, bare),
        ("fine_tuned_model asset (dg.materialize)", asset_times, asset),
    ]
    sys.stdout.write(
        f"\ndataset: {dataset['n_train']} train records ({dataset['path']}); base model {base}; "
        f"{steps['training_metrics']['global_step']} steps\n\n"
        "| system | runs (s) | median (s) |\n|---|---|---|\n"
    )
    for name, times, median in rows:
        sys.stdout.write(f"| {name} | {', '.join(f'{t:.2f}' for t in times)} | {median:.2f} |\n")
    verdict = "ok" if ratio <= TARGET else "MISSED"
    sys.stdout.write(f"\nasset / bare = {ratio:.3f} (target <= {TARGET}: {verdict})\n")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
