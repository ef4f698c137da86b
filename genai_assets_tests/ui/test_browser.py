"""The Dagster UI as a user sees it, in a real browser.

Starts `dagster dev` (webserver and daemon) on 127.0.0.1 with a temporary
DAGSTER_HOME and a four-document corpus, opens the UI in headless Chromium,
checks that the asset graph shows every asset of the Definitions, materializes
the RAG ingestion assets by clicking in the UI, and checks that the run's
progress lines and the materialization metadata are shown. Screenshots go to
test-artifacts/ui/. Deselect with `-m "not browser"`.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from genai_assets import settings
from genai_assets.definitions import defs as load_definitions

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PROJECT_ROOT = settings.PROJECT_ROOT
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 150
RUN_TIMEOUT_S = 240
INGESTION_ASSETS = ["raw_documents", "document_embeddings"]
INGESTION_SELECTION = 'tag:"stage"="ingestion"'


# `dagster dev` started from a script ignores SIGTERM: reset the handlers, then exec it.
WRAPPER = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

CORPUS = {
    "snapshots.md": "# Snapshots\n\nA snapshot is a point-in-time, deduplicated copy of a vault. "
    "Create one with `skyvault snapshot create --vault finance`. Skyline Vault encrypts every "
    "snapshot with a key from Keystone before it leaves the agent.\n",
    "retention.md": "# Retention policies\n\nA retention policy decides how long restore points "
    "are kept, for example 7 daily, 4 weekly and 12 monthly. Set it in "
    "`/etc/skyvault/vault.toml` under `[retention]`; expired snapshots are pruned nightly.\n",
    "replication.md": "# Replication\n\nCorvid Systems recommends replicating each vault to a "
    "secondary site. Replication runs over port 8443 and only sends blocks the secondary does "
    "not hold yet, so deduplication also saves bandwidth.\n",
    "quotas.md": "# Quotas\n\nA quota caps the stored bytes of a vault after deduplication. "
    "`skyvault quota set finance 2TB` sets it; agents are warned at 90 percent and backups "
    "stop at 100 percent until old restore points expire.\n",
}


@dataclass(frozen=True)
class DagsterUI:
    """A running `dagster dev` and what the test needs to talk to it."""

    url: str
    location: str
    repository: str
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def group_url(self, group: str) -> str:
        return f"{self.url}/locations/{self.repository}@{self.location}/asset-groups/{group}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_loaded(process: subprocess.Popen, url: str, log: Path) -> tuple[str, str]:
    """Poll GraphQL until the code location is loaded; return (location, repository)."""
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { ... on RepositoryLocation { repositories { name } } "
        "... on PythonError { message } } } } } }"
    )
    body = json.dumps({"query": query}).encode()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log_tail(log)}")
        try:
            request = urllib.request.Request(
                f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
        except OSError:  # not listening yet
            time.sleep(1)
            continue
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if "message" in loaded:
                pytest.fail(f"code location failed to load: {loaded['message']}")
            if entry["loadStatus"] == "LOADED" and loaded.get("repositories"):
                return entry["name"], loaded["repositories"][0]["name"]
        time.sleep(1)
    pytest.fail(f"the Dagster UI did not load within {STARTUP_TIMEOUT_S}s:\n{log_tail(log)}")


def stop(process: subprocess.Popen) -> None:
    """Stop `dagster dev` and everything it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # children that outlived dagster dev
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory) -> Iterator[DagsterUI]:
    root = tmp_path_factory.mktemp("dagster_ui")
    home, corpus = root / "dagster_home", root / "corpus"
    home.mkdir()
    corpus.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    for name, text in CORPUS.items():
        (corpus / name).write_text(text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "dagster-dev.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DAGSTER_HOME": str(home),
        # Nothing may start runs by itself: the test launches the one run it checks.
        "GENAI_ASSETS_AUTOMATION_DEFAULT_STATUS": "stopped",
        "GENAI_ASSETS_ENV": "local",
        "GENAI_ASSETS_DOCUMENT_SOURCES": str(corpus),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAGAS_DO_NOT_TRACK": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("QDRANT_URL", None)  # the embedded Qdrant under the temporary DAGSTER_HOME
    command = [sys.executable, "-m", "dagster", "dev", "-m", "genai_assets.definitions"]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, sys.executable, *command[1:]]
            + ["-h", "127.0.0.1", "-p", str(port)],
            cwd=home,  # the instance folder, as `make dev` runs with DAGSTER_HOME
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        location, repository = wait_until_loaded(process, url, log)
        ui = DagsterUI(url, location, repository, log)
        # What "Skip" on the first-visit "Join the Dagster community" dialog does.
        ui.graphql("mutation { setNuxSeen }")
        yield ui
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian package chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    yield page
    context.close()


