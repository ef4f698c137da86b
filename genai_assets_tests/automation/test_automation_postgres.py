"""The documented PostgreSQL instance config, against a real PostgreSQL server started here.

Uses Debian's ``postgresql`` package (``make test`` installs it when missing via
scripts/install_system_deps.sh). As root the server runs as the ``postgres``
user through ``runuser``, as initdb refuses to run as root.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from genai_assets import settings
from genai_assets.defs.rag.assets import raw_documents
from genai_assets.resources.document_store import LocalDocumentStore
from genai_assets.resources.documents import DocumentSourcesResource

PASSWORD = "skyvault-keystone-test"


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if isinstance(found, list):
        return found[-1] if found else None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    """A PostgreSQL server on a free port with password authentication, for this module."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    as_root = os.geteuid() == 0
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs Debian's package)")
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root but there is no 'postgres' user to run the server")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="genai-pg-"))
    data, pwfile = root / "data", root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}")
    run(
        pg_ctl,
        "-D",
        str(data),
        "-o",
        f"-h 127.0.0.1 -p {port} -k {root}",
        "-l",
        str(root / "server.log"),
        "-w",
        "start",
    )
    try:
        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", password=PASSWORD, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        connection.cursor().execute("CREATE DATABASE dagster")
        connection.close()
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "password": PASSWORD}
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_materialization_on_the_postgres_instance(postgres_server, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres_server["host"])
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres_server["port"]))
    monkeypatch.setenv("DAGSTER_PG_USER", postgres_server["user"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres_server["password"])
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "replication.md").write_text(
        "# Replication\n\nSkyline Vault replicates snapshots to a secondary site over port 8443.\n"
    )

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = dg.materialize(
            [raw_documents],
            instance=instance,
            resources={
                "document_sources": DocumentSourcesResource(sources=[str(docs)]),
                "document_store": LocalDocumentStore(),
            },
        )
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
        assert event.run_id == result.run_id
        assert event.asset_materialization.metadata["documents"].value == 1
        # Concurrency defaults from the instance config.
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1

    # The run and its events really are in PostgreSQL.
    with psycopg2.connect(
        host=postgres_server["host"],
        port=postgres_server["port"],
        user=postgres_server["user"],
        password=postgres_server["password"],
        dbname="dagster",
    ) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (result.run_id, "ASSET_MATERIALIZATION"),
        )
        assert cursor.fetchone() == (1,)
