"""The retry policy on its own: scripted failures, a fake clock, no network."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from lrukv_client import (
    ConstantBackoff,
    DeadlineExceeded,
    EqualJitterBackoff,
    ExponentialBackoff,
    ExponentialWithJitterBackoff,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NoBackoff,
    NotLeader,
    PermissionDenied,
    Retry,
    TooManyRedirects,
    Unavailable,
)


class FakeTime:
    """A clock that only moves when the retry loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(
    *outcomes: LrukvClientError | str,
) -> tuple[Callable[[float | None], str], list[float | None]]:
    """``do`` that raises/returns the outcomes in order; records each attempt's timeout."""
    timeouts: list[float | None] = []
    queue = list(outcomes)

    def do(timeout: float | None) -> str:
        timeouts.append(timeout)
        outcome = queue.pop(0)
        if isinstance(outcome, LrukvClientError):
            raise outcome
        return outcome

    return do, timeouts


def make_retry(fake: FakeTime, **kwargs: object) -> Retry:
    kwargs.setdefault("backoff", ConstantBackoff(0.5))
    return Retry(clock=fake.clock, sleep=fake.sleep, **kwargs)  # type: ignore[arg-type]


def test_unavailable_is_retried_after_the_backoff_until_it_succeeds() -> None:
    fake = FakeTime()
    do, timeouts = scripted(Unavailable("down"), Unavailable("down"), "ok")
    assert make_retry(fake, deadline=10.0).call_with_retry(do) == "ok"
    assert fake.sleeps == [0.5, 0.5]
    # each attempt gets what is left of the deadline
    assert timeouts == [10.0, 9.5, 9.0]


def test_a_stopped_server_gives_up_with_unavailable_before_the_deadline() -> None:
    fake = FakeTime()
    retry = make_retry(fake, deadline=2.0)
    do, timeouts = scripted(*[Unavailable("connection refused")] * 100)
    with pytest.raises(Unavailable) as info:
        retry.call_with_retry(do)
    # It never sleeps past the deadline, and says how hard it tried.
    assert fake.now <= 2.0
    assert info.value.attempts == len(timeouts) == 4
    assert "gave up after 4 attempts" in str(info.value)


def test_retries_bound_the_attempts_without_a_deadline() -> None:
    fake = FakeTime()
    do, timeouts = scripted(*[Unavailable("down")] * 10)
    with pytest.raises(Unavailable):
        make_retry(fake, retries=2, deadline=None).call_with_retry(do)
    assert timeouts == [None, None, None]


@pytest.mark.parametrize(
    "error",
    [KeyNotFound("k"), InvalidArgument("bad key"), PermissionDenied("no")],
    ids=lambda e: type(e).__name__,
)
def test_errors_that_cannot_change_are_not_retried(error: LrukvClientError) -> None:
    fake = FakeTime()
    do, timeouts = scripted(error, "ok")
    with pytest.raises(type(error)):
        make_retry(fake).call_with_retry(do)
    assert len(timeouts) == 1
    assert fake.sleeps == []


def test_not_leader_with_a_leader_is_redirected_at_once() -> None:
    fake = FakeTime()
    followed: list[str] = []

    def redirect(err: NotLeader) -> bool:
        followed.append(str(err.leader_rpc))
        return True

    do, _ = scripted(NotLeader(leader_rpc="b:1"), "ok")
    assert make_retry(fake).call_with_retry(do, redirect=redirect) == "ok"
    assert followed == ["b:1"]
    assert fake.sleeps == []


def test_redirects_are_bounded() -> None:
    fake = FakeTime()
    do, timeouts = scripted(*[NotLeader(leader_rpc="elsewhere:1")] * 10)
    with pytest.raises(TooManyRedirects) as info:
        make_retry(fake, max_redirects=3).call_with_retry(do, redirect=lambda err: True)
    assert len(timeouts) == 4
    assert isinstance(info.value, Unavailable)
    assert isinstance(info.value.__cause__, NotLeader)


def test_a_failure_between_redirects_starts_a_new_row() -> None:
    # leader dies -> back to a seed -> redirected to the new leader: recovery, not a loop
    fake = FakeTime()
    hop = NotLeader(leader_rpc="b:1")
    do, timeouts = scripted(hop, hop, Unavailable("leader died"), hop, hop, "ok")
    retry = make_retry(fake, max_redirects=2)
    assert retry.call_with_retry(do, redirect=lambda err: True) == "ok"
    assert len(timeouts) == 6


