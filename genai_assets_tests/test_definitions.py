"""The whole code location: it loads, and its asset graph is what the UI should show.

Every asset must carry what a newcomer reads in the Dagster UI (a description,
a group, kinds) and a code version, so the UI's staleness indicators mean
something. The RAG ingestion group is pinned key by key: an unintended change
to its shape fails here.
"""

import ast
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from genai_assets import settings
from genai_assets.definitions import defs as load_definitions
from genai_assets.defs.resources import build_resources, document_sources_from_env

PROJECT_ROOT = settings.PROJECT_ROOT
GROUPS = {"rag", "fine_tuning", "batch_inference"}
MIN_DESCRIPTION_WORDS = 12

# The RAG ingestion group: asset -> (upstream assets, kinds).
RAG_GROUP = {
    "raw_documents": (set(), {"python", "text"}),
    "document_embeddings": ({"raw_documents"}, {"qdrant", "sentence_transformers"}),
}


@pytest.fixture(scope="module")
def asset_nodes() -> dict[str, Any]:
    graph = load_definitions().resolve_asset_graph()
    return {node.key.to_user_string(): node for node in graph.asset_nodes}


def test_definitions_load_with_assets(asset_nodes):
    assert set(RAG_GROUP) <= set(asset_nodes)


def test_every_asset_reads_well_in_the_ui(asset_nodes):
    problems = []
    for key, node in sorted(asset_nodes.items()):
        words = len((node.description or "").split())
        if words < MIN_DESCRIPTION_WORDS:
            problems.append(f"{key}: description of {words} words (want {MIN_DESCRIPTION_WORDS}+)")
        if node.group_name not in GROUPS:
            problems.append(f"{key}: group {node.group_name!r} is not one of {sorted(GROUPS)}")
        if not node.kinds:
            problems.append(f"{key}: no kinds")
        if not node.code_version:
            problems.append(f"{key}: no code_version")
    assert not problems, "\n".join(problems)


def test_rag_ingestion_group_is_pinned(asset_nodes):
    rag = {key: node for key, node in asset_nodes.items() if node.group_name == "rag"}
    actual = {
        key: ({parent.to_user_string() for parent in node.parent_keys}, set(node.kinds))
        for key, node in rag.items()
        if node.tags.get("stage") == "ingestion"
    }
    assert actual == RAG_GROUP
    for key in RAG_GROUP:
        assert rag[key].owners == ["team:ml-platform"], key


def test_loading_and_resolving_jobs_warns_nothing_deprecated():
    """load_from_defs_folder, resolved jobs, no rebuilt ops: no Dagster deprecation at load."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        definitions = load_definitions()
        repository = definitions.get_repository_def()
        for name in repository.job_names:
            definitions.resolve_job_def(name)
    unwanted = [
        f"{warning.filename}:{warning.lineno}: {warning.message}"
        for warning in caught
        if issubclass(warning.category, (DeprecationWarning, dg.SupersessionWarning))
        or "Found asset job named" in str(warning.message)
    ]
    assert not unwanted, "\n".join(unwanted)


def test_the_package_uses_only_public_dagster_apis():
    """No import of a private Dagster module (``dagster._...``): an upgrade may break those."""
    private = []
    for path in sorted((PROJECT_ROOT / "genai_assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            private += [
                f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0].startswith("dagster") and "._" in name
            ]
    assert not private, "\n".join(private)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("/data/docs", ["/data/docs"]),
        (
            " /a , s3://bucket/prefix,,https://example.com/x.md ",
            ["/a", "s3://bucket/prefix", "https://example.com/x.md"],
        ),
    ],
)
def test_document_sources_from_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("GENAI_ASSETS_DOCUMENT_SOURCES", raising=False)
    else:
        monkeypatch.setenv("GENAI_ASSETS_DOCUMENT_SOURCES", value)
    assert document_sources_from_env() == expected
    assert build_resources("local")["document_sources"].sources == expected


def test_dg_check_defs_passes(tmp_path):
    """`dg check defs` in the project root, with the project's dagster.yaml as the instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    dg_cli = Path(sys.executable).parent / "dg"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DAGSTER_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    result = subprocess.run(
        [str(dg_cli), "check", "defs"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr
    # The instance's storage lives in DAGSTER_HOME, not in the current directory.
    assert (home / "history").is_dir()


def test_loading_the_code_location_warns_about_nothing():
    # Every `dg launch`, `dg dev` and run log starts by loading the definitions; a
    # warning there (a preview API used on purpose, a deprecation) reaches every user.
    from genai_assets.definitions import defs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        defs()
    assert [str(w.message) for w in caught] == []
