"""The local instance configuration (dagster.yaml) with a real dagster daemon and real runs.

* A run whose worker is killed (kill -9) inside document_embeddings is marked
  failed and its qdrant_local pool slot is freed, so the next run goes through
  without anyone's help.
* Two RAG runs submitted at once with different sources run one after the
  other, and each one indexes its own documents.

The instance is the project's dagster.yaml with only the run-monitoring
intervals shortened, so the test does not wait the production 30 s.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from genai_assets import settings

pytestmark = pytest.mark.slow

CODE_LOCATION = Path(__file__).with_name("instance_code_location.py")
JOB = "rag_ingestion_job"
SECTION = "Skyline Vault keeps encrypted snapshots of every protected volume. "


def project_instance_config() -> dict:
    return yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())


def test_the_local_instance_monitors_runs_and_queues_one_rag_run_at_a_time():
    config = project_instance_config()
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["poll_interval_seconds"] <= 60
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 60
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "genai_assets/domain", "value": "rag", "limit": 1} in limits


def write_corpus(folder: Path, prefix: str, n_docs: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n_docs):
        body = "\n\n".join(f"## Part {j}\n\n{prefix} {i}.{j}. " + SECTION * 8 for j in range(4))
        (folder / f"{prefix}-{i}.md").write_text(f"# {prefix} {i}\n\n{body}\n")


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    """A DAGSTER_HOME with the project's dagster.yaml (shorter monitoring), and its daemon."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = project_instance_config()
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(settings.PROJECT_ROOT)}
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-f", str(CODE_LOCATION)],
        env=env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield home, env
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def launch(env: dict, sources: list[str]) -> str:
    """Submit one run of the job to the instance's queue; returns its run id."""
    run_config = {"ops": {"raw_documents": {"config": {"sources": sources}}}}
    run_id = str(uuid.uuid4())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "launch",
            "-f",
            str(CODE_LOCATION),
            "-j",
            JOB,
            "--config-json",
            json.dumps(run_config),
            "--run-id",
            run_id,
        ],
        env=env,
        cwd=env["DAGSTER_HOME"],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return run_id


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def pids_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """The run worker's pid and the document_embeddings step process's pid, once both run."""
    pids = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and (
            match := re.search(r"Started process for run \(pid: (\d+)\)", record.message)
        ):
            pids["run_worker"] = int(match.group(1))
        if (
            event.event_type == dg.DagsterEventType.STEP_WORKER_STARTED
            and event.step_key == "document_embeddings"
        ):
            pids["step"] = int(event.event_specific_data.metadata["pid"].value)
    return pids if {"run_worker", "step"} <= set(pids) else {}


def materialization(instance: dg.DagsterInstance, run_id: str, asset: str) -> dict:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialized = record.dagster_event.event_specific_data.materialization
        if materialized.asset_key == dg.AssetKey(asset):
            return {k: getattr(v, "value", v) for k, v in materialized.metadata.items()}
    raise AssertionError(f"run {run_id} did not materialize {asset}")


def test_a_killed_run_is_failed_and_the_next_run_proceeds(daemon, tmp_path):
    _, env = daemon
    corpus = tmp_path / "corpus"
    write_corpus(corpus, "vault", 8)
    with dg.DagsterInstance.get() as instance:
        killed = launch(env, [str(corpus)])
        pids = wait_for(lambda: pids_of(instance, killed), 300, "document_embeddings to start")
        # The worker dies as in an OOM kill: no chance to report anything.
        os.kill(pids["step"], signal.SIGKILL)
        os.kill(pids["run_worker"], signal.SIGKILL)
        dead = wait_for(lambda: finished(instance, killed), 90, "the killed run to be marked")
        assert dead.status == dg.DagsterRunStatus.FAILURE

        following = launch(env, [str(corpus)])
        done = wait_for(lambda: finished(instance, following), 400, "the next run to finish")
        assert done.status == dg.DagsterRunStatus.SUCCESS, instance.all_logs(following)[-5:]
        assert materialization(instance, following, "document_embeddings")["points"] > 0


def test_two_rag_runs_at_once_each_index_their_own_documents(daemon, tmp_path):
    _, env = daemon
    first, second = tmp_path / "first", tmp_path / "second"
    write_corpus(first, "vault", 6)
    write_corpus(second, "keystone", 3)
    with dg.DagsterInstance.get() as instance:
        run_a = launch(env, [str(first)])
        run_b = launch(env, [str(second)])
        runs = [
            wait_for(lambda r=r: finished(instance, r), 500, f"run {r}") for r in (run_a, run_b)
        ]
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        records = {r: instance.get_run_record_by_id(r) for r in (run_a, run_b)}
        # The queue admitted one RAG run at a time: no overlap, so no mixed inputs.
        a, b = sorted(records.values(), key=lambda record: record.start_time)
        assert b.start_time >= a.end_time
        for run_id, n_docs in ((run_a, 6), (run_b, 3)):
            assert materialization(instance, run_id, "raw_documents")["documents"] == n_docs
            embedded = materialization(instance, run_id, "document_embeddings")
            assert embedded["documents_skipped"] == 0
            assert embedded["documents_new"] + embedded["documents_unchanged"] == n_docs
