"""Which node a client talks to: its seed list, the current node, and how that
changes on a leader redirect or a failure. Shared by every client; thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from lrukv_client.errors import InvalidArgument

__all__ = ["Targets", "parse_servers"]


def parse_servers(servers: str | Sequence[str]) -> list[str]:
    """Split ``"a:1,b:2"`` or a sequence into a non-empty list of addresses.

    >>> parse_servers("a:1, b:2")
    ['a:1', 'b:2']
    """
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    seeds = [item.strip() for item in items if item.strip()]
    if not seeds:
        raise InvalidArgument("at least one server address is needed")
    return seeds


class Targets:
    """The node a client sends to next.

    Starts at the first seed. ``follow(addr)`` moves to a leader a node named
    (it may not be a seed); ``fail_over()`` moves to the seed after the current
    one, or back to the first seed when the current node is a followed leader,
    so a client whose leader died asks the seeds who leads now.
    """

    def __init__(self, seeds: Sequence[str]) -> None:
        self.seeds = list(seeds)
        self._current = self.seeds[0]
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self._current

    def follow(self, address: str) -> None:
        with self._lock:
            self._current = address

    def fail_over(self) -> None:
        with self._lock:
            try:
                index = self.seeds.index(self._current)
            except ValueError:
                self._current = self.seeds[0]
            else:
                self._current = self.seeds[(index + 1) % len(self.seeds)]
