"""A linearizability checker for histories of a key-value store, key by key.

A history is what concurrent clients saw: for every operation, when it was
invoked and when it completed (one clock, e.g. ``time.monotonic()`` in the test
process) and what it returned. Each key is a register, checked on its own
(linearizability is compositional: the history is linearizable iff every
key's sub-history is). The search is Wing & Gong's, with Lowe's memoization of
(linearized set, register value), the algorithm Porcupine implements.

Recording (:class:`History`)::

    history = History()
    op = history.invoke("c1", "put", "k", b"v1")
    try:
        kv.put("k", b"v1")
    except NotLeader:
        op.not_applied()      # definitely not applied: dropped from the history
    except Exception:
        op.unknown()          # may take effect at any time after invoke, or never
    else:
        op.ok()

Outcomes:

* ``put(k, v)``: ok, or unknown (a timeout, a dropped connection, any error
  after the request was sent that does not prove it was not applied), or not
  applied (dropped).
* ``get(k)``: the value, or ``None`` for not found; a failed read is dropped.
* ``delete(k)``: whether the key existed, or unknown (``existed=None``).

An unknown write gets an infinite completion time: it is concurrent with every
later operation, so the search may place it anywhere after its invocation, or
after everything else (the same as never). An unknown ``delete`` may have
found the key or not.

Write values should be unique per key, so that a read names the write it saw;
the checker does not need it, but the failures it reports are far easier to
read.
"""

from __future__ import annotations

import collections
import itertools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CheckResult",
    "SearchLimit",
    "History",
    "KeyFailure",
    "Op",
    "Pending",
    "check",
    "check_key",
]

Kind = Literal["put", "get", "delete"]
State = bytes | None  # the register: a value, or None for an absent key

_DEFAULT_MAX_STEPS = 5_000_000
# What a failure shows: the last ops of the longest prefix, the ops pending after it.
_WINDOW_LINEARIZED = 6
_WINDOW_PENDING = 24


@dataclass(frozen=True, slots=True)
class Op:
    """One operation on one key.

    ``value``: for a put, the value written; for a get, the value read (None:
    not found). ``existed``: for a delete, whether the key existed (None:
    unknown). ``ret`` is ``math.inf`` when the outcome is unknown.
    """

    client: str
    kind: Kind
    key: str
    call: float
    ret: float
    value: bytes | None = None
    existed: bool | None = None

    @property
    def unknown(self) -> bool:
        return math.isinf(self.ret)

    def describe(self, origin: float = 0.0) -> str:
        end = "  ...  " if self.unknown else f"{self.ret - origin:7.3f}"
        if self.kind == "put":
            what = f"put({_show(self.value)})"
            outcome = "unknown" if self.unknown else "ok"
        elif self.kind == "get":
            what = "get()"
            outcome = "not found" if self.value is None else _show(self.value)
        else:
            what = "delete()"
            outcome = "unknown" if self.existed is None else f"existed={self.existed}"
        return f"[{self.call - origin:7.3f} {end}] {self.client:>6}  {what} -> {outcome}"


def _show(value: bytes | None) -> str:
    return "absent" if value is None else repr(value)


def step(state: State, op: Op) -> tuple[bool, State]:
    """The register's sequential specification: may *op* happen in *state*, and what follows."""
    if op.kind == "put":
        return True, op.value
    if op.kind == "get":
        return op.value == state, state
    found = state is not None
    return op.existed is None or op.existed == found, None


# --------------------------------------------------------------------------- recording


