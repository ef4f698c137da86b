"""TEST DOUBLE: an OpenAI-compatible chat server that misbehaves on purpose.

Real providers' failure modes (429 storms with Retry-After, 500s, requests
that hang past the client's timeout, connections dropped mid-request, and 200
answers whose body is not a usable chat completion: malformed or truncated
JSON, a wrong shape, no choices, a proxy's HTML page) cannot be produced on
demand by a real server, so the fault tests and the benchmark
use this small aiohttp app on 127.0.0.1 instead. It runs in its own thread
and event loop and logs every arrival (monotonic time, item, attempt,
action) so tests can check what the client really sent.

The item an arrival belongs to is the first word of the last message, so
test prompts start with their id.
"""

import asyncio
import json
import math
import multiprocessing
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from aiohttp import web

ACTIONS = (
    "ok",
    "429",
    "500",
    "503",
    "timeout",
    "drop",
    "cut",
    "400",
    "html",
    "502html",
    "badjson",
    "truncated",
    "wrongshape",
    "nochoices",
)
HTML_PAGE = "<html><body>" + "Bad gateway. " * 200 + "</body></html>"
# Complete HTTP answers (status 200, JSON content type, exact Content-Length) whose body
# the client cannot use: only the JSON parse or the shape check can catch them.
BAD_BODIES = {
    "badjson": b'{"id": "chatcmpl-bad", "choices": [{"index": 0, message: oops}]}',
    "truncated": b'{"id": "chatcmpl-trunc", "object": "chat.completion", "choices": [{"ind',
    "wrongshape": b'{"object": "chat.completion", "choices": [{"index": 0, "text": "hi"}]}',
    "nochoices": b'{"id": "chatcmpl-empty", "object": "chat.completion", "choices": []}',
}

# Every way an answer can be unusable or fail: the bodies above, a proxy's page (200 and
# 502), 429 with Retry-After, 5xx, a request that hangs past the client's timeout, a
# connection closed before the answer or half way through its body.
FAULTS = (*BAD_BODIES, "html", "429", "500", "503", "502html", "timeout", "drop", "cut")


def misbehave_on_a_third(item: str, attempt: int) -> str:
    """A plan: about one request in three gets a fault from ``FAULTS``, drawn per (item,
    attempt) from a fixed seed, so a run is reproducible and every attempt is a new draw.
    """
    rng = random.Random(f"{item}/{attempt}")
    return rng.choice(FAULTS) if rng.random() < 1 / 3 else "ok"


@dataclass(frozen=True)
class Arrival:
    """One request as the server saw it."""

    at: float
    item: str
    attempt: int
    action: str


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "test_double", "code": str(status)}}
    return web.json_response(body, status=status, headers=headers)


