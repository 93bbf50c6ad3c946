"""Which shared key an operation touches: uniform, or Zipf-skewed like real caches."""

from __future__ import annotations

import bisect
import itertools
import random
from array import array

__all__ = ["KeyChooser"]


class KeyChooser:
    """Picks indexes in ``[0, keyspace)``; thread-safe (it only reads its table).

    ``zipf``: index i (rank i+1) has weight ``1 / (i+1) ** s``, so with s near 1 a
    few keys take most of the traffic. Built once in O(keyspace); each pick is a
    binary search, O(log keyspace).

    >>> chooser = KeyChooser(1000, "zipf", s=1.2)
    >>> picks = [chooser.index(random.Random(n)) for n in range(2000)]
    >>> picks.count(0) > picks.count(500)
    True
    """

    def __init__(self, keyspace: int, distribution: str = "uniform", s: float = 0.99) -> None:
        self.keyspace = keyspace
        self.distribution = distribution
        self._cumulative: array[float] | None = None
        if distribution == "zipf":
            weights = (1.0 / (rank**s) for rank in range(1, keyspace + 1))
            self._cumulative = array("d", itertools.accumulate(weights))
        elif distribution != "uniform":
            raise ValueError(f"unknown distribution {distribution!r}")

    def index(self, rng: random.Random) -> int:
        cumulative = self._cumulative
        if cumulative is None:
            return rng.randrange(self.keyspace)
        point = rng.random() * cumulative[-1]
        return min(bisect.bisect_right(cumulative, point), self.keyspace - 1)
