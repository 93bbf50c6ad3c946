"""Timers: one thread that runs deadlines and small delayed actions.

RaftNode uses it for every proposal's deadline and for backing off after
QUEUE_FULL, so no caller's thread sleeps and the Raft thread never waits.
Actions must be quick and must not raise (an exception is logged and dropped).

Built for thousands of deadlines a second, nearly all of which never fire
(the Future completes first), so a deadline must cost next to nothing:

* time is cut into slots of ``resolution`` seconds; a deadline is appended to
  its slot's list, and the thread wakes once per slot that has any, running
  everything in it at once (a wake-up per deadline would cost more than the
  proposal);
* a watched Future is held by a weak reference, so a completed one is freed
  at once instead of living on until its deadline.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["Timers"]

log = logging.getLogger(__name__)

Expire = Callable[[Future[Any]], None]
# One slot's entries: an action, or (a weak reference to a Future, what to do if it is not done).
_Entry = Callable[[], None] | tuple[weakref.ref[Future[Any]], Expire]


class Timers:
    """``watch(future, when, expire)``, ``call_at(when, action)``; ``close()`` stops.

    Times are ``time.monotonic()``; things run up to one ``resolution`` late.

    >>> timers = Timers("doctest-timers")
    >>> fired = threading.Event()
    >>> timers.call_at(time.monotonic() + 0.01, fired.set)
    >>> fired.wait(5)
    True
    >>> timers.close()
    """

    def __init__(self, name: str, resolution: float = 0.005) -> None:
        self._step = resolution
        self._slots: dict[int, list[_Entry]] = {}
        self._order: list[int] = []  # heap of the slots' numbers
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Run *action* on the timer thread at *when* (or a little later)."""
        self._add(when, action)

    def watch(self, future: Future[Any], when: float, expire: Expire) -> None:
        """Call ``expire(future)`` at *when* if *future* is not done by then."""
        self._add(when, (weakref.ref(future), expire))

    def pending(self) -> list[Future[Any]]:
        """The watched Futures not done yet."""
        with self._cond:
            entries = [e for slot in self._slots.values() for e in slot if isinstance(e, tuple)]
        futures = (ref() for ref, _ in entries)
        return [f for f in futures if f is not None and not f.done()]

    def close(self) -> None:
        """Stop the thread; what is due later never runs."""
        with self._cond:
            self._closed = True
            self._slots.clear()
            self._order.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _add(self, when: float, entry: _Entry) -> None:
        slot = math.ceil(when / self._step)
        with self._cond:
            if self._closed:
                return
            entries = self._slots.get(slot)
            if entries is None:
                self._slots[slot] = [entry]
                heapq.heappush(self._order, slot)
                if self._order[0] == slot:  # earlier than the one the thread waits for
                    self._cond.notify()
            else:
                entries.append(entry)

    def _run(self) -> None:
        step = self._step
        while True:
            with self._cond:
                while not self._closed:
                    if self._order:
                        wait = self._order[0] * step - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                now_slot = math.floor(time.monotonic() / step)
                entries = []
                while self._order and self._order[0] <= now_slot:
                    entries += self._slots.pop(heapq.heappop(self._order))
            for entry in entries:
                try:
                    if isinstance(entry, tuple):
                        ref, expire = entry
                        future = ref()
                        if future is not None and not future.done():
                            expire(future)
                    else:
                        entry()
                except Exception:
                    log.exception("timer action failed")
