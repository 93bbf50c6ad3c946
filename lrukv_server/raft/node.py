"""RaftNode: a replicated log of opaque commands, applied by a StateMachine.

PySyncObj 0.3.17 does the Raft; this module hides it behind a small contract
and files off its sharp edges (DESIGN.md, "Replication"):

* One replicated method carries the command bytes; it calls
  ``fsm.apply(command, index)`` on the Raft thread in log order. The index is
  the entry's Raft log index (strictly increasing; not contiguous, because
  no-op and membership entries never reach the state machine).
* ``propose`` never blocks its caller: it returns a Future completed by
  PySyncObj's callback. Each proposal has its own deadline, because after a
  leader change some callbacks come back DISCARDED and some never fire.
  QUEUE_FULL backs off on a timer instead of spinning the leader.
* A follower keeps the entries it already has when a message repeats them
  (``lrukv_server.raft.append``; PySyncObj dropped committed entries).
* No callback into PySyncObj ever raises (a raising callback makes PySyncObj
  apply the entry again): every one of them catches and logs.
* The Raft thread is RaftNode's own: SyncObj runs with ``autoTick=False`` and
  a dedicated daemon thread calls ``doTick``. (With autoTick, PySyncObj stops
  ticking when the thread that created the SyncObj exits.) Only that thread
  touches PySyncObj's state; ``status()`` and the read barrier hand their work
  to it through a tick callback.

Futures complete on the Raft thread, so their done-callbacks run there too:
keep them short (``asyncio.wrap_future`` is fine: it hops to the loop).
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pysyncobj import FAIL_REASON, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.syncobj import SyncObjException

from lrukv_server.errors import NotLeader, Timeout, Unavailable
from lrukv_server.raft import join, snapshot
from lrukv_server.raft.append import SyncObj
from lrukv_server.raft.config import RaftConfig, derive_password
from lrukv_server.raft.timers import Timers

__all__ = ["Member", "RaftNode", "RaftStatus", "Role", "StateMachine"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MIN_BACKOFF = 0.001
_MAX_BACKOFF = 0.05


class StateMachine(Protocol):
    """What RaftNode replicates. Every method runs on the Raft thread."""

    def apply(self, command: bytes, index: int) -> object:
        """Apply one committed command; called in log order with the entry's
        Raft index. Must be deterministic: the same result and the same state
        on every replica. An exception is logged and handed to the proposer's
        Future (the entry stays applied: it must raise on every replica alike)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state (including the last applied index), cheaply."""
        ...

    def restore(self, data: bytes) -> None:
        """Discard all state and load *data* (from ``snapshot()``)."""
        ...


class Role(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


_ROLES = {0: Role.FOLLOWER, 1: Role.CANDIDATE, 2: Role.LEADER}


@dataclass(frozen=True, slots=True)
class Member:
    """One voting member as this node sees it."""

    addr: str
    is_self: bool
    reachable: bool  # this node has a live connection to it (True for itself)
    match_index: int | None  # the leader's view of its log; None on a non-leader


@dataclass(frozen=True, slots=True)
class RaftStatus:
    self_addr: str
    role: Role
    term: int
    commit_index: int
    applied_index: int
    leader_addr: str | None
    members: tuple[Member, ...]  # itself first, then the others by address
    has_quorum: bool  # connected to a majority (including itself)
    log_entries: int  # entries in the journal since the last snapshot
    ready: bool  # caught up with the leader once since start


class _Request:
    """One request in flight: what to hand PySyncObj, its Future and its deadline."""

    __slots__ = ("arg", "attempt", "deadline", "future", "kind")

    def __init__(self, kind: str, arg: Any, future: Future[Any], deadline: float) -> None:
        self.kind = kind  # "command" | "add" | "remove"
        self.arg = arg  # command bytes, or a member's address
        self.future = future
        self.deadline = deadline  # time.monotonic()
        self.attempt = 0  # QUEUE_FULL retries so far


class _Failed:
    """An apply that raised: the exception travels to the proposer's Future."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _describe(arg: Any) -> str:
    """A proposal's argument for a debug line: a member's address, or a command's size."""
    return f"of {len(arg)} bytes" if isinstance(arg, bytes) else repr(arg)


class _Log(SyncObjConsumer):  # type: ignore[misc]  # PySyncObj is untyped
    """The single replicated method. ``None`` is a read barrier: it goes
    through the log like a command but never reaches the state machine."""

    def __init__(self, apply: Callable[[bytes | None], object]) -> None:
        super().__init__()
        self._apply = apply

    @replicated  # type: ignore[untyped-decorator]
    def command(self, data: bytes | None) -> object:
        return self._apply(data)


