"""Progress of long embedding work: periodic log lines, and a bar only on a terminal."""

import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

from tqdm import tqdm


class Progress:
    """Periodic 'done/total, rate, ETA' lines for long embedding work, and a terminal bar.

    Progress counts documents, whose number is known before the first one is
    read; the chunks embedded so far and the embedding rate come with each line,
    as the caller's running totals (the sync's report, which the run's metadata
    shows too, so the last line and the metadata say the same). Lines go to
    ``report`` (the run's log in Dagster) every ``every_s`` seconds and when all
    documents are done. ``bar`` adds a tqdm progress bar on a stream: ``"auto"``
    draws it only when a person watches a terminal (see :func:`open_terminal`),
    so CI logs, pods and Dagster's captured output get no bar; ``None`` never
    draws one. The log lines are the same either way.
    """

    def __init__(
        self,
        total: int,
        report: Callable[[str], None],
        every_s: float = 10.0,
        bar: TextIO | Literal["auto"] | None = "auto",
    ):
        self.total = total
        self.report = report
        self.every_s = every_s
        self.started = time.perf_counter()
        self.last = self.started
        self.done = 0
        self._opened = open_terminal() if bar == "auto" else None
        stream = self._opened if bar == "auto" else bar
        self._bar = (
            tqdm(total=total, unit="doc", desc="embedding", file=stream, dynamic_ncols=True)
            if stream is not None
            else None
        )

    def advance(
        self, documents: int, chunks_embedded: int, chunks_per_second: float | None
    ) -> None:
        """Count more documents done; report the totals so far when it is time.

        ``chunks_per_second`` is None while nothing was embedded (no rate to show).
        """
        self.done += documents
        if self._bar is not None:
            self._bar.update(documents)
            self._bar.set_postfix(chunks=chunks_embedded, refresh=False)
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            elapsed = now - self.started
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("inf")
            percent = 100 * self.done / self.total if self.total else 100
            rate = f", {chunks_per_second:.1f} chunks/s" if chunks_per_second is not None else ""
            self.report(
                f"processed {self.done}/{self.total} documents ({percent:.0f}%), "
                f"{chunks_embedded} chunks embedded{rate}, ETA {eta:.0f}s"
            )

    def close(self) -> None:
        """Finish the terminal bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._opened is not None and self._opened is not sys.stderr:
            self._opened.close()
        self._opened = None


def open_terminal() -> TextIO | None:
    """A stream to the terminal a person runs this from, or None when there is none.

    ``sys.stderr`` when it is a terminal (a plain script). Inside a Dagster step
    stderr is a pipe into the run's captured logs, so the process's controlling
    terminal is opened instead (``dagster asset materialize`` or ``dagster dev``
    run from a shell); the bar then stays out of the captured logs. Processes
    without one (CI, Kubernetes pods, daemons) get None.
    """
    if sys.stderr is not None and sys.stderr.isatty():
        return sys.stderr
    try:
        terminal = open("/dev/tty", "w")  # noqa: SIM115 - closed by Progress.close()
    except OSError:  # no controlling terminal: nobody to draw a bar for
        return None
    if not terminal.isatty():
        terminal.close()
        return None
    return terminal
