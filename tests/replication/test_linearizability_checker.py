"""The linearizability checker on hand-written histories (fast; no servers).

Times are plain numbers; ``U`` marks an unknown outcome (infinite completion).
"""

from __future__ import annotations

import collections
import math
import random

import pytest

from tests.replication.linearizability import (
    History,
    Op,
    SearchLimit,
    check,
    check_key,
    step,
)

U = math.inf


def put(call: float, ret: float, value: bytes, key: str = "k", client: str = "c") -> Op:
    return Op(client, "put", key, call, ret, value=value)


def get(call: float, ret: float, value: bytes | None, key: str = "k", client: str = "c") -> Op:
    return Op(client, "get", key, call, ret, value=value)


def delete(call: float, ret: float, existed: bool | None, key: str = "k", client: str = "c") -> Op:
    return Op(client, "delete", key, call, ret, existed=existed)


def linearizable(*ops: Op) -> bool:
    return check(ops).ok


# ------------------------------------------------------------------ sequential


def test_an_empty_history_is_linearizable() -> None:
    result = check([])
    assert result.ok and result.ops == 0 and result.keys == 0


def test_reads_see_the_last_acknowledged_write() -> None:
    assert linearizable(
        get(0, 1, None), put(2, 3, b"1"), get(4, 5, b"1"), put(6, 7, b"2"), get(8, 9, b"2")
    )


def test_a_stale_read_after_an_acknowledged_write_is_caught() -> None:
    result = check([put(0, 1, b"1"), put(2, 3, b"2"), get(4, 5, b"1")])
    assert not result.ok
    (failure,) = result.failures
    assert failure.key == "k"
    assert failure.stuck == get(4, 5, b"1")
    assert failure.linearized == 2 and failure.state == b"2"


def test_a_lost_acknowledged_write_is_caught() -> None:
    assert not linearizable(put(0, 1, b"1"), get(2, 3, None))
    # lost later: it was read once, then it is gone without a delete
    assert not linearizable(put(0, 1, b"1"), get(2, 3, b"1"), get(4, 5, None))


def test_a_read_of_a_value_never_written_is_caught() -> None:
    assert not linearizable(put(0, 1, b"1"), get(2, 3, b"ghost"))
    assert not linearizable(get(0, 1, b"ghost"))


def test_a_value_read_before_its_write_was_invoked_is_caught() -> None:
    assert not linearizable(get(0, 1, b"1"), put(2, 3, b"1"))


def test_deletes_report_whether_the_key_existed_and_remove_it() -> None:
    assert linearizable(delete(0, 1, False), put(2, 3, b"1"), delete(4, 5, True), get(6, 7, None))
    assert not linearizable(put(0, 1, b"1"), delete(2, 3, False))
    assert not linearizable(delete(0, 1, True))
    assert not linearizable(put(0, 1, b"1"), delete(2, 3, True), get(4, 5, b"1"))


# ------------------------------------------------------------------ concurrent


def test_a_read_overlapping_a_write_may_see_either_value() -> None:
    assert linearizable(put(0, 1, b"1"), put(2, 10, b"2"), get(3, 4, b"1"), get(5, 6, b"2"))
    assert linearizable(put(0, 1, b"1"), put(2, 10, b"2"), get(3, 4, b"2"), get(11, 12, b"2"))


def test_once_a_read_saw_a_concurrent_write_later_reads_cannot_go_back() -> None:
    assert not linearizable(put(0, 1, b"1"), put(2, 10, b"2"), get(3, 4, b"2"), get(5, 6, b"1"))


def test_concurrent_writes_may_take_effect_in_either_order() -> None:
    both = [put(0, 5, b"1", client="a"), put(1, 4, b"2", client="b")]
    assert linearizable(*both, get(6, 7, b"1"))
    assert linearizable(*both, get(6, 7, b"2"))
    assert not linearizable(*both, get(6, 7, b"2"), get(8, 9, b"1"))


def test_operations_at_the_same_instant_overlap() -> None:
    # the read's invocation and the write's completion carry the same timestamp
    assert linearizable(put(0, 5, b"1"), get(5, 6, None))


def test_two_concurrent_deletes_cannot_both_find_the_key() -> None:
    assert linearizable(put(0, 1, b"1"), delete(2, 4, True), delete(3, 5, False))
    assert not linearizable(put(0, 1, b"1"), delete(2, 4, True), delete(3, 5, True))


# ------------------------------------------------------------------ unknown outcomes


