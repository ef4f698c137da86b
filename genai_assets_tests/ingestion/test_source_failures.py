"""Source failures against real servers: only "gone" deletes; outages retry or keep documents.

A local ``http.server`` that is stopped and started again on the same port, and
moto's S3 server, stand in for the document sources; nothing is simulated.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from genai_assets.automation.retries import (
    PermanentExternalError,
    RetrySettings,
    TransientExternalError,
)
from genai_assets.defs.rag.assets import raw_documents
from genai_assets.rag import documents
from genai_assets.rag.documents import Document
from genai_assets.rag.sources import GONE, UNAVAILABLE, SkippedInput, iter_source_entries
from genai_assets.resources.document_store import LocalDocumentStore
from genai_assets.resources.documents import DocumentSourcesResource

PAGES = {"/kb/vault.md": b"# Vault\n\nSkyline Vault keeps encrypted snapshots."}


class DocumentServer:
    """A real HTTP server serving PAGES; ``status`` overrides the answer for a path."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        status = self.status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                code = status.get(self.path, 200 if self.path in PAGES else 404)
                body = PAGES.get(self.path, b"") if code == 200 else b"error"
                self.send_response(code)
                self.send_header("Content-Type", "text/markdown")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.allow_reuse_address = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server():
    document_server = DocumentServer()
    document_server.start()
    yield document_server
    document_server.stop()


def entry_for(uri: str, **kwargs):
    return next(iter_source_entries(uri, **kwargs))


NO_WAIT = RetrySettings(attempts=3, backoff_s=0.0)


def test_http_answers_are_told_apart(server):
    url = server.url("/kb/vault.md")
    assert isinstance(documents.load_entry(entry_for(url)), Document)

    server.status["/kb/vault.md"] = 404
    gone = documents.load_entry(entry_for(url))
    assert isinstance(gone, SkippedInput) and gone.kind == GONE and "404" in gone.reason
    server.status["/kb/vault.md"] = 410
    assert documents.load_entry(entry_for(url)).kind == GONE

    server.status["/kb/vault.md"] = 503
    with pytest.raises(TransientExternalError, match="503"):
        documents.load_entry(entry_for(url))
    server.status["/kb/vault.md"] = 403
    with pytest.raises(PermanentExternalError, match="403"):
        documents.load_entry(entry_for(url))


def test_a_stopped_server_is_an_outage_not_a_deletion(server):
    url = server.url("/kb/vault.md")
    server.stop()  # connection refused on the same port
    with pytest.raises(TransientExternalError, match="ConnectError"):
        documents.load_entry(entry_for(url, http_timeout_s=2))
    result = documents.load_entry(entry_for(url, http_timeout_s=2), optional=True, retry=NO_WAIT)
    assert isinstance(result, SkippedInput) and result.kind == UNAVAILABLE
    assert "after 3 attempts" in result.reason


def test_an_optional_source_is_retried_and_recovers(server):
    url = server.url("/kb/vault.md")
    server.stop()
    waits = []

    def restart_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        server.start()  # back on the same port before the second attempt

    entry = entry_for(url, http_timeout_s=2)
    retry = RetrySettings(attempts=3, backoff_s=0.5)
    result = documents.load_entry(entry, optional=True, retry=retry, sleep=restart_while_waiting)
    assert isinstance(result, Document) and waits == [0.5]


@pytest.fixture
def own_s3():
    """A moto S3 server of this test alone, so it can be stopped."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # One attempt and a short timeout: the outage is classified, not waited out.
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    yield moto, client
    moto.stop()


def test_s3_vanished_key_is_gone_and_an_outage_is_transient(own_s3):
    moto, client = own_s3
    client.create_bucket(Bucket="kb-docs")
    client.put_object(Bucket="kb-docs", Key="docs/a.md", Body=b"# A\n\nAlpha.")
    client.put_object(Bucket="kb-docs", Key="docs/b.md", Body=b"# B\n\nBeta.")
    entries = list(iter_source_entries("s3://kb-docs/docs/", s3_client=client))
    client.delete_object(Bucket="kb-docs", Key="docs/b.md")  # vanishes between listing and reading
    loaded = [documents.load_entry(entry) for entry in entries]
    assert isinstance(loaded[0], Document)
    assert loaded[1].kind == GONE and "NoSuchKey" in loaded[1].reason

    moto.stop()
    with pytest.raises(TransientExternalError):
        documents.load_entry(entries[0])
    with pytest.raises(TransientExternalError):  # listing the prefix fails the same way
        list(documents.iter_documents(["s3://kb-docs/docs/"], s3_client=client))
    unavailable = list(
        documents.iter_documents(
            ["s3://kb-docs/docs/"], s3_client=client, optional_sources={"s3://kb-docs/docs/"}
        )
    )
    assert [(r.uri, r.kind) for r in unavailable] == [("s3://kb-docs/docs/", UNAVAILABLE)]


def sources(*uris, optional=()):
    return {
        "document_sources": DocumentSourcesResource(
            sources=list(uris), optional_sources=list(optional), optional_backoff_s=0.0
        ),
        "document_store": LocalDocumentStore(),
    }


def materialize(resources):
    result = dg.materialize([raw_documents], resources=resources, raise_on_error=False)
    if not result.success:
        return result, None, None
    event = result.get_asset_materialization_events()[0]
    metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    return result, result.output_for_node("raw_documents"), metadata


def test_an_outage_keeps_the_documents_of_an_optional_source_and_fails_a_required_one(
    dagster_home, tmp_path, server
):
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "local.md").write_text("# Local\n\nA local page.")
    url = server.url("/kb/vault.md")
    _, first, _ = materialize(sources(str(folder), url, optional=[url]))
    assert {row["uri"] for row in first} == {f"{folder}/local.md", url}

    server.stop()
    _, kept, metadata = materialize(sources(str(folder), url, optional=[url]))
    assert sorted(kept, key=lambda r: r["uri"]) == sorted(first, key=lambda r: r["uri"])
    [unavailable] = metadata["unavailable_inputs"].records
    assert metadata["unavailable"] == 1 and unavailable.data["input"] == url

    failed, _, _ = materialize(sources(str(folder), url))
    assert not failed.success
    message = failed.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert url in message and "ConnectError" in message


def test_a_dangling_symlink_is_reported_and_keeps_its_document(dagster_home, tmp_path):
    folder, elsewhere = tmp_path / "kb", tmp_path / "mounted"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha.")
    (elsewhere / "b.md").write_text("# B\n\nBeta.")
    (folder / "b.md").symlink_to(elsewhere / "b.md")
    _, first, _ = materialize(sources(str(folder)))
    assert len(first) == 2

    (elsewhere / "b.md").unlink()  # the link's target vanishes (an unmounted volume)
    _, second, metadata = materialize(sources(str(folder)))
    assert {row["uri"] for row in second} == {f"{folder}/a.md", f"{folder}/b.md"}
    [unavailable] = metadata["unavailable_inputs"].records
    assert metadata["unavailable"] == 1 and "dangling symlink" in unavailable.data["reason"]

    (folder / "b.md").unlink()  # the link itself removed: now the document is gone
    _, third, _ = materialize(sources(str(folder)))
    assert [row["uri"] for row in third] == [f"{folder}/a.md"]
