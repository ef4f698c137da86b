"""The two threads beside the embedding in a sync: reading ahead, and writing behind."""

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IndexWriter(threading.Thread):
    """Applies index writes in submission order, off the embedding thread.

    ``before_first_write`` runs in this thread just before the first write, when the
    first batch has been embedded.
    """

    def __init__(self, before_first_write: Callable[[], None]):
        super().__init__(name="index-writer", daemon=True)
        self.before_first_write: Callable[[], None] | None = before_first_write
        self.tasks: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        """Apply tasks until close(); after the first error, drain the rest unapplied."""
        while (task := self.tasks.get()) is not None:
            if self.error is None:
                try:
                    if self.before_first_write is not None:
                        before, self.before_first_write = self.before_first_write, None
                        before()
                    task()
                except BaseException as error:  # re-raised in the caller by submit()/close()
                    self.error = error

    def submit(self, task: Callable[[], None]) -> None:
        """Queue a write (blocks while 4 wait); raises an earlier write's error."""
        if self.error is not None:
            raise self.error
        self.tasks.put(task)

    def close(self) -> None:
        """Wait for every queued write; raises the first write's error."""
        self.tasks.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class Prefetch(Generic[T]):
    """Runs a generator one step ahead in a thread, so chunking overlaps embedding.

    ``close()`` stops the thread and waits for it: after an error in the consumer the
    producer must not stay blocked on a full buffer (holding the chunker and the texts
    it read) or go on reading documents nobody will embed.
    """

    def __init__(self, items: Iterator[T]):
        self._buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(items,), name="chunk-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as error:  # handed to the consumer in __iter__
            self._put(("error", error))

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, item = self._buffer.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        """Stop the producer (after the document it is reading) and wait for it."""
        self._stop.set()
        self._thread.join()
