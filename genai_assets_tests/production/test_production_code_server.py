"""The code server starts with the Helm values' `dagster api grpc` arguments and env.

Runs the real `dagster api grpc` with the user deployment's arguments (the
module `genai_assets.definitions`, importable here through PYTHONPATH as it is
in the image through the installed package) and its environment
(GENAI_ASSETS_ENV=production, the bucket, ...), then asks it over gRPC for the
code location's assets.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._grpc.client import DagsterGrpcClient

from genai_assets import settings
from genai_assets_tests.production import helm_chart

DAGSTER = Path(sys.executable).parent / "dagster"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deployment() -> dict:
    return helm_chart.user_deployment(helm_chart.load_values())


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    args = _deployment()["dagsterApiGrpcArgs"]
    return subprocess.Popen(
        [str(DAGSTER), "api", "grpc", "--host", "127.0.0.1", "--port", str(port), *args],
        env=env,
        cwd=settings.PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _env(dagster_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENAI_ASSETS_", "AWS_"))}
    env.update({item["name"]: item["value"] for item in _deployment()["env"]})
    env.update(PYTHONPATH=str(settings.PROJECT_ROOT), DAGSTER_HOME=str(dagster_home), **extra)
    return env


@pytest.mark.slow
def test_code_server_serves_the_code_location_in_production(dagster_home: Path) -> None:
    port = _free_port()
    server = _start(_env(dagster_home), port)
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 90
        while client.health_check_query() != "SERVING":
            if server.poll() is not None:
                pytest.fail(f"the code server exited:\n{server.stdout.read()}")
            assert time.monotonic() < deadline, "the code server did not start in 90 s"
            time.sleep(0.5)
        response = dg.deserialize_value(client.list_repositories())
        # The Definitions object `defs` of genai_assets/definitions.py was loaded.
        assert [symbol.attribute for symbol in response.repository_symbols] == ["defs"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_code_server_refuses_production_without_a_bucket(dagster_home: Path) -> None:
    env = _env(dagster_home)
    del env["GENAI_ASSETS_S3_BUCKET"]
    server = _start(env, _free_port())
    try:
        output, _ = server.communicate(timeout=90)
    finally:
        server.kill()
    assert server.returncode != 0
    assert "needs GENAI_ASSETS_S3_BUCKET" in output