def test_an_unknown_write_may_take_effect_long_after_it_was_sent() -> None:
    assert linearizable(put(0, U, b"1"), get(1, 2, None), get(10, 11, None), get(20, 21, b"1"))


def test_an_unknown_write_may_never_take_effect() -> None:
    assert linearizable(put(0, U, b"1"), get(5, 6, None), put(7, 8, b"2"), get(9, 10, b"2"))


def test_an_unknown_write_takes_effect_at_most_once() -> None:
    assert not linearizable(put(0, U, b"1"), get(1, 2, b"1"), put(3, 4, b"2"), get(5, 6, b"1"))


def test_an_unknown_write_cannot_take_effect_before_it_was_sent() -> None:
    assert not linearizable(get(0, 1, b"1"), put(2, U, b"1"))


def test_several_unknown_writes_may_each_take_effect() -> None:
    unknown = [put(0, U, b"1"), put(0, U, b"2"), delete(0, U, None), delete(0, U, None)]
    assert linearizable(*unknown, delete(1, 2, True), delete(3, 4, True), get(5, 6, None))
    assert linearizable(*unknown, put(1, 2, b"3"), get(3, 4, None), get(5, 6, b"2"))
    twice = [put(1, 2, b"3"), get(3, 4, None), put(5, 6, b"4"), get(7, 8, None)]
    assert linearizable(*unknown, *twice)  # each unknown delete removed one
    assert not linearizable(*unknown, *twice, put(9, 10, b"5"), get(11, 12, None))
    assert not linearizable(*unknown, delete(1, 2, True), delete(3, 4, True), delete(5, 6, True))


def test_an_unknown_write_of_a_value_written_before_may_be_what_a_delete_found() -> None:
    # values need not be unique: the read is explained by the first put, the
    # second delete only by the unknown one
    ops = [put(0, 1, b"a"), get(2, 3, b"a"), delete(4, 5, True), put(6, U, b"a")]
    assert linearizable(*ops, delete(7, 8, True))
    assert not linearizable(*ops[:3], delete(7, 8, True))


def test_an_unknown_delete_may_or_may_not_have_removed_the_key() -> None:
    assert linearizable(put(0, 1, b"1"), delete(2, U, None), get(3, 4, b"1"), get(5, 6, None))
    assert linearizable(put(0, 1, b"1"), delete(2, U, None), get(3, 4, b"1"), get(5, 6, b"1"))
    assert not linearizable(put(0, 1, b"1"), delete(2, U, None), get(3, 4, None), get(5, 6, b"1"))


# ------------------------------------------------------------------ per key, reports


def test_keys_are_checked_apart_and_the_failure_names_its_key() -> None:
    ops = [
        put(0, 1, b"a1", key="a"),
        put(0, 1, b"b1", key="b"),
        get(2, 3, b"a1", key="a"),
        get(2, 3, b"a1", key="b"),  # b's read returns a's value
    ]
    result = check(ops)
    assert result.keys == 2 and result.ops == 4
    assert [f.key for f in result.failures] == ["b"]
    # a write to one key never explains a read of another
    assert not check([put(0, 1, b"1", key="a"), get(2, 3, b"1", key="b")]).ok


def test_a_failure_report_shows_the_prefix_and_the_ops_around_the_stuck_one() -> None:
    ops = [
        put(10.0, 10.5, b"w1", client="c1"),
        get(11.0, 11.2, b"w1", client="c2"),
        put(12.0, 12.5, b"w2", client="c1"),
        put(12.1, U, b"w3", client="c3"),
        get(13.0, 13.4, b"w1", client="c2"),
    ]
    result = check(ops)
    assert not result.ok
    text = str(result)
    assert "key 'k' is not linearizable (5 ops)" in text
    assert "get() -> b'w1'" in text
    assert "put(b'w3') -> unknown" in text
    assert "! [  3.000   3.400]     c2  get() -> b'w1'" in text  # relative to 10.0
    assert result.failures[0].state == b"w2"


def test_the_search_stops_at_its_step_limit() -> None:
    ops = [put(0, 100, b"%d" % i, client=str(i)) for i in range(12)] + [get(101, 102, b"?")]
    with pytest.raises(SearchLimit):
        check_key(ops, max_steps=1000)