class MisbehavingOpenAIServer:
    """A chat-completions endpoint whose answer per (item, attempt) comes from ``plan``.

    Args:
        plan: ``plan(item, attempt) -> action`` with an action from ``ACTIONS``;
            ``None`` answers every request successfully.
        delay_s: Service time of a successful answer.
        retry_after_ms: Retry-After sent with injected 429s (as ``retry-after-ms``).
        hang_s: How long a ``timeout`` action holds the request before answering.
        enforce_limit: ``(requests, window_s)``: answer 429 (with the exact wait as
            Retry-After) to any request beyond that many in a sliding window, as a
            provider does.
    """

    def __init__(
        self,
        plan: Callable[[str, int], str] | None = None,
        delay_s: float = 0.0,
        retry_after_ms: int = 50,
        hang_s: float = 3.0,
        enforce_limit: tuple[int, float] | None = None,
    ) -> None:
        self.plan = plan
        self.delay_s = delay_s
        self.retry_after_ms = retry_after_ms
        self.hang_s = hang_s
        self.enforce_limit = enforce_limit
        self.arrivals: list[Arrival] = []
        self._attempts: Counter[str] = Counter()
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        """The ``base_url`` for an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def ok_items(self) -> Counter[str]:
        """How many successful answers each item got."""
        return Counter(a.item for a in self.arrivals if a.action == "ok")

    def items_sent(self) -> Counter[str]:
        """How many requests arrived per item."""
        return Counter(a.item for a in self.arrivals)

    def reset_log(self) -> None:
        """Forget arrivals (the attempt counters too)."""
        with self._lock:
            self.arrivals.clear()
            self._attempts.clear()

    def _decide(self, item: str) -> tuple[int, str, float | None]:
        now = time.monotonic()
        with self._lock:
            self._attempts[item] += 1
            attempt = self._attempts[item]
            action = self.plan(item, attempt) if self.plan else "ok"
            wait = None
            if self.enforce_limit is not None and action == "ok":
                limit, window = self.enforce_limit
                while self._accepted and self._accepted[0] <= now - window:
                    self._accepted.popleft()
                if len(self._accepted) >= limit:
                    action = "429"
                    wait = self._accepted[-limit] + window - now
                else:
                    self._accepted.append(now)
            self.arrivals.append(Arrival(now, item, attempt, action))
        return attempt, action, wait

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = body["messages"][-1]["content"]
        item = content.split()[0] if content.split() else ""
        _, action, wait = self._decide(item)
        if action == "429":
            wait_ms = self.retry_after_ms if wait is None else max(1, math.ceil(wait * 1000))
            seconds = str(math.ceil(wait_ms / 1000))
            headers = {"retry-after-ms": str(wait_ms), "retry-after": seconds}
            return _error(429, "Rate limit reached (test double)", headers)
        if action in ("500", "503"):
            return _error(int(action), "Internal error (test double)")
        if action == "html":  # a proxy's page with status 200
            return web.Response(text=HTML_PAGE, content_type="text/html")
        if action == "502html":
            return web.Response(text=HTML_PAGE, status=502, content_type="text/html")
        if action in BAD_BODIES:
            return web.Response(body=BAD_BODIES[action], content_type="application/json")
        if action == "400":
            return _error(400, f"Invalid request for {item} (test double)")
        if action == "drop":  # close before any byte of a response
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)  # never delivered: the connection is gone
        if action == "cut":  # headers and half a body, then close
            response = web.StreamResponse(
                status=200, headers={"content-type": "application/json", "content-length": "500"}
            )
            await response.prepare(request)
            await response.write(b'{"id": "chatcmpl-cut", "choices": [')
            assert request.transport is not None
            request.transport.close()
            return response
        if action == "timeout":
            await asyncio.sleep(self.hang_s)
        elif self.delay_s:
            await asyncio.sleep(self.delay_s)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion = f"echo {content[:40]}"
        completion_tokens = len(completion.split())
        return web.json_response(
            {
                "id": f"chatcmpl-{item}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    def start(self) -> "MisbehavingOpenAIServer":
        """Start serving on a random port of 127.0.0.1 in a background thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=0.5
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            server: Any = site._server
            self.port = server.sockets[0].getsockname()[1]

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(serve())
            except BaseException as error:  # reported to start() below
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="misbehaving-openai", daemon=True)
        self._thread.start()
        ready.wait(timeout=10)
        if failure:
            raise RuntimeError("the test double server did not start") from failure[0]
        if self.port is None:
            raise RuntimeError("the test double server did not start in 10 s")
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None or self._runner is None:
            return

        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # handlers still holding a "timeout" request
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> "MisbehavingOpenAIServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve(connection, options: dict) -> None:
    server = MisbehavingOpenAIServer(**options).start()
    connection.send(server.port)
    connection.recv()  # the stop signal
    connection.send(server.arrivals)
    server.stop()


class ServerProcess:
    """The test double in a child process, so it does not share the client's GIL.

    Takes the server's options; a ``plan`` must be a module-level function (it is
    pickled by name), e.g. :func:`misbehave_on_a_third`. ``arrivals`` is filled
    when the block ends. Arrival times are
    ``time.monotonic()`` in the child: on Linux the same clock as the parent's.
    """

    def __init__(self, **options) -> None:
        self.options = options
        self.arrivals: list[Arrival] = []

    def __enter__(self) -> "ServerProcess":
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.options), daemon=True)
        self._process.start()
        if not self._connection.poll(60):
            raise RuntimeError("the test double server process did not start in 60 s")
        self.base_url = f"http://127.0.0.1:{self._connection.recv()}/v1"
        return self

    def __exit__(self, *exc_info) -> None:
        self._connection.send("stop")
        self.arrivals = self._connection.recv()
        self._process.join(timeout=30)


def write_prompts(path: Path, count: int, malformed_after: tuple[int, ...] = ()) -> list[str]:
    """``count`` prompts whose first word is their id, with broken lines after some of them."""
    lines = []
    for index in range(count):
        item_id = f"item-{index:03d}"
        lines.append(json.dumps({"id": item_id, "prompt": f"{item_id} What is a Skyline vault?"}))
        if index in malformed_after:
            lines.append('{"id": "broken", "prompt": ')
    path.write_text("\n".join(lines) + "\n")
    return lines


def client_factory(server, timeout_s: float = 5.0):
    """A factory of async clients for ``server``, with the SDK's own retries off."""
    return lambda: openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", timeout=timeout_s, max_retries=0
    )
