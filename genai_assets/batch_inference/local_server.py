"""Start ``transformers serve`` on 127.0.0.1 for a local model folder: a real OpenAI-compatible API.

Used by the end-to-end test and meant for ``make run``: batch inference (and
anything else that takes the ``llm`` resource) can then run offline against
the fine-tuned model. With a model on the command line, each request's
``model`` must be the exact folder path, and ``/v1/models`` needs the HF cache
folder to exist, so :func:`serve_model` creates ``$HF_HOME/hub``.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LocalServer:
    """A running server: the ``base_url`` and ``model`` to give the ``llm`` resource."""

    base_url: str
    model: str
    pid: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_model(
    model_dir: Path,
    hf_home: Path,
    port: int | None = None,
    ready_timeout_s: float = 120.0,
    device: str = "cpu",
) -> Iterator[LocalServer]:
    """Run ``transformers serve MODEL_DIR`` until the block ends; its log is ``hf_home/serve.log``.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json``.
        RuntimeError: the server exited or did not answer ``/health`` in time
            (the message includes the end of its log).
    """
    model_dir = model_dir.resolve()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder (no config.json)")
    port = port or free_port()
    (hf_home / "hub").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cli = Path(sys.executable).parent / "transformers"
    command = [str(cli), "serve", str(model_dir), "--device", device]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log_path = hf_home / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with {process.returncode}:\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"transformers serve did not answer {root}/health in {ready_timeout_s} s:\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield LocalServer(base_url=f"{root}/v1", model=str(model_dir), pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