class History:
    """A thread-safe recorder of operations (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: list[Op] = []
        self.dropped = 0  # operations that definitely had no effect

    def invoke(self, client: str, kind: Kind, key: str, value: bytes | None = None) -> Pending:
        """Note the invocation of an operation (call it just before sending)."""
        if kind == "put" and value is None:
            raise ValueError("a put needs its value")
        return Pending(self, client, kind, key, value, self._clock())

    def _record(self, op: Op | None) -> None:
        with self._lock:
            if op is None:
                self.dropped += 1
            else:
                self._ops.append(op)

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)


@dataclass
class Pending:
    """An invoked operation waiting for its outcome; settle it exactly once."""

    history: History
    client: str
    kind: Kind
    key: str
    value: bytes | None
    call: float
    _settled: bool = field(default=False, init=False)

    def ok(self, result: bytes | bool | None = None) -> None:
        """Completed: a get's value (None: not found), a delete's ``existed``."""
        ret = self.history._clock()
        if self.kind == "put":
            self._settle(Op(self.client, "put", self.key, self.call, ret, value=self.value))
        elif self.kind == "get":
            if not (result is None or isinstance(result, bytes)):
                raise TypeError("a get completes with bytes or None")
            self._settle(Op(self.client, "get", self.key, self.call, ret, value=result))
        else:
            if not isinstance(result, bool):
                raise TypeError("a delete completes with existed=True/False")
            self._settle(Op(self.client, "delete", self.key, self.call, ret, existed=result))

    def unknown(self) -> None:
        """No outcome: a write may have taken effect (or may still); a read is dropped."""
        if self.kind == "get":
            self._settle(None)
        else:
            self._settle(
                Op(self.client, self.kind, self.key, self.call, math.inf, value=self.value)
            )

    def not_applied(self) -> None:
        """Definitely no effect (refused before it reached the log): dropped."""
        self._settle(None)

    def _settle(self, op: Op | None) -> None:
        if self._settled:
            raise RuntimeError("operation settled twice")
        self._settled = True
        self.history._record(op)


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True, slots=True)
class KeyFailure:
    """Why one key's history is not linearizable, with the part worth reading."""

    key: str
    ops: int
    linearized: int  # ops in the longest linearizable prefix the search found
    state: State  # the register's value after that prefix
    stuck: Op  # an op that returned before it could be placed after that prefix
    prefix_tail: tuple[Op, ...]  # the prefix's last ops, in linearization order
    pending: tuple[Op, ...]  # ops outside the prefix invoked before `stuck` returned
    origin: float  # times in the report are relative to this

    def __str__(self) -> str:
        lines = [
            f"key {self.key!r} is not linearizable ({self.ops} ops). The longest "
            f"linearizable prefix has {self.linearized} ops and leaves the value "
            f"{_show(self.state)}; then this op cannot be placed:",
            f"    {self.stuck.describe(self.origin)}",
            "the end of that prefix, in linearization order (times in seconds):",
            *(f"    {op.describe(self.origin)}" for op in self.prefix_tail),
            "not in the prefix, invoked before that op returned ('...': unknown outcome):",
            *(
                f"  {'!' if op is self.stuck else ' '} {op.describe(self.origin)}"
                for op in self.pending
            ),
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    keys: int
    ops: int
    failures: tuple[KeyFailure, ...]

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable: {self.ops} ops on {self.keys} keys"
        return "\n\n".join(str(f) for f in self.failures)


class SearchLimit(Exception):
    """The search took more steps than allowed: neither proof nor counterexample.
    ``partial`` is the deepest dead end found so far (a likely culprit), if any."""

    def __init__(self, message: str, partial: KeyFailure | None) -> None:
        super().__init__(message if partial is None else f"{message}\n{partial}")
        self.partial = partial


def check(
    ops: Iterable[Op],
    *,
    initial: State = None,
    max_steps: int = _DEFAULT_MAX_STEPS,
) -> CheckResult:
    """Check every key's sub-history; *initial* is every key's value at the start."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    failures = []
    for key in sorted(by_key):
        failure = check_key(by_key[key], initial=initial, max_steps=max_steps)
        if failure is not None:
            failures.append(failure)
    total = sum(len(v) for v in by_key.values())
    return CheckResult(not failures, len(by_key), total, tuple(failures))


def check_key(
    ops: Sequence[Op], *, initial: State = None, max_steps: int = _DEFAULT_MAX_STEPS
) -> KeyFailure | None:
    """Wing & Gong's search with Lowe's cache over one key's history.

    Returns None if linearizable, else a KeyFailure. Raises SearchLimit after
    *max_steps* steps.

    The history is a doubly linked list of call and return entries in time
    order (a call before a return at the same instant: such ops overlap). A
    search state is the set of ops linearized so far and the register's value.
    Its candidates are the ops whose call entries come before the first
    remaining return entry: each is tried as the next op (its two entries are
    lifted out of the list); when none works, the search backtracks.

    Unknown-outcome ops never return, so they can always go last; two things
    follow. The search succeeds once every known op is placed. And a state is
    no better than one with the same known ops, the same value and fewer
    unknown ops placed (whatever completes it completes the other, with the
    extra unknown ops appended): the cache keeps, per (known ops, value), the
    sets of unknown ops already seen and prunes any superset. Known candidates
    are tried before unknown ones, so an unknown op is placed early only when
    an observation needs it. Right after an unknown op, an op is skipped if it
    would reach the same value from the state before that unknown op (the
    parent state tries it, with one unknown op fewer): so the search never
    strings unknown writes together, which would visit every subset of them.
    """
    n = len(ops)
    if n == 0:
        return None
    if len({op.key for op in ops}) != 1:
        raise ValueError("check_key takes the history of one key")
    unknown = [op.unknown for op in ops]
    for op in ops:
        if op.unknown and not (op.kind == "put" or (op.kind == "delete" and op.existed is None)):
            raise ValueError(f"only a write can have an unknown outcome: {op}")
    known_total = n - sum(unknown)
    read_values = {op.value for op in ops if op.kind == "get"}
    put_values = collections.Counter(op.value for op in ops if op.kind == "put")

    # Entries 0..2n-1: entry 2i is op i's call, 2i+1 its return. HEAD and TAIL are sentinels.
    events = sorted(
        range(2 * n),
        key=lambda e: (ops[e // 2].ret if e % 2 else ops[e // 2].call, e % 2, e),
    )
    head, tail = 2 * n, 2 * n + 1
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    chain = [head, *events, tail]
    for a, b in itertools.pairwise(chain):
        nxt[a], prv[b] = b, a

    def lift(i: int) -> None:
        for e in (2 * i, 2 * i + 1):
            nxt[prv[e]] = nxt[e]
            prv[nxt[e]] = prv[e]

    def unlift(i: int) -> None:
        for e in (2 * i + 1, 2 * i):
            nxt[prv[e]] = e
            prv[nxt[e]] = e

    def candidates(state: State) -> tuple[list[int], int]:
        """The ops worth trying next in *state* (known first), and the first op
        still to return.

        An unknown op is worth placing only if some known candidate then does
        what it could not do in *state* (the search skips the rest, see above):
        a put, if a candidate reads its value, or if a candidate deletes with
        existed=True while the key is absent; a delete, if a candidate reads
        "not found" or deletes with existed=False while the key is present.
        Interchangeable unknown ops are tried once: any unknown delete, and any
        put whose value no read in the history returned.
        """
        known: list[int] = []
        pending: list[int] = []
        e = nxt[head]
        while e % 2 == 0:  # a call entry (TAIL is odd: the walk stops there too)
            (pending if unknown[e // 2] else known).append(e // 2)
            e = nxt[e]
        if not pending:
            return known, e // 2
        reads = {ops[i].value for i in known if ops[i].kind == "get"}
        deletes = {ops[i].existed for i in known if ops[i].kind == "delete"}
        absent_seen = None in reads or False in deletes
        tried_blind_put = tried_delete = False
        for i in pending:
            op = ops[i]
            if op.kind == "delete":
                if state is not None and absent_seen and not tried_delete:
                    known.append(i)
                    tried_delete = True
            elif op.value in reads and op.value != state:
                known.append(i)
            elif state is None and True in deletes:
                if op.value not in read_values:
                    if not tried_blind_put:
                        known.append(i)
                        tried_blind_put = True
                elif put_values[op.value] > 1:
                    known.append(i)
        return known, e // 2

    state: State = initial
    known_placed = 0  # bit i: known op i is linearized
    unknown_placed = 0  # bit i: unknown op i is linearized
    placed_count = 0
    seen: dict[tuple[int, State], list[int]] = {}  # (known ops, value) -> unknown-op sets
    path: list[tuple[int, State]] = []  # (op, value before it)
    frames: list[tuple[list[int], int, int]] = []  # (candidates, next to try, blocker)
    best: tuple[list[int], int, State] | None = None  # (prefix, stuck op, value)
    best_depth = (0, 0)
    steps = 0
    cands, blocker = candidates(state)
    frames.append((cands, 0, blocker))
    while placed_count < known_total:
        cands, tried, blocker = frames[-1]
        advanced = False
        after_unknown = bool(path) and unknown[path[-1][0]]
        before_unknown = path[-1][1] if path else None
        while tried < len(cands):
            steps += 1
            if steps > max_steps:
                partial = None if best is None else _failure(ops, *best)
                raise SearchLimit(
                    f"key {ops[0].key!r}: gave up after {max_steps} steps ({n} ops)", partial
                )
            i = cands[tried]
            tried += 1
            allowed, after = step(state, ops[i])
            if not allowed:
                continue
            if after_unknown and step(before_unknown, ops[i]) == (True, after):
                continue  # as good without the unknown op just placed: the parent tries it
            bit = 1 << i
            if unknown[i]:
                grown_known, grown_unknown = known_placed, unknown_placed | bit
            else:
                grown_known, grown_unknown = known_placed | bit, unknown_placed
            sets = seen.setdefault((grown_known, after), [])
            if grown_unknown == 0:
                if 0 in sets:
                    continue
            elif any(s & ~grown_unknown == 0 for s in sets):  # a better state was seen
                continue
            sets.append(grown_unknown)
            frames[-1] = (cands, tried, blocker)
            path.append((i, state))
            state, known_placed, unknown_placed = after, grown_known, grown_unknown
            placed_count += not unknown[i]
            lift(i)
            following, first_return = candidates(state)
            frames.append((following, 0, first_return))
            advanced = True
            break
        if advanced:
            continue
        # every candidate failed: the blocker cannot be placed after this prefix
        depth = (placed_count, -unknown_placed.bit_count())  # prefer known ops placed
        if best is None or depth > best_depth:
            best, best_depth = ([i for i, _ in path], blocker, state), depth
        frames.pop()
        if not path:
            return _failure(ops, *best)
        i, state = path.pop()
        if unknown[i]:
            unknown_placed &= ~(1 << i)
        else:
            known_placed &= ~(1 << i)
            placed_count -= 1
        unlift(i)
    return None


def _failure(ops: Sequence[Op], prefix: list[int], stuck: int, state: State) -> KeyFailure:
    done = set(prefix)
    stuck_op = ops[stuck]
    pending = sorted(
        (op for i, op in enumerate(ops) if i not in done and op.call <= stuck_op.ret),
        key=lambda op: op.call,
    )
    if len(pending) > _WINDOW_PENDING:  # keep the ops nearest the stuck one, and it
        pending = [op for op in pending[-_WINDOW_PENDING:] if op is not stuck_op]
        pending = sorted([stuck_op, *pending], key=lambda op: op.call)
    tail = tuple(ops[i] for i in prefix[-_WINDOW_LINEARIZED:])
    origin = min(op.call for op in (*tail, *pending))
    return KeyFailure(
        key=stuck_op.key,
        ops=len(ops),
        linearized=len(prefix),
        state=state,
        stuck=stuck_op,
        prefix_tail=tail,
        pending=tuple(pending),
        origin=origin,
    )