def expected_assets() -> dict[str, str]:
    """Every asset of the Definitions, by key, with its group."""
    graph = load_definitions().resolve_asset_graph()
    return {node.key.to_user_string(): node.group_name for node in graph.asset_nodes}


def shown_as(label: str, key: str) -> bool:
    """Whether a node label is this key; the zoomed-out graph cuts long names in the middle."""
    if "…" not in label:
        return label == key
    head, _, tail = label.partition("…")
    return len(key) > len(head) + len(tail) and key.startswith(head) and key.endswith(tail)


def check_asset_graph(page: Page, url: str, assets: dict[str, str], screenshot: Path) -> None:
    """The global asset graph at ``url`` shows a node for every asset key in ``assets``."""
    # The graph zooms to fit its width and draws only the nodes inside the window:
    # a tall window keeps every group in view.
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.goto(f"{url}/asset-groups")
    nodes = page.locator('[class*="AssetNode_assetName"]')
    groups = set(assets.values())
    if len(groups) > 1:
        # With several groups the graph starts with every group collapsed: expand all
        # (Alt+E, the shortcut of the graph settings' "Expand all groups").
        for group in groups:
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        for _attempt in range(3):  # the shortcut is live once the graph's toolbar is
            page.keyboard.press("Alt+KeyE")
            try:
                expect(nodes).not_to_have_count(0, timeout=5_000)
                break
            except AssertionError:
                continue
    expect(nodes).to_have_count(len(assets))
    # Each node's status row reads "Loading..." until the asset's state has arrived.
    expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    boxes = [box for node in nodes.all() if (box := node.bounding_box())]
    top = max(0, min(box["y"] for box in boxes) - 200)
    bottom = max(box["y"] + box["height"] for box in boxes) + 200
    page.screenshot(path=screenshot, clip={"x": 0, "y": top, "width": 1600, "height": bottom - top})
    labels = [label.strip() for label in nodes.all_inner_texts()]
    missing = [key for key in assets if not any(shown_as(label, key) for label in labels)]
    assert not missing, f"not in the asset graph: {missing}; shown: {labels}"


def test_asset_graph_shows_every_asset(dagster_ui, page):
    check_asset_graph(page, dagster_ui.url, expected_assets(), ARTIFACTS / "asset_graph.png")


AUTOMATION_TAGS = {
    "dagster/sensor_name",
    "dagster/schedule_name",
    "dagster/backfill",
    "dagster/tick",
    "dagster/auto_materialize",
    "dagster/from_automation_condition",
}


