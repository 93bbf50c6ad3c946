"""A fake KVService, and a wrapper that makes any KVService fail on purpose.

* :class:`FakeService` is a dict behind the KVService protocol that records the
  arguments of each call: the handler tests run the HTTP and gRPC layers
  against it, in process.
* :class:`FaultyService` wraps a service and raises a chosen error when a call
  names one of the :data:`FAULTS` keys. The error-table walk uses it in process
  and, through tests/server/fault_server.py, inside the real ``lrukv-server``.

Every row of ``lrukv_server.api.status.TABLE`` (and INTERNAL) has a fault key
here; tests/server/test_status.py fails if a row is added without one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrukv.errors import (
    InvalidArgument,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    KeyNotFound,
    ValueTooLarge,
)
from lrukv_server.errors import (
    BatchTooLarge,
    InvalidRequest,
    LogUnavailable,
    NotLeader,
    TooManyStreams,
    Unavailable,
)
from lrukv_server.service.base import (
    ClusterStatus,
    Consistency,
    Health,
    KVService,
    MemberStatus,
    ServerInfo,
    StoreStats,
)
from lrukv_server.service.batch import (
    DeleteOp,
    GetResult,
    PutOp,
    WriteOp,
    WriteResult,
    per_key_errors,
)

__all__ = [
    "FAULTS",
    "LEADER_HTTP",
    "LEADER_RPC",
    "MARKER_DIR_ENV",
    "MIDSTREAM_FAULT_KEY",
    "SECRET",
    "SLOW_KEY",
    "Fault",
    "FakeService",
    "FaultyService",
]

LEADER_RPC = "127.0.0.1:1"  # nothing listens there: tests never follow the redirect
LEADER_HTTP = "127.0.0.1:2"
SECRET = "/secret/path/in/a/traceback"  # must never reach a client
SLOW_KEY = "fault-slow"  # calls on keys starting so take SLOW_SECONDS (for drain tests)
SLOW_SECONDS = 1.5
# When set, a call on SLOW_KEY first creates a file in this directory, so a test
# knows the request is in flight (inside the handler) before it signals the server.
MARKER_DIR_ENV = "FAULT_MARKER_DIR"
MIDSTREAM_FAULT_KEY = "fault-midstream"  # items() fails with an internal error after this key


@dataclass(frozen=True)
class Fault:
    """A key that makes FaultyService raise ``make()``, and the answer expected."""

    key: str
    make: Callable[[], BaseException]
    error: type[BaseException]  # the table row it exercises
    grpc_code: str  # grpc.StatusCode name
    http_status: int
    code: str  # error.code / lrukv-error-code


FAULTS: tuple[Fault, ...] = (
    Fault("fault-key-not-found", lambda: KeyNotFound("fault-key-not-found"), KeyNotFound,
          "NOT_FOUND", 404, "key_not_found"),
    Fault("fault-value-too-large", lambda: ValueTooLarge("value is 9 bytes; the limit is 8",
          size=9, limit=8), ValueTooLarge, "RESOURCE_EXHAUSTED", 413, "value_too_large"),
    Fault("fault-invalid-key", lambda: InvalidKey("key contains control character"), InvalidKey,
          "INVALID_ARGUMENT", 400, "invalid_key"),
    Fault("fault-invalid-value", lambda: InvalidValue("value must be bytes, not str"),
          InvalidValue, "INVALID_ARGUMENT", 400, "invalid_value"),
    Fault("fault-invalid-ttl", lambda: InvalidTTL("ttl must be a positive number, not -1"),
          InvalidTTL, "INVALID_ARGUMENT", 400, "invalid_ttl"),
    Fault("fault-invalid-request", lambda: InvalidRequest("unknown consistency 'x'"),
          InvalidRequest, "INVALID_ARGUMENT", 400, "invalid_request"),
    Fault("fault-invalid-argument", lambda: InvalidArgument("bad argument"), InvalidArgument,
          "INVALID_ARGUMENT", 400, "invalid_argument"),
    Fault("fault-not-leader", lambda: NotLeader(LEADER_RPC, LEADER_HTTP), NotLeader,
          "FAILED_PRECONDITION", 307, "not_leader"),
    Fault("fault-no-leader", NotLeader, NotLeader,
          "FAILED_PRECONDITION", 503, "not_leader"),
    Fault("fault-log-unavailable", lambda: LogUnavailable("transaction log: disk full"),
          LogUnavailable, "UNAVAILABLE", 503, "log_unavailable"),
    Fault("fault-too-many-streams", lambda: TooManyStreams("too many item streams"),
          TooManyStreams, "RESOURCE_EXHAUSTED", 503, "too_many_streams"),
    Fault("fault-unavailable", lambda: Unavailable("the server is shutting down"), Unavailable,
          "UNAVAILABLE", 503, "unavailable"),
    Fault("fault-batch-too-large", lambda: BatchTooLarge("the batch has 9 entries; the limit is 8"),
          BatchTooLarge, "RESOURCE_EXHAUSTED", 413, "batch_too_large"),
    Fault("fault-internal", lambda: RuntimeError(f"boom at {SECRET}"), Exception,
          "INTERNAL", 500, "internal"),
)  # fmt: skip

_BY_KEY = {fault.key: fault for fault in FAULTS}


class FaultyService:
    """Delegates to *inner*, but raises the fault of a FAULTS key; sleeps on SLOW_KEY."""

    def __init__(self, inner: KVService) -> None:
        self._inner = inner

    @staticmethod
    def _check(key: str) -> None:
        fault = _BY_KEY.get(key)
        if fault is not None:
            raise fault.make()
        if key.startswith(SLOW_KEY):
            marker_dir = os.environ.get(MARKER_DIR_ENV)
            if marker_dir:
                Path(marker_dir, f"in-flight-{uuid.uuid4().hex}").touch()
            time.sleep(SLOW_SECONDS)

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._check(key)
        self._inner.put(key, value, ttl=ttl)

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        self._check(key)
        return self._inner.get(key, consistency=consistency)

    def delete(self, key: str) -> bool:
        self._check(key)
        return self._inner.delete(key)

    @staticmethod
    def _split(keys: Sequence[str]) -> dict[int, Exception]:
        """Per-key faults of a batch (the key's own errors); a fault of the node
        (NotLeader, Unavailable, internal…) is raised for the whole batch."""
        refused: dict[int, Exception] = {}
        for position, key in enumerate(keys):
            try:
                FaultyService._check(key)
            except per_key_errors as exc:
                refused[position] = exc
        return refused

    def get_many(
        self,
        keys: Sequence[str],
        *,
        consistency: Consistency = Consistency.DEFAULT,
        max_bytes: int | None = None,
    ) -> list[GetResult]:
        refused = self._split(keys)
        rest = [key for position, key in enumerate(keys) if position not in refused]
        answered = iter(self._inner.get_many(rest, consistency=consistency, max_bytes=max_bytes))
        return [
            GetResult(key, None, refused[p]) if p in refused else next(answered)
            for p, key in enumerate(keys)
        ]

    def write_many(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        refused = self._split([op.key for op in ops])
        if atomic and refused:
            raise refused[min(refused)]
        rest = [op for position, op in enumerate(ops) if position not in refused]
        answered = iter(self._inner.write_many(rest, atomic=atomic))
        return [
            WriteResult(op.key, error=refused[p]) if p in refused else next(answered)
            for p, op in enumerate(ops)
        ]

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        return self._inner.keys(consistency=consistency)

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        for key, value in self._inner.items(consistency=consistency):
            yield key, value
            if key == MIDSTREAM_FAULT_KEY:
                raise RuntimeError(f"stream broke at {SECRET}")

    def servers(self) -> list[ServerInfo]:
        return self._inner.servers()

    def stats(self) -> StoreStats:
        return self._inner.stats()

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        self._check(key)
        return self._inner.ttl(key, consistency=consistency)

    def health(self) -> Health:
        return self._inner.health()

    def cluster_status(self, *, digest: bool = False) -> ClusterStatus:
        return self._inner.cluster_status(digest=digest)

    def add_member(self, raft_addr: str) -> None:
        self._inner.add_member(raft_addr)

    def remove_member(self, raft_addr: str) -> None:
        self._inner.remove_member(raft_addr)

    def close(self) -> None:
        self._inner.close()


@dataclass
class FakeService:
    """A KVService over a dict, recording what each call was given.

    ``health_value`` is what ``health()`` returns; ``calls`` lists
    ``(method, args)`` in order. Thread-safe enough for handler tests.
    """

    data: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    health_value: Health = field(default_factory=lambda: Health(True, True, {"store": "ok"}))
    node: ServerInfo = field(
        default_factory=lambda: ServerInfo("fake-1", "127.0.0.1:50051", "127.0.0.1:8080", True)
    )
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, method: str, *args: object) -> None:
        with self._lock:
            self.calls.append((method, args))

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._record("put", key, value, ttl)
        self.data[key] = value

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        self._record("get", key, consistency)
        try:
            return self.data[key]
        except KeyError:
            raise KeyNotFound(key) from None

    def delete(self, key: str) -> bool:
        self._record("delete", key)
        return self.data.pop(key, None) is not None

    def get_many(
        self,
        keys: Sequence[str],
        *,
        consistency: Consistency = Consistency.DEFAULT,
        max_bytes: int | None = None,
    ) -> list[GetResult]:
        self._record("get_many", tuple(keys), consistency, max_bytes)
        return [GetResult(key, self.data.get(key)) for key in keys]

    def write_many(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        self._record("write_many", tuple(ops), atomic)
        results = []
        for op in ops:
            if isinstance(op, PutOp):
                self.data[op.key] = op.value
                results.append(WriteResult(op.key))
            elif isinstance(op, DeleteOp):
                existed = self.data.pop(op.key, None) is not None
                results.append(WriteResult(op.key, existed=existed))
        return results

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        self._record("keys", consistency)
        return iter(list(self.data))

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        self._record("items", consistency)
        return iter(list(self.data.items()))

    def servers(self) -> list[ServerInfo]:
        self._record("servers")
        return [self.node]

    def stats(self) -> StoreStats:
        self._record("stats")
        size = len(self.data)
        nbytes = sum(len(k.encode()) + len(v) for k, v in self.data.items())
        return StoreStats(size, 1000, 10, 100, nbytes, None, 1024, None, 0, 0, {})

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        self._record("ttl", key, consistency)
        if key not in self.data:
            raise KeyNotFound(key)
        return None

    def health(self) -> Health:
        return self.health_value

    def cluster_status(self, *, digest: bool = False) -> ClusterStatus:
        self._record("cluster_status", digest)
        node = self.node
        me = MemberStatus(node.id, "", node.http_addr, node.rpc_addr, True)
        return ClusterStatus(node.id, "leader", 0, 0, 0, me, (me,), "0" * 64 if digest else None)

    def add_member(self, raft_addr: str) -> None:
        self._record("add_member", raft_addr)

    def remove_member(self, raft_addr: str) -> None:
        self._record("remove_member", raft_addr)

    def close(self) -> None:
        self.closed = True

    def last(self, method: str) -> tuple[object, ...]:
        """The arguments of the latest call of *method*."""
        for name, args in reversed(self.calls):
            if name == method:
                return args
        raise AssertionError(f"{method} was never called; calls: {self.calls}")
