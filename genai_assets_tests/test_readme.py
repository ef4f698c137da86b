"""The README's examples run as written.

Shell blocks marked ``<!-- readme-test -->`` run for real, each command in its
own temporary ``DAGSTER_HOME`` (with the checkout's ``dagster.yaml``, as the
README sets it up), from the checkout, with the project's virtualenv active.
The commands start together, so the block costs about as long as its slowest
command. Every run config the README shows (a YAML block with ``ops:``) is
validated against the code location's asset job.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from genai_assets import settings
from genai_assets.definitions import defs as load_definitions

README = settings.PROJECT_ROOT / "README.md"
MARKER = "<!-- readme-test -->"
COMMAND_TIMEOUT_S = 240

_FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """A fenced block of the README: its language, text and whether it is marked to run."""

    lang: str
    body: str
    marked: bool


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, in order; marked when the line before the fence is the marker."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        blocks.append(Block(match["lang"], match["body"], before.strip() == MARKER))
    return blocks


def shell_commands(body: str) -> list[str]:
    """The commands of a shell block: continuations joined, blanks and comment lines left out."""
    joined = body.replace("\\\n", " ")
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_readme_marks_the_commands_it_promises_run():
    blocks = readme_blocks(README.read_text())
    commands = [c for b in blocks if b.marked for c in shell_commands(b.body)]
    assert any(c.startswith("dg list defs") for c in commands), commands
    assert any(c.startswith("dg launch") and "--config-json" in c for c in commands), commands
    assert all(b.lang == "bash" for b in blocks if b.marked)


def test_blocks_and_commands_are_parsed_as_written():
    text = "\n".join(
        [
            "intro",
            MARKER,
            "```bash",
            "dg launch --assets a \\",
            "  --config-json '{}'   # why",
            "# a comment line",
            "",
            "dg list defs",
            "```",
            "",
            "```yaml",
            "ops: {}",
            "```",
        ]
    )
    shell, config = readme_blocks(text)
    assert shell.marked and not config.marked and config.lang == "yaml"
    assert shell_commands(shell.body) == [
        "dg launch --assets a    --config-json '{}'   # why",
        "dg list defs",
    ]


@pytest.fixture(scope="module")
def running_commands(tmp_path_factory):
    """Every marked command, started at once, each in a fresh DAGSTER_HOME."""
    venv_bin = Path(sys.executable).parent
    started = []
    for block in readme_blocks(README.read_text()):
        if not block.marked:
            continue
        for command in shell_commands(block.body):
            home = tmp_path_factory.mktemp("readme_dagster_home")
            shutil.copy(settings.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "VIRTUAL_ENV": str(venv_bin.parent),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "RAGAS_DO_NOT_TRACK": "true",
            }
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=settings.PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started.append((command, process))
    yield started
    for _, process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_every_run_config_in_the_readme_is_valid(running_commands):
    # Runs while the commands do: loading the definitions takes a few seconds.
    job = load_definitions().resolve_implicit_global_asset_job_def()
    configs = [
        yaml.safe_load(block.body)
        for block in readme_blocks(README.read_text())
        if block.lang == "yaml" and re.search(r"^ops:", block.body, re.M)
    ]
    assert len(configs) >= 2  # the fine-tuning and the batch inference examples
    for config in configs:
        dg.validate_run_config(job, config)
    with pytest.raises(dg.DagsterInvalidConfigError, match="nope"):
        dg.validate_run_config(job, {"ops": {"base_model": {"config": {"nope": 1}}}})


def test_every_marked_command_exits_zero(running_commands):
    assert running_commands
    failures = []
    for command, process in running_commands:
        output, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
        if process.returncode != 0:
            failures.append(f"$ {command}\nexit {process.returncode}\n{output[-3000:]}")
        elif command.startswith("dg launch"):
            assert "RUN_SUCCESS" in output, f"$ {command}\n{output[-3000:]}"
    assert not failures, "\n\n".join(failures)
