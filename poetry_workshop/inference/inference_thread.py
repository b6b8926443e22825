"""One thread for all llama.cpp work.

llama.cpp is not thread-safe, even across two `Llama` objects, while the front ends call
the engine from wherever they like (the app from worker threads). So every load, tokenize
and generate runs as a job on this single thread, and streamed chunks travel back through
a queue so the caller's callback runs on the caller's own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class InferenceThread:
    def __init__(self, name: str = "llama-inference"):
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the inference thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return fn()
        box: queue.Queue[Any] = queue.Queue(maxsize=1)

        def job() -> None:
            try:
                box.put(fn())
            except BaseException as exc:  # re-raised on the caller's thread
                box.put(_Failure(exc))

        self._jobs.put(job)
        result = box.get()
        if isinstance(result, _Failure):
            raise result.exc
        return result

    def stream(self, producer: Callable[[Callable[[Any], None]], T]) -> Iterator[Any]:
        """Run `producer(emit)` on the inference thread; yield each emitted item here,
        then yield the producer's return value last."""
        items: queue.Queue[Any] = queue.Queue()

        def job() -> None:
            try:
                items.put(("result", producer(lambda item: items.put(("item", item)))))
            except BaseException as exc:
                items.put(("error", exc))

        self._jobs.put(job)
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "result":
                yield value
                return
            else:
                raise value

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)
