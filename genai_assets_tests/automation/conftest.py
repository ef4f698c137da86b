"""Shared fixtures of the automation tests: the real code location, a scripted HTTP server."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest


@pytest.fixture(scope="session")
def code_location() -> dg.Definitions:
    """The project's real Definitions, with the cross-cutting policy applied."""
    from genai_assets.definitions import defs

    return defs()


@dataclass
class Received:
    """One request the scripted server received."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class ScriptedServer:
    """A real local HTTP server that answers from a script of (status, headers, body).

    When the script runs out it answers with the last entry again.
    """

    url: str
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *entries: tuple[int, dict[str, str], bytes | str]) -> None:
        """Replace the script."""
        with self.lock:
            self.script = [
                (status, headers, body.encode() if isinstance(body, str) else body)
                for status, headers, body in entries
            ]
            self.received.clear()

    def next_answer(self) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if len(self.script) > 1:
                return self.script.pop(0)
            return self.script[0] if self.script else (200, {}, b"ok")


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on a free port of 127.0.0.1, for the length of one test."""
    state: dict[str, ScriptedServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            server = state["server"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with server.lock:
                server.received.append(
                    Received(time.monotonic(), self.command, self.path, dict(self.headers), body)
                )
            status, headers, payload = server.next_answer()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle  # noqa: N815
        do_POST = _handle  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["server"] = ScriptedServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