def test_max_redirects_zero_hands_not_leader_to_the_caller() -> None:
    fake = FakeTime()
    do, _ = scripted(NotLeader(leader_rpc="b:1"), "ok")
    with pytest.raises(NotLeader) as info:
        make_retry(fake, max_redirects=0).call_with_retry(do, redirect=lambda err: True)
    assert info.value.leader_rpc == "b:1"


def test_not_leader_without_a_leader_waits_and_retries() -> None:
    fake = FakeTime()
    do, _ = scripted(NotLeader(), NotLeader(), "ok")
    assert make_retry(fake).call_with_retry(do, redirect=lambda err: True) == "ok"
    assert fake.sleeps == [0.5, 0.5]


def test_a_leader_the_client_cannot_use_is_treated_as_no_leader() -> None:
    # e.g. the HTTP client told only the leader's gRPC address
    fake = FakeTime()
    do, _ = scripted(NotLeader(leader_rpc="b:1"), "ok")
    assert make_retry(fake).call_with_retry(do, redirect=lambda err: False) == "ok"
    assert fake.sleeps == [0.5]


def test_writes_are_retried_by_default_since_they_are_absolute() -> None:
    fake = FakeTime()
    do, timeouts = scripted(Unavailable("reset"), "ok")
    assert make_retry(fake).call_with_retry(do, write=True) == "ok"
    assert len(timeouts) == 2


def test_retry_writes_false_retries_writes_only_after_not_leader() -> None:
    fake = FakeTime()
    retry = make_retry(fake, retry_writes=False)
    do, timeouts = scripted(Unavailable("reset"), "ok")
    with pytest.raises(Unavailable):
        retry.call_with_retry(do, write=True)
    assert len(timeouts) == 1
    do, timeouts = scripted(NotLeader(), NotLeader(leader_rpc="b:1"), "ok")
    assert retry.call_with_retry(do, write=True, redirect=lambda err: True) == "ok"
    assert len(timeouts) == 3
    # reads are still retried
    do, _ = scripted(Unavailable("reset"), "ok")
    assert retry.call_with_retry(do) == "ok"


def test_a_timed_out_attempt_is_retried_when_attempts_are_shorter_than_the_deadline() -> None:
    fake = FakeTime()
    do, timeouts = scripted(DeadlineExceeded("slow"), "ok")
    retry = make_retry(fake, deadline=10.0, attempt_timeout=1.0, backoff=NoBackoff())
    assert retry.call_with_retry(do) == "ok"
    assert timeouts == [1.0, 1.0]


def test_the_deadline_is_checked_before_each_attempt() -> None:
    fake = FakeTime()

    def slow(timeout: float | None) -> str:
        fake.now += 3.0  # the attempt used up the whole deadline
        raise DeadlineExceeded("slow")

    with pytest.raises(DeadlineExceeded):
        make_retry(fake, deadline=3.0).call_with_retry(slow)


def test_a_call_timeout_overrides_the_policy_deadline() -> None:
    fake = FakeTime()
    do, timeouts = scripted("ok")
    make_retry(fake, deadline=10.0).call_with_retry(do, timeout=1.5)
    assert timeouts == [1.5]


def test_failover_is_asked_before_each_retry() -> None:
    fake = FakeTime()
    moved: list[str] = []
    do, _ = scripted(Unavailable("a down"), Unavailable("b down"), "ok")
    make_retry(fake).call_with_retry(do, failover=lambda err: moved.append(err.message))
    assert moved == ["a down", "b down"]


def test_disabled_makes_one_attempt() -> None:
    do, timeouts = scripted(Unavailable("down"), "ok")
    with pytest.raises(Unavailable):
        Retry.disabled().call_with_retry(do)
    assert len(timeouts) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"retries": -1}, {"deadline": 0}, {"attempt_timeout": -1.0}, {"max_redirects": -1}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    backoff = ExponentialBackoff(base=0.1, cap=0.5)
    assert [backoff.compute(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.compute(10_000) == 0.5  # no overflow


def test_jittered_backoffs_stay_within_their_envelope() -> None:
    full = ExponentialWithJitterBackoff(base=0.1, cap=1.0, rng=random.Random(1))
    equal = EqualJitterBackoff(base=0.1, cap=1.0, rng=random.Random(1))
    for failures in range(1, 12):
        ceiling = min(1.0, 0.1 * 2 ** (failures - 1))
        samples = [full.compute(failures) for _ in range(50)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1  # it does jitter
        assert all(ceiling / 2 <= equal.compute(failures) <= ceiling for _ in range(50))


def test_backoffs_refuse_negative_settings() -> None:
    with pytest.raises(ValueError):
        ConstantBackoff(-1)
    with pytest.raises(ValueError):
        ExponentialBackoff(base=-1)
