"""Loading something slow (a model) ahead of its first use, in a thread."""

import concurrent.futures
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Preloadable(Generic[T]):
    """Something slow to load (a model), loaded on first use or ahead of it in a thread.

    A run that learns early that it will need the object calls ``start()``: the
    load then goes on while other work (reading and chunking the first batch)
    does. Calling the object returns it, waiting for the load if needed.
    """

    def __init__(self, load: Callable[[], T]):
        self._load = load
        self._future: concurrent.futures.Future[T] | None = None

    def start(self) -> None:
        """Begin loading in a thread, unless it has begun."""
        if self._future is None:
            executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="preload")
            self._future = executor.submit(self._load)
            executor.shutdown(wait=False)

    def __call__(self) -> T:
        """The loaded object (a load that failed raises its error here)."""
        self.start()
        return self._future.result()
