"""Progress of long embedding work: log lines always, a tqdm bar only on a terminal."""

import fcntl
import io
import os
import re
import struct
import subprocess
import sys
import termios
import textwrap

import pytest

from genai_assets.rag.progress import Progress, open_terminal

LINE = re.compile(
    r"processed (\d+)/(\d+) documents \((\d+)%\), (\d+) chunks embedded"
    r"(?:, ([\d.]+) chunks/s)?, ETA (\d+|inf)s"
)


def run_progress(steps: list[int], total: int, bar, every_s: float = 0.0) -> list[str]:
    lines: list[str] = []
    progress = Progress(total, lines.append, every_s=every_s, bar=bar)
    done = 0
    for n in steps:
        done += n
        progress.advance(n, chunks_embedded=3 * done, chunks_per_second=1.5 * done)
    progress.close()
    return lines


@pytest.mark.parametrize(
    ("steps", "total", "expected"),
    [
        ([2, 2, 1], 5, [(2, 5, 40), (4, 5, 80), (5, 5, 100)]),
        ([10], 10, [(10, 10, 100)]),
    ],
)
def test_log_lines_report_done_total_and_percent(steps, total, expected):
    lines = run_progress(steps, total, bar=None)
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in parsed] == expected
    assert [int(m[4]) for m in parsed] == [3 * done for done, _, _ in expected]
    assert [float(m[5]) for m in parsed] == [1.5 * done for done, _, _ in expected]


def test_no_rate_before_anything_was_embedded():
    lines: list[str] = []
    progress = Progress(2, lines.append, every_s=0, bar=None)
    progress.advance(2, chunks_embedded=0, chunks_per_second=None)
    assert lines == ["processed 2/2 documents (100%), 0 chunks embedded, ETA 0s"]


def test_lines_are_throttled_but_the_last_is_always_reported():
    lines = run_progress([1, 1, 1, 1], 4, bar=None, every_s=3600)
    assert len(lines) == 1
    assert lines[0].startswith("processed 4/4 documents (100%), 12 chunks embedded")


def test_bar_draws_on_the_given_stream_without_changing_the_log_lines():
    stream = io.StringIO()
    with_bar = run_progress([2, 3], 5, bar=stream)
    without_bar = run_progress([2, 3], 5, bar=None)
    drawn = stream.getvalue()
    assert "5/5" in drawn and "doc" in drawn and "embedding" in drawn and "chunks=15" in drawn
    strip = [line.split(",")[0] for line in with_bar]
    assert strip == [line.split(",")[0] for line in without_bar]


CHILD = textwrap.dedent(
    """
    import os, sys
    if len(sys.argv) > 1:
        # Opening a terminal in a new session makes it the controlling terminal.
        os.close(os.open(sys.argv[1], os.O_RDWR))
    from genai_assets.rag.progress import Progress
    progress = Progress(4, lambda line: print(line, flush=True), every_s=0)
    progress.advance(4, chunks_embedded=9, chunks_per_second=4.5)
    progress.close()
    """
)


def run_child(stderr, terminal: str | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", CHILD, *([terminal] if terminal else [])]
    return subprocess.run(
        args,
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal unless the child opens one
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


def open_terminal_pair() -> tuple[int, int]:
    """A pseudo-terminal (master, slave) sized like a real one (tqdm fits the bar to it)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    return master, slave


def read_all(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def test_no_bar_without_a_terminal():
    result = run_child(stderr=subprocess.PIPE)
    assert result.stderr == b""
    assert result.stdout.decode().startswith("processed 4/4 documents (100%), 9 chunks embedded")


def test_bar_on_stderr_when_stderr_is_a_terminal():
    master, slave = open_terminal_pair()
    try:
        result = run_child(stderr=slave)
        drawn = read_all(master)
    finally:
        os.close(slave)
        os.close(master)
    assert "4/4" in drawn and "chunk" in drawn
    assert result.stdout.decode().startswith("processed 4/4 documents (100%), 9 chunks embedded")


def test_bar_on_the_controlling_terminal_when_stderr_is_captured():
    """Inside a Dagster step stderr is a pipe; the bar goes to the terminal, not the pipe."""
    master, slave = open_terminal_pair()
    try:
        result = run_child(stderr=subprocess.PIPE, terminal=os.ttyname(slave))
        drawn = read_all(master)
    finally:
        os.close(slave)
        os.close(master)
    assert "4/4" in drawn and "chunk" in drawn
    assert result.stderr == b""
    assert result.stdout.decode().startswith("processed 4/4 documents (100%), 9 chunks embedded")


def test_open_terminal_returns_a_terminal_stderr(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert open_terminal() is terminal
