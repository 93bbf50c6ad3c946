"""WriterLock: mutual exclusion, and every waiter gets the lock in the end."""

from __future__ import annotations

import doctest
import threading
import time

from lrukv_server.txlog import locks
from lrukv_server.txlog.locks import WriterLock


def test_docstring_examples() -> None:
    # pytest collects doctests only under lrukv/, so this module's run here.
    result = doctest.testmod(locks)
    assert result.attempted > 0
    assert result.failed == 0


def test_only_one_thread_is_ever_inside() -> None:
    lock = WriterLock()
    inside = 0
    most_inside = 0
    counter = 0

    def worker() -> None:
        nonlocal inside, most_inside, counter
        for i in range(3000):
            lock.acquire()
            try:
                inside += 1
                most_inside = max(most_inside, inside)
                value = counter
                if i % 50 == 0:
                    time.sleep(0)  # give up the GIL inside: others must wait, not enter
                counter = value + 1
                inside -= 1
            finally:
                lock.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter == 8 * 3000
    assert most_inside == 1


def test_every_waiter_gets_the_lock_after_a_long_hold() -> None:
    lock = WriterLock()
    lock.acquire()
    got: list[int] = []
    started = threading.Barrier(17)

    def waiter(number: int) -> None:
        started.wait()
        with lock:
            got.append(number)

    threads = [threading.Thread(target=waiter, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    started.wait()
    assert not got
    lock.release()
    for thread in threads:
        thread.join(timeout=30)  # a hang guard, not a timing assert
        assert not thread.is_alive()
    assert sorted(got) == list(range(16))
    assert not lock.locked()


def test_the_lock_is_free_again_after_an_exception_inside() -> None:
    lock = WriterLock()
    try:
        with lock:
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert not lock.locked()
    with lock:
        assert lock.locked()
