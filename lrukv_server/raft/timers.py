"""Timers: one thread that runs small actions at given monotonic times.

RaftNode uses it for every proposal's deadline and for backing off after
QUEUE_FULL, so no caller's thread sleeps and the Raft thread never waits.
Actions must be quick and must not raise (an exception is logged and dropped).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timers"]

log = logging.getLogger(__name__)


class Timers:
    """``call_at(when, action)``; ``close()`` stops the thread (pending actions are dropped).

    >>> timers = Timers("doctest-timers")
    >>> fired = threading.Event()
    >>> timers.call_at(time.monotonic() + 0.01, fired.set)
    >>> fired.wait(5)
    True
    >>> timers.close()
    """

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Run *action* on the timer thread at ``time.monotonic()`` *when* (or later)."""
        with self._cond:
            if self._closed:
                return
            seq = next(self._seq)
            heapq.heappush(self._heap, (when, seq, action))
            if self._heap[0][1] == seq:  # the new earliest: the thread may be waiting longer
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._closed:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                log.exception("timer action failed")
