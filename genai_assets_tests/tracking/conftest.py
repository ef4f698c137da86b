"""Real tracking and metrics servers on 127.0.0.1, on free ports, stopped after the module.

* ``mlflow_server``: ``mlflow server`` with a SQLite backend and a local artifact store.
* ``pushgateway`` and ``prometheus``: Debian's prometheus-pushgateway and prometheus,
  the latter scraping the former every second (``honor_labels``, as a Pushgateway
  scrape must be), with the shipped alert rules loaded.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERT_RULES = REPO / "monitoring" / "prometheus" / "genai_assets_alerts.yml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url}: the server exited ({process.returncode}): {log.read_text()}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout_s} s: {log.read_text()[-2000:]}")


def start(command: list[str], ready_url: str, folder: Path, timeout_s: float = 90):
    log = folder / "server.log"
    with log.open("wb") as handle:
        # A session of its own: `mlflow server` runs its web server as a child process,
        # and stopping the session's group stops both.
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
        )
    try:
        wait_until_ready(process, ready_url, log, timeout_s)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # the server and its children have exited already
        process.wait()
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """The URI of a real MLflow tracking server with a model registry."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    executable = Path(sys.executable).parent / "mlflow"
    command = [str(executable), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts"), "--workers", "1"]
    process = start(command, f"http://127.0.0.1:{port}/health", folder)
    yield f"http://127.0.0.1:{port}"
    stop(process)


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/install_system_deps.sh")
    return path


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    """The URL of Debian's prometheus-pushgateway."""
    folder = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    command = [_binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"]
    process = start(command, f"http://127.0.0.1:{port}/-/ready", folder)
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, pushgateway):
    """The URL of Debian's prometheus, scraping the Pushgateway, with the shipped rules."""
    folder = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = [_binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}"]
    command += [f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"]
    process = start(command, f"http://127.0.0.1:{port}/-/ready", folder)
    yield f"http://127.0.0.1:{port}"
    stop(process)