def _settle(future: Future[T], result: T | None = None, error: BaseException | None = None) -> None:
    """Complete *future* unless it is already done (a deadline and a callback race)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


def _expire(timeout: float, future: Future[Any]) -> None:
    if not future.done():
        _settle(future, error=Timeout(f"no outcome within {timeout:g}s; it may still be applied"))


class RaftNode:
    """A Raft node replicating opaque commands into *fsm*.

    Construction opens (or creates) the journal under ``config.data_dir``,
    binds ``config.self_addr`` and starts the Raft thread, which first restores
    the state machine from the snapshot file and replays the journal after it;
    ``wait_ready()`` returns once that is done and the node has caught up with
    a leader. With ``config.join_addr`` construction also joins the running
    cluster (blocking, up to ``config.join_timeout``). Raises Unavailable if
    the address cannot be bound or the join fails. Call ``close()`` when done.
    """

    def __init__(self, config: RaftConfig, fsm: StateMachine) -> None:
        self._config = config.validate()
        self._fsm = fsm
        self._closed = False
        self._ready = threading.Event()
        self._barrier_waiters: list[Future[int]] = []
        self._status_waiters: list[Future[RaftStatus]] = []
        self._lock = threading.Lock()  # guards the two waiter lists
        self._stop = threading.Event()
        # Leaders this node has seen take over (the first one included), counted
        # on the Raft thread once per tick; read by metrics.
        self._leader_changes = 0
        self._last_leader: str | None = None
        self._known_leader: tuple[str | None, bool] | None = None  # (leader, am I) last logged
        os.makedirs(config.data_dir, exist_ok=True)
        password = derive_password(config.secret)

        peers = list(config.peers)
        joining = False
        if config.join_addr is not None:
            members = join.cluster_members(config.join_addr, password, config.join_timeout)
            joining = config.self_addr not in members
            peers = [m for m in members if m != config.self_addr]

        serializer, deserializer = snapshot.hooks(fsm)
        conf = SyncObjConf(
            **config.syncobj_conf_kwargs(serializer, deserializer, on_ready=self._ready.set)
        )
        self._log = _Log(self._apply_entry)
        try:
            self._sync = SyncObj(config.self_addr, peers, conf, consumers=[self._log])
        except SyncObjException as exc:
            raise Unavailable(f"cannot listen for Raft on {config.self_addr}: {exc}") from None
        self._sync.addOnTickCallback(self._on_tick)
        self._timers = Timers(f"lrukv-raft-timers-{config.self_addr}")
        self._thread = threading.Thread(
            target=self._run, name=f"lrukv-raft-{config.self_addr}", daemon=True
        )
        self._thread.start()
        if joining:
            try:
                assert config.join_addr is not None
                join.request_add(config.join_addr, config.self_addr, password, config.join_timeout)
            except BaseException:
                self.close()
                raise
        log.info("raft node %s started; peers %s", config.self_addr, ", ".join(peers) or "none")

    # ------------------------------------------------------------ the contract

    @property
    def self_addr(self) -> str:
        return self._config.self_addr

    @property
    def is_leader(self) -> bool:
        """Whether this node believes it leads (another may already have replaced it)."""
        return bool(self._sync._isLeader())

    @property
    def leader_addr(self) -> str | None:
        """The Raft address of the last leader this node heard of, or None."""
        leader = self._sync._getLeader()
        return None if leader is None else str(leader.id)

    def propose(self, command: bytes, timeout: float) -> Future[object]:
        """Append *command* to the log; the Future gets ``fsm.apply``'s result
        on this node once the entry is committed and applied here.

        Never blocks. On a follower PySyncObj forwards the command to the
        leader. The Future fails with:

        * NotLeader(leader_raft=...): the node it reached was not the leader;
          not applied.
        * Unavailable: not applied (no leader, queue full until the deadline,
          the entry was discarded by a new leader, the node is closing).
        * Timeout: no outcome within *timeout* seconds, or the leader changed
          before confirming: the command may still be applied.
        * whatever ``fsm.apply`` raised (the command was applied).
        """
        if not isinstance(command, bytes):
            raise TypeError(f"a command is bytes, not {type(command).__name__}")
        future: Future[object] = self._new_future(timeout)
        if not future.done():
            self._submit(_Request("command", command, future, time.monotonic() + timeout))
        return future

    def read_barrier(self, timeout: float) -> Future[int]:
        """A Future that completes with a Raft index once this node has applied
        every entry committed before the call (by passing a no-op through the
        log). Reading the state machine after it completes is linearizable, on
        a follower too. Concurrent barriers share one log entry per tick.
        Fails with Timeout when no quorum confirms in time (a minority, say)."""
        future: Future[int] = self._new_future(timeout)
        if not future.done():
            with self._lock:
                self._barrier_waiters.append(future)
        return future

    def add_member(self, addr: str, timeout: float) -> Future[None]:
        """Add a voting member (one change at a time; the next one is refused
        with Unavailable until this one is committed). The new node should be
        started with ``join_addr`` instead, which calls this through a member."""
        future: Future[None] = self._new_future(timeout)
        if not future.done():
            self._submit(_Request("add", addr, future, time.monotonic() + timeout))
        return future

    def remove_member(self, addr: str, timeout: float) -> Future[None]:
        """Remove a voting member. The leader cannot remove itself (Unavailable):
        remove it from another node after leadership has moved."""
        future: Future[None] = self._new_future(timeout)
        if not future.done():
            self._submit(_Request("remove", addr, future, time.monotonic() + timeout))
        return future

    def wait_ready(self, timeout: float) -> bool:
        """Wait until this node has caught up with a leader once (or leads);
        False if *timeout* passes first."""
        return self._ready.wait(timeout)

    def status(self, timeout: float = 2.0) -> RaftStatus:
        """A consistent picture taken on the Raft thread (waits at most a tick or
        two; Unavailable if the Raft thread does not answer in *timeout*)."""
        future: Future[RaftStatus] = self._new_future(timeout)
        with self._lock:
            self._status_waiters.append(future)
        try:
            return future.result(timeout + 1.0)
        except TimeoutError:
            raise Unavailable("the Raft thread did not answer") from None

    @property
    def leader_changes(self) -> int:
        """How many times this node saw a new leader since it started (its first
        leader included; losing a leader without a new one is not counted)."""
        return self._leader_changes

    def force_snapshot(self) -> None:
        """Snapshot and compact the journal at the next tick."""
        self._sync.forceLogCompaction()

    def close(self) -> None:
        """Stop the Raft thread, close the journal, fail what is pending with
        Unavailable. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        closed = Unavailable("the Raft node is closed")
        for future in self._timers.pending():
            _settle(future, error=closed)
        self._timers.close()
        log.info("raft node %s closed", self._config.self_addr)

    # ------------------------------------------------------------ internals

    def _new_future(self, timeout: float) -> Future[Any]:
        """A running Future (so ``cancel()`` cannot pretend to undo a write),
        tracked until done, failed with Timeout at its deadline."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        if self._closed:
            _settle(future, error=Unavailable("the Raft node is closed"))
            return future
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, not {timeout!r}")
        self._timers.watch(future, time.monotonic() + timeout, functools.partial(_expire, timeout))
        return future

    def _submit(self, request: _Request) -> None:
        callback = functools.partial(self._on_result, request)
        try:
            if request.kind == "command":
                self._log.command(request.arg, callback=callback)
            elif request.kind == "add":
                self._sync.addNodeToCluster(request.arg, callback=callback)
            else:
                self._sync.removeNodeFromCluster(request.arg, callback=callback)
        except Exception as exc:  # PySyncObj refused before queueing (e.g. a bad address)
            _settle(request.future, error=Unavailable(f"Raft refused the request: {exc}"))

    def _on_result(self, request: _Request, result: Any, reason: int) -> None:
        # PySyncObj's callback: on the Raft thread (QUEUE_FULL: on the proposer's).
        # It must never raise: PySyncObj would apply the entry again.
        future = request.future
        try:
            if reason == FAIL_REASON.SUCCESS:
                if isinstance(result, _Failed):
                    _settle(future, error=result.error)
                else:
                    _settle(future, result)
            elif reason == FAIL_REASON.QUEUE_FULL:
                delay = min(_MIN_BACKOFF * 2**request.attempt, _MAX_BACKOFF)
                if time.monotonic() + delay >= request.deadline:
                    _settle(future, error=Unavailable("the Raft proposal queue stayed full"))
                elif not future.done():
                    request.attempt += 1
                    self._timers.call_at(
                        time.monotonic() + delay, functools.partial(self._submit, request)
                    )
            else:
                error = self._error_for(reason)
                log.debug("raft: %s %s failed: %s", request.kind, _describe(request.arg), error)
                _settle(future, error=error)
        except Exception:
            log.exception("raft callback failed (swallowed so the entry is not re-applied)")

    def _error_for(self, reason: int) -> Exception:
        if reason == FAIL_REASON.NOT_LEADER:
            return NotLeader(leader_raft=self.leader_addr)
        if reason == FAIL_REASON.MISSING_LEADER:
            return Unavailable("no Raft leader")
        if reason == FAIL_REASON.DISCARDED:
            return Unavailable("discarded by a new leader; not applied")
        if reason in (FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME):
            return Timeout("the leader changed before confirming; it may still be applied")
        if reason == FAIL_REASON.REQUEST_DENIED:
            return Unavailable("refused by the leader (a membership change already in progress?)")
        return Unavailable(f"Raft failure reason {reason}")

    def _apply_entry(self, command: bytes | None) -> object:
        # Raft thread, inside PySyncObj's apply loop, which bumps raftLastApplied
        # right after this returns: this entry's index is one past it.
        index: int = self._sync.raftLastApplied + 1
        if command is None:
            return index
        try:
            return self._fsm.apply(command, index)
        except Exception as exc:
            log.exception("state machine apply failed at index %d", index)
            return _Failed(exc)

    def _on_tick(self) -> None:
        # Raft thread, once per tick, after PySyncObj's own work.
        try:
            leader = self._sync._getLeader()
            if leader is not None and str(leader.id) != self._last_leader:
                self._last_leader = str(leader.id)
                self._leader_changes += 1
            self._log_leader_change()
            with self._lock:
                barrier, self._barrier_waiters = self._barrier_waiters, []
                asked, self._status_waiters = self._status_waiters, []
            barrier = [f for f in barrier if not f.done()]
            if barrier:
                self._log.command(None, callback=functools.partial(self._on_barrier, barrier))
            if asked:
                status = self._status_now()
                for future in asked:
                    _settle(future, status)
        except Exception:
            log.exception("raft tick callback failed")

    def _log_leader_change(self) -> None:
        """Log each change of leader this node sees (every log mode shows it)."""
        leader = self.leader_addr
        known = (leader, leader is not None and leader == self.self_addr)
        if known == self._known_leader:
            return
        self._known_leader = known
        term = self._sync.getStatus()["raft_term"]
        if leader is None:
            log.info("raft: no leader known (term %s)", term)
        elif known[1]:
            log.info("raft: this node (%s) is the leader (term %s)", leader, term)
        else:
            log.info("raft: the leader is %s (term %s)", leader, term)

    def _on_barrier(self, waiters: list[Future[int]], result: Any, reason: int) -> None:
        try:
            if reason == FAIL_REASON.SUCCESS:
                for future in waiters:
                    _settle(future, result)
            else:  # a barrier is idempotent: try again next tick, until each deadline
                with self._lock:
                    self._barrier_waiters.extend(f for f in waiters if not f.done())
        except Exception:
            log.exception("raft barrier callback failed")

    def _status_now(self) -> RaftStatus:
        raw = self._sync.getStatus()
        prefix, match_prefix = "partner_node_status_server_", "match_idx_server_"
        role = _ROLES[raw["state"]]
        members = [Member(self.self_addr, True, True, None)]
        for key in sorted(k for k in raw if k.startswith(prefix)):
            addr = key[len(prefix) :]
            match = raw.get(match_prefix + addr) if role is Role.LEADER else None
            members.append(Member(addr, False, raw[key] == 2, match))
        leader = raw["leader"]
        return RaftStatus(
            self_addr=self.self_addr,
            role=role,
            term=int(raw["raft_term"]),
            commit_index=int(raw["commit_idx"]),
            applied_index=int(raw["last_applied"]),
            leader_addr=None if leader is None else str(leader.id),
            members=tuple(members),
            has_quorum=bool(raw["has_quorum"]),
            log_entries=int(raw["log_len"]),
            ready=self._ready.is_set(),
        )

    def _run(self) -> None:
        tick = self._config.tick_period
        while not self._stop.is_set():
            try:
                self._sync.doTick(tick)
            except Exception:
                log.exception("raft tick failed; retrying")
                time.sleep(tick)
        try:
            self._sync.destroy()  # autoTick=False: destroys at once, on this thread
        except Exception:
            log.exception("closing the Raft journal and connections failed")