def launched_run(dagster_ui: DagsterUI, before: set[str]) -> tuple[str, list[str]]:
    """The run launched from the UI after ``before``: its id and the assets it materializes.

    Runs that sensors, schedules or backfills started meanwhile are not it.
    """
    query = (
        "{ runsOrError(limit: 10) { ... on Runs { results { "
        "runId tags { key } assetSelection { path } } } } }"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = dagster_ui.graphql(query)["runsOrError"]["results"]
        new = [
            run
            for run in runs
            if run["runId"] not in before
            and not AUTOMATION_TAGS & {tag["key"] for tag in run["tags"]}
        ]
        if new:
            first = new[-1]  # newest first: the UI's run came before anything it triggered
            keys = ["/".join(key["path"]) for key in first["assetSelection"] or []]
            return first["runId"], keys
        time.sleep(0.5)
    pytest.fail("no run appeared after clicking Materialize")


def wait_for_run(dagster_ui: DagsterUI, run_id: str) -> str:
    query = """
    query Run($runId: ID!) {
      runOrError(runId: $runId) {
        ... on Run { status }
        ... on RunNotFoundError { message }
      }
    }"""
    failure = """
    query Failure($runId: ID!) {
      logsForRun(runId: $runId) {
        ... on EventConnection { events {
          __typename
          ... on MessageEvent { message }
          ... on ExecutionStepFailureEvent { error { message } }
        } }
      }
    }"""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = "NOT_STARTED"
    while time.monotonic() < deadline:
        status = dagster_ui.graphql(query, {"runId": run_id})["runOrError"].get("status")
        if status in ("FAILURE", "CANCELED"):
            events = dagster_ui.graphql(failure, {"runId": run_id})["logsForRun"]["events"]
            errors = [e for e in events if "Failure" in e["__typename"]]
            pytest.fail(f"run {run_id} ended {status}: {json.dumps(errors, indent=1)[:4000]}")
        if status == "SUCCESS":
            return status
        time.sleep(1)
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT_S}s:\n{log_tail(dagster_ui.log)}")


def test_materialize_rag_ingestion_from_the_ui(dagster_ui, page):
    before_query = "{ runsOrError { ... on Runs { results { runId } } } }"
    before = {run["runId"] for run in dagster_ui.graphql(before_query)["runsOrError"]["results"]}

    # Filter the RAG group's graph to the ingestion assets, as a user would, and
    # materialize what is shown.
    page.goto(dagster_ui.group_url("rag"))
    nodes = page.locator('[class*="AssetNode_assetName"]')
    expect(nodes.first).to_be_visible()
    search = page.locator(".CodeMirror").first  # the "Search and filter assets" box
    for _attempt in range(3):  # a dialog popping up can steal the focus while typing
        search.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(INGESTION_SELECTION)
        if INGESTION_SELECTION in search.inner_text():
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"lineage~tag"))
    expect(nodes).to_have_count(len(INGESTION_ASSETS))
    assert sorted(nodes.all_inner_texts()) == sorted(INGESTION_ASSETS)
    page.screenshot(path=ARTIFACTS / "rag_ingestion_filtered.png")
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize all$")).click()
    expect(page.get_by_text(re.compile(r"Launched run"))).to_be_visible()
    run_id, selection = launched_run(dagster_ui, before)
    assert sorted(selection) == sorted(INGESTION_ASSETS)
    wait_for_run(dagster_ui, run_id)

    # The run page: success, and the progress lines in the run's log view.
    page.goto(f"{dagster_ui.url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    page.get_by_placeholder("Filter…").fill("chunks embedded")
    progress = page.get_by_text(
        re.compile(r"processed \d+/\d+ documents \(100%\), \d+ chunks embedded")
    )
    expect(progress.first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "run.png")

    # The asset page: the latest materialization's metadata as numbers.
    page.set_viewport_size({"width": 1600, "height": 1700})
    page.goto(f"{dagster_ui.url}/assets/document_embeddings")
    metadata = page.locator("table").filter(has_text="chunks_embedded")
    expect(metadata).to_be_visible()
    for key, value in [
        ("documents_new", str(len(CORPUS))),
        ("chunks_embedded", None),
        ("points", None),
        ("chunks_per_second", None),
    ]:
        row = metadata.locator("tr").filter(has=page.get_by_text(key, exact=True))
        expect(row).to_have_count(1)
        cells = row.locator("td")
        shown = cells.last.inner_text().strip()
        if value is not None:
            assert shown == value, f"{key}: {shown!r}"
        else:
            assert float(shown) > 0, f"{key}: {shown!r}"
    page.screenshot(path=ARTIFACTS / "asset_document_embeddings.png")

    # The same numbers as plots across materializations.
    page.get_by_role("button").filter(has_text=re.compile(r"^Plots$")).click()
    expect(page.get_by_text("chunks_per_second", exact=True).first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "asset_document_embeddings_plots.png")
