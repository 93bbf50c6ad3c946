"""The pieces of a ShardedMap: list nodes and shards (private to the package).

A shard is a circular, doubly-linked recency list around a sentinel node (its
``next`` is the most recently used item, its ``prev`` the least), with a size,
counters and its own lock.
ShardedMap manipulates these directly, inlined in its hot paths, so they are
plain slotted records with no behaviour of their own beyond walking the list.

Memory is the reason for the node's layout: it is the only per-item object the
map adds to the key and the value. A slotted object with n slots takes
16 (GC header) + 16 (object header) + 8n bytes on 64-bit CPython 3.11, rounded up
to pymalloc's 16-byte size classes: 6 slots are 80 bytes, 7 were 96. So the node
keeps the four references of an LRU list, its shard (a hit finds its lock
without hashing the key) and its expiry time, and derives the key's UTF-8 length
(for the byte budget) with :func:`key_bytes`, a flag test for an ASCII key.

Measured and rejected, to get to 4 slots (64 bytes): expiry times in a per-shard
dict (costs a TTL'd item more than it saves) and the shard as a class attribute
of a per-shard Node subclass (nodes of ten types at one attribute site defeat
CPython's per-type attribute caches: every node access got ~4x slower).
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from typing import Final

__all__ = ["UNBOUNDED", "Node", "Shard", "key_bytes"]

UNBOUNDED: Final = sys.maxsize
"""The budget of a shard with no byte limit: larger than any real charge."""


def key_bytes(key: str) -> int:
    """The UTF-8 length of a valid key: ``len(key)`` when it is ASCII (an O(1)
    flag test in CPython), else the encoded length."""
    return len(key) if key.isascii() else len(key.encode())


class Node:
    """One item, or a shard's sentinel. A node that left the list has ``key == ""``
    (no valid key is empty), which is how a thread holding a stale index hint
    recognises it after taking the lock.

    There is no ``__init__`` (a Python-level one costs a call per insert):
    whoever makes a node sets all six slots (``Shard.new_node``, or inlined).
    A node never moves to another shard.
    """

    __slots__ = ("expires", "key", "next", "prev", "shard", "value")

    prev: Node
    next: Node
    key: str
    value: bytes
    expires: float | None  # absolute expiry time, or None
    shard: Shard


class Shard:
    """A recency list and its counters, touched only while holding the shard's lock.

    The lock is ``free``, a deque that holds one token while nobody holds the
    shard: ``free.pop()`` takes it (IndexError: someone else has it) and
    ``free.append(True)`` gives it back. Deque appends and pops are atomic (the
    documentation guarantees it; free-threaded builds keep it with per-object
    locks), so this is a mutex. Two measured reasons to prefer it to a
    ``threading.Lock`` on CPython 3.11:

    * speed: a pop and an append cost ~34 ns, a Lock's acquire() and release()
      ~76 ns, on paths where the whole operation is a few hundred;
    * no lock convoy: a released Lock is handed to the thread it wakes, which
      must still wait for the GIL, while running threads block behind it; once
      a holder is preempted inside a critical section this persists, and 16
      threads doing gets and puts ran at about half the speed of one. Here a
      waiter sleeps on ``wakeup`` and, woken, only *tries* for the token, so a
      running thread takes a free shard at once and the token is only ever
      held by a thread that runs.

    Hot paths inline the protocol (``try: free.pop() except IndexError:
    wait_for_token()`` ... ``finally: free.append(True); if waiters: wake``);
    cold paths call ``acquire()`` / ``release()``.
    """

    __slots__ = (
        "budget",
        "capacity",
        "evicted_bytes",
        "evicted_capacity",
        "evicted_expired",
        "free",
        "head",
        "hits",
        "misses",
        "nbytes",
        "size",
        "waiters",
        "wakeup",
    )

    def __init__(self, capacity: int, budget: int) -> None:
        self.capacity = capacity
        self.budget = budget
        # The shard's lock: a deque holding one token while the shard is free.
        self.free: deque[bool] = deque([True])
        self.waiters = 0  # threads sleeping in wait_for_token
        self.wakeup = threading.Condition(threading.Lock())
        self.head = self.new_node("", b"", None)
        self.head.prev = self.head.next = self.head
        self.size = 0
        # Key plus value bytes, kept only when the shard has a byte budget: on
        # the unbudgeted fast paths the int arithmetic measured ~10% of a put.
        # stats() sums the list instead when there is no budget.
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evicted_capacity = 0
        self.evicted_bytes = 0
        self.evicted_expired = 0

    def wait_for_token(self) -> None:
        """Take the token after a failed ``free.pop()``: the contended path.

        Each release wakes one waiter while any wait; the timeout only bounds a
        wait should a wake-up ever be missed, so no thread waits for ever.
        """
        free = self.free
        with self.wakeup:
            # Counted before trying again: a release after this failed try sees
            # the count and notifies, and cannot notify before wait() starts,
            # because notifying needs the condition's lock, held until then.
            self.waiters += 1
            try:
                while True:
                    try:
                        free.pop()
                        return
                    except IndexError:
                        self.wakeup.wait(0.05)
            finally:
                self.waiters -= 1

    def wake_a_waiter(self) -> None:
        """After giving the token back while threads wait: wake one to try for it."""
        with self.wakeup:
            self.wakeup.notify()

    def acquire(self) -> None:
        """Take the shard's lock (for cold paths; hot paths inline this)."""
        try:
            self.free.pop()
        except IndexError:
            self.wait_for_token()

    def release(self) -> None:
        """Give the shard's lock back and wake a waiter if there is one."""
        self.free.append(True)
        if self.waiters:
            self.wake_a_waiter()

    def locked(self) -> bool:
        """Whether some thread holds the shard (a snapshot: it may change at once)."""
        return not self.free

    def new_node(self, key: str, value: bytes, expires: float | None) -> Node:
        """A node of this shard holding an item; the caller links it."""
        node = Node()
        node.shard = self
        node.key = key
        node.value = value
        node.expires = expires
        return node

    def reset(self) -> None:
        head = self.head
        head.prev = head.next = head
        self.size = 0
        self.nbytes = 0

    def sum_bytes(self) -> int:
        head = self.head
        node = head.next
        total = 0
        while node is not head:
            total += key_bytes(node.key) + len(node.value)
            node = node.next
        return total

    def entries_lru_first(self) -> list[tuple[str, bytes, float | None]]:
        head = self.head
        node = head.prev
        out = []
        while node is not head:
            out.append((node.key, node.value, node.expires))
            node = node.prev
        return out
