"""Retry policy: which failures a call retries, how often, and for how long.

In the style of redis-py, a :class:`Retry` is an object handed to a client, with a
pluggable :mod:`~lrukv_client.backoff`. Each call gets a fresh :class:`RetryCall`
that keeps that call's count and deadline, so one ``Retry`` may be shared by
many clients and threads.

What is retried, and why
------------------------
* ``NotLeader`` naming a leader: the node did not apply the request, so it is
  sent to the leader at once, without sleeping. At most ``max_redirects`` hops
  in a row, so two nodes that each name the other cannot bounce a call forever
  (``TooManyRedirects``). A backoff sleep starts a new row: a client that lost
  its leader, went back to a seed and was redirected again is recovering, not
  looping.
* ``NotLeader`` without a leader (an election is running) and ``Unavailable``
  (refused or reset connections, a node shutting down, a transaction log down):
  retried after a backoff while the deadline allows.
* ``Unreachable`` (no connection could be made) while the client has never
  reached any node: tried once on each seed, without sleeping, then raised.
  Like redis-cli and etcdctl, a wrong address or a server that is not running
  is reported at once instead of after the whole deadline. Once a node has
  answered, a refused connection is a restart or a leader change and is
  retried like ``Unavailable``. ``Retry(wait_for_server=True)`` retries it
  from the start (a client started together with its server).
* ``DeadlineExceeded`` of one attempt, when ``attempt_timeout`` is shorter than
  the call's deadline: retried like ``Unavailable``.
* Nothing else: a missing key, a bad argument or a refused credential will not
  change by asking again.

Writes are retried too (``retry_writes=True``, the default) because lrukv's writes
are absolute: ``put(k, v)`` and ``delete(k)`` leave the same state however often
they are applied. The price of a duplicate, when an attempt was applied but its
answer was lost: a repeated ``put`` may overwrite a newer value another client
wrote in between and restarts the key's TTL; a repeated ``delete`` reports
``existed=False``. With ``retry_writes=False`` writes are retried only after
``NotLeader``, which guarantees the write was not applied.

The deadline bounds the whole call: every attempt and every sleep. The retry
loop never sleeps past it; it gives up with the last error instead, so a stopped
server yields ``Unavailable`` within the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lrukv_client.backoff import AbstractBackoff, NoBackoff, default_backoff
from lrukv_client.errors import (
    DeadlineExceeded,
    LrukvClientError,
    NotLeader,
    TooManyRedirects,
    Unavailable,
    Unreachable,
)

__all__ = ["Retry", "RetryCall"]

T = TypeVar("T")

# An attempt with less time than this left cannot succeed; give up instead.
_MIN_ATTEMPT_SECONDS = 0.001


class Retry:
    """A retry policy.

    ``backoff``: the delay policy (default: full jitter, 50 ms to 1 s).
    ``retries``: at most this many retries after failures (redirects not
    counted); None means as many as the deadline allows.
    ``deadline``: seconds for the whole call, retries and sleeps included; None
    means no limit (then ``retries`` should be set).
    ``attempt_timeout``: seconds for one attempt; None means the rest of the
    deadline.
    ``max_redirects``: leader redirects in a row; 0 raises ``NotLeader`` to the caller.
    ``retry_writes``: also retry ``put``/``delete`` after ambiguous failures.
    ``wait_for_server``: retry a refused connection even before any node of the
    client answered (default: fail at once then, see the module doc).

    >>> Retry.disabled().retries
    0
    """

    def __init__(
        self,
        backoff: AbstractBackoff | None = None,
        retries: int | None = None,
        deadline: float | None = 10.0,
        *,
        attempt_timeout: float | None = None,
        max_redirects: int = 5,
        retry_writes: bool = True,
        wait_for_server: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries is not None and retries < 0:
            raise ValueError("retries must be >= 0 or None")
        if deadline is not None and deadline <= 0:
            raise ValueError("deadline must be > 0 or None")
        if attempt_timeout is not None and attempt_timeout <= 0:
            raise ValueError("attempt_timeout must be > 0 or None")
        if max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        self.backoff = backoff if backoff is not None else default_backoff()
        self.retries = retries
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.max_redirects = max_redirects
        self.retry_writes = retry_writes
        self.wait_for_server = wait_for_server
        self.sleep = sleep
        self.clock = clock

    @classmethod
    def disabled(cls, deadline: float | None = 10.0) -> Retry:
        """One attempt per call, no redirects: every error reaches the caller."""
        return cls(NoBackoff(), retries=0, deadline=deadline, max_redirects=0)

    def __repr__(self) -> str:
        return (
            f"Retry(backoff={type(self.backoff).__name__}, retries={self.retries}, "
            f"deadline={self.deadline}, attempt_timeout={self.attempt_timeout}, "
            f"max_redirects={self.max_redirects}, retry_writes={self.retry_writes}, "
            f"wait_for_server={self.wait_for_server})"
        )

    def begin(self, timeout: float | None = None) -> RetryCall:
        """Start the bookkeeping of one call; ``timeout`` overrides ``deadline``."""
        return RetryCall(self, self.deadline if timeout is None else timeout)

    def call_with_retry(
        self,
        do: Callable[[float | None], T],
        *,
        write: bool = False,
        timeout: float | None = None,
        redirect: Callable[[NotLeader], bool] | None = None,
        failover: Callable[[LrukvClientError], None] | None = None,
        reached: Callable[[], bool] | None = None,
        seeds: int = 1,
    ) -> T:
        """Run ``do(attempt_timeout)`` until it returns, retrying as the policy says.

        ``redirect(err)`` points the client at ``err``'s leader and says whether it
        could; ``failover(err)`` lets the client move to another node before a
        retry; ``reached()`` says whether the client ever reached a node, and
        ``seeds`` how many it may try (both for ``Unreachable``). The last error
        is raised, with ``attempts`` set, when the policy gives up.
        """
        call = self.begin(timeout)
        while True:
            try:
                return do(call.attempt_timeout())
            except LrukvClientError as err:
                delay = call.on_failure(
                    err,
                    write=write,
                    redirect=redirect,
                    failover=failover,
                    reached=reached,
                    seeds=seeds,
                )
            if delay > 0:
                self.sleep(delay)


class RetryCall:
    """The state of one call under a :class:`Retry`: attempts, redirects, deadline.

    ``on_failure`` is the whole decision, shared by the blocking and the asyncio
    clients: it returns how long to sleep before the next attempt, or raises.
    """

    def __init__(self, retry: Retry, deadline: float | None) -> None:
        self.retry = retry
        self.started = retry.clock()
        self.deadline_at = None if deadline is None else self.started + deadline
        self.attempts = 0
        self.failures = 0
        self.redirects = 0
        self.unreachable = 0
        self.last_error: LrukvClientError | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None."""
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.retry.clock()

    def attempt_timeout(self) -> float | None:
        """The timeout for the next attempt: the rest of the deadline, or less.

        Counts the attempt. Raises ``DeadlineExceeded`` if no time is left.
        """
        self.attempts += 1
        remaining = self.remaining()
        limit = self.retry.attempt_timeout
        if remaining is None:
            return limit
        if remaining < _MIN_ATTEMPT_SECONDS:
            if self.last_error is not None:
                # A backoff sleep overran the deadline by a hair: report why the
                # call was retrying (e.g. Unavailable), not the clock.
                self.attempts -= 1
                raise self._give_up(self.last_error)
            err = DeadlineExceeded("deadline exceeded before the call could be sent")
            err.attempts = self.attempts
            raise err
        return remaining if limit is None else min(limit, remaining)

    def _retryable(self, err: LrukvClientError, write: bool) -> bool:
        if isinstance(err, NotLeader):
            return True  # refused before applying: safe for writes as well
        if isinstance(err, TooManyRedirects):
            return False
        if isinstance(err, Unavailable | DeadlineExceeded):
            return not write or self.retry.retry_writes
        return False

    def _give_up(self, err: LrukvClientError) -> LrukvClientError:
        err.attempts = self.attempts
        return err

    def on_failure(
        self,
        err: LrukvClientError,
        *,
        write: bool = False,
        redirect: Callable[[NotLeader], bool] | None = None,
        failover: Callable[[LrukvClientError], None] | None = None,
        reached: Callable[[], bool] | None = None,
        seeds: int = 1,
    ) -> float:
        """Decide what follows the failed attempt ``err``: a delay, or ``raise``."""
        self.last_error = err
        remaining = self.remaining()
        out_of_time = remaining is not None and remaining < _MIN_ATTEMPT_SECONDS
        if (
            isinstance(err, Unreachable)
            and not self.retry.wait_for_server
            and reached is not None
            and not reached()
        ):
            # Never reached any node: try each seed once, then report it at once.
            self.unreachable += 1
            if out_of_time or self.unreachable >= seeds:
                raise self._give_up(err)
            if failover is not None:
                failover(err)
            return 0.0
        if (
            isinstance(err, NotLeader)
            and (err.leader_rpc or err.leader_http)
            and redirect is not None
            and not out_of_time
        ):
            if self.redirects >= self.retry.max_redirects:
                if self.retry.max_redirects == 0:
                    raise self._give_up(err)
                too_many = TooManyRedirects(
                    f"gave up after {self.redirects} leader redirects; last answer: {err}"
                )
                raise self._give_up(too_many) from err
            if redirect(err):
                self.redirects += 1
                return 0.0
        if out_of_time or not self._retryable(err, write):
            raise self._give_up(err)
        self.failures += 1
        if self.retry.retries is not None and self.failures > self.retry.retries:
            raise self._give_up(err)
        self.redirects = 0
        delay = max(0.0, self.retry.backoff.compute(self.failures))
        if remaining is not None and delay >= remaining - _MIN_ATTEMPT_SECONDS:
            # Sleeping would spend the rest of the deadline: give up now, with the
            # real reason (e.g. Unavailable), rather than with a DeadlineExceeded later.
            raise self._give_up(err)
        if failover is not None:
            failover(err)
        return delay