def _simulated(rng: random.Random, clients: int, count: int) -> list[Op]:
    """A linearizable history by construction: every op takes effect at a random
    instant inside its interval, in the order of those instants."""
    planned = []
    clock = [0.0] * clients
    for n in range(count):
        c = rng.randrange(clients)
        call = clock[c] + rng.random()
        at = call + rng.random()
        ret = at + rng.random()
        clock[c] = ret
        roll = rng.random()
        kind = "put" if roll < 0.4 else "get" if roll < 0.85 else "delete"
        unknown = kind != "get" and rng.random() < 0.03
        planned.append((at, c, kind, call, ret, unknown, n))
    state: bytes | None = None
    ops = []
    for _, c, kind, call, ret, unknown, n in sorted(planned):
        end = U if unknown else ret
        took_effect = not (unknown and rng.random() < 0.5)  # or never, if unknown
        if kind == "put":
            value = b"v%d" % n
            ops.append(put(call, end, value, client=str(c)))
            state = value if took_effect else state
        elif kind == "get":
            ops.append(get(call, ret, state, client=str(c)))
        else:
            existed = state is not None
            ops.append(delete(call, end, None if unknown else existed, client=str(c)))
            state = None if took_effect else state
    rng.shuffle(ops)
    return ops


@pytest.mark.parametrize("seed", range(5))
def test_random_linearizable_histories_pass_and_a_forged_read_fails(seed: int) -> None:
    rng = random.Random(seed)
    ops = _simulated(rng, clients=6, count=200)
    assert check(ops).ok
    reads = [i for i, op in enumerate(ops) if op.kind == "get"]
    forged = list(ops)
    i = rng.choice(reads)
    forged[i] = get(ops[i].call, ops[i].ret, b"never written", client=ops[i].client)
    result = check(forged)
    assert not result.ok and result.failures[0].stuck is forged[i]


def _brute_force(ops: list[Op]) -> bool:
    """Every order that respects real time, tried one by one (tiny histories only)."""

    def extend(done: frozenset[int], state: bytes | None) -> bool:
        if len(done) == len(ops):
            return True
        for i, op in enumerate(ops):
            if i in done:
                continue
            # op may go next only if no other remaining op returned before op was invoked
            if any(j not in done and j != i and ops[j].ret < op.call for j in range(len(ops))):
                continue
            allowed, after = step(state, op)
            if allowed and extend(done | {i}, after):
                return True
        return False

    return extend(frozenset(), None)


def _tiny(rng: random.Random) -> list[Op]:
    """A random history of a few ops on few values (repeated: puts may share one)."""
    ops = []
    for _ in range(rng.randint(1, 6)):
        call = rng.uniform(0, 10)
        ret = call + rng.uniform(0, 4)
        roll = rng.random()
        if roll < 0.4:
            ops.append(put(call, U if rng.random() < 0.3 else ret, rng.choice([b"a", b"b", b"c"])))
        elif roll < 0.75:
            ops.append(get(call, ret, rng.choice([None, b"a", b"b", b"c"])))
        elif rng.random() < 0.3:
            ops.append(delete(call, U, None))
        else:
            ops.append(delete(call, ret, rng.random() < 0.5))
    return ops


def test_the_search_agrees_with_brute_force_on_thousands_of_tiny_histories() -> None:
    rng = random.Random(42)
    verdicts: collections.Counter[bool] = collections.Counter()
    for _ in range(2000):
        ops = _tiny(rng)
        expected = _brute_force(ops)
        assert (check_key(ops) is None) == expected, ops
        verdicts[expected] += 1
    assert min(verdicts.values()) > 200  # both verdicts well represented


# ------------------------------------------------------------------ recording


def test_the_recorder_keeps_outcomes_and_drops_what_had_no_effect() -> None:
    ticks = iter(range(100))
    history = History(clock=lambda: float(next(ticks)))
    history.invoke("a", "put", "k", b"1").ok()  # [0, 1]
    history.invoke("a", "put", "k", b"2").unknown()  # [2, inf]
    history.invoke("a", "put", "k", b"3").not_applied()  # dropped
    history.invoke("b", "get", "k").ok(b"1")  # [4, 5]
    history.invoke("b", "get", "k").unknown()  # dropped: a failed read tells nothing
    history.invoke("b", "delete", "k").ok(True)
    assert history.ops == [
        put(0, 1, b"1", client="a"),
        put(2, U, b"2", client="a"),
        get(4, 5, b"1", client="b"),
        delete(7, 8, True, client="b"),
    ]
    assert history.dropped == 2
    pending = history.invoke("b", "get", "k")
    pending.ok(None)
    with pytest.raises(RuntimeError):
        pending.ok(None)
