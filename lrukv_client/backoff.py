"""Backoff policies: how long to wait before the next retry (in the style of redis-py).

A backoff is a small object with ``compute(failures) -> seconds``, where
``failures`` counts the consecutive failed attempts of one call (1 after the
first failure). Policies hold no per-call state, so one instance may be shared
by many clients and threads.

>>> ExponentialBackoff(base=0.1, cap=1.0).compute(3)
0.4
>>> ConstantBackoff(0.25).compute(7)
0.25
>>> NoBackoff().compute(1)
0.0
"""

from __future__ import annotations

import abc
import random

__all__ = [
    "AbstractBackoff",
    "ConstantBackoff",
    "EqualJitterBackoff",
    "ExponentialBackoff",
    "ExponentialWithJitterBackoff",
    "NoBackoff",
    "default_backoff",
]

# 2**60 seconds is forever; capping the exponent keeps the float finite.
_MAX_EXPONENT = 60


class AbstractBackoff(abc.ABC):
    """How long to sleep after the ``failures``-th consecutive failure of a call."""

    @abc.abstractmethod
    def compute(self, failures: int) -> float:
        """Return the delay in seconds (>= 0) before the next attempt."""

    def reset(self) -> None:  # noqa: B027 - a no-op hook, like redis-py's
        """Forget any state; the policies here hold none."""


class NoBackoff(AbstractBackoff):
    """Retry at once."""

    def compute(self, failures: int) -> float:
        return 0.0


class ConstantBackoff(AbstractBackoff):
    """Always wait ``backoff`` seconds."""

    def __init__(self, backoff: float) -> None:
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        self.backoff = backoff

    def compute(self, failures: int) -> float:
        return self.backoff


def _exponential(base: float, cap: float, failures: int) -> float:
    exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
    return float(min(cap, base * 2**exponent))


def _check_base_cap(base: float, cap: float) -> None:
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")


class ExponentialBackoff(AbstractBackoff):
    """Wait ``base * 2**(failures-1)`` seconds, at most ``cap``. Deterministic: use
    it in tests; prefer a jittered policy when many clients retry at once."""

    def __init__(self, base: float = 0.05, cap: float = 1.0) -> None:
        _check_base_cap(base, cap)
        self.base = base
        self.cap = cap

    def compute(self, failures: int) -> float:
        return _exponential(self.base, self.cap, failures)


class ExponentialWithJitterBackoff(AbstractBackoff):
    """ "Full jitter": a uniform random delay in ``[0, min(cap, base * 2**(failures-1))]``.

    Spreads the retries of many clients over time, so a node coming back is not
    hit by all of them at the same instant. ``rng`` may be seeded for tests.
    """

    def __init__(
        self, base: float = 0.05, cap: float = 1.0, *, rng: random.Random | None = None
    ) -> None:
        _check_base_cap(base, cap)
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def compute(self, failures: int) -> float:
        return self._rng.uniform(0.0, _exponential(self.base, self.cap, failures))


class EqualJitterBackoff(AbstractBackoff):
    """Half the exponential delay fixed, half random: never retries immediately,
    still spreads clients out."""

    def __init__(
        self, base: float = 0.05, cap: float = 1.0, *, rng: random.Random | None = None
    ) -> None:
        _check_base_cap(base, cap)
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def compute(self, failures: int) -> float:
        half = _exponential(self.base, self.cap, failures) / 2
        return half + self._rng.uniform(0.0, half)


def default_backoff() -> AbstractBackoff:
    """The clients' default: full jitter from 50 ms, capped at 1 s."""
    return ExponentialWithJitterBackoff(base=0.05, cap=1.0)
