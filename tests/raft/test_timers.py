"""Timers: deadlines fire late by at most a slot, and never keep a finished Future alive."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from lrukv_server.raft.timers import Timers


@pytest.fixture
def timers() -> Iterator[Timers]:
    t = Timers("test-timers", resolution=0.005)
    try:
        yield t
    finally:
        t.close()


def test_a_deadline_fires_for_a_pending_future_in_time_order(timers: Timers) -> None:
    fired: list[str] = []
    done = threading.Event()
    late: Future[Any] = Future()
    early: Future[Any] = Future()
    started = time.monotonic()

    def expire_late(_: Future[Any]) -> None:
        fired.append("late")
        done.set()

    timers.watch(late, started + 0.2, expire_late)
    timers.watch(early, started + 0.05, lambda f: fired.append("early"))
    assert done.wait(5)
    assert fired == ["early", "late"]
    assert time.monotonic() - started >= 0.2


def test_a_completed_future_is_neither_expired_nor_kept_alive(timers: Timers) -> None:
    fired: list[Future[Any]] = []
    future: Future[Any] = Future()
    timers.watch(future, time.monotonic() + 0.05, fired.append)
    future.set_result(1)
    ref = weakref.ref(future)
    del future
    gc.collect()
    assert ref() is None
    marker = threading.Event()
    timers.call_at(time.monotonic() + 0.1, marker.set)
    assert marker.wait(5)
    assert fired == []


def test_pending_lists_only_futures_not_done_and_close_drops_the_rest(timers: Timers) -> None:
    a: Future[Any] = Future()
    b: Future[Any] = Future()
    fired: list[Future[Any]] = []
    timers.watch(a, time.monotonic() + 60, fired.append)
    timers.watch(b, time.monotonic() + 60, fired.append)
    b.set_result(None)
    assert timers.pending() == [a]
    timers.close()
    timers.call_at(time.monotonic(), lambda: fired.append(a))
    assert fired == []
