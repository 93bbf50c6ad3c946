"""How a load client sends its operations: one call each, batches of N keys
(``--batch N``), or a pipeline with N requests in flight (``--pipeline N``).

The worker loop picks an operation and its keys; an executor sends them and
tells the :class:`Recorder` each key's outcome (``ok``, ``miss``, ``error``)
and each request's latency. The recorder counts, keeps the timeline, and runs
the correctness check of private keys, whatever the executor.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from lrukv_client.bench.checker import PrivateKeys
from lrukv_client.connect import AnyClient
from lrukv_client.errors import KeyNotFound, LrukvClientError, Unreachable
from lrukv_client.models import BatchResult

__all__ = ["BatchExecutor", "Executor", "Item", "PipelineExecutor", "Recorder", "SingleExecutor"]

_REPORT_EVERY = 16  # outcomes between progress reports (a shared counter)
_MAX_ERROR_SAMPLES = 10


class Progress(Protocol):
    def add(self, ops: int, errors: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Item:
    """One key of an operation: a private key (``index`` into the client's own
    keys, checked) or a shared one; ``value`` is what a put writes."""

    key: str
    index: int
    private: bool
    value: bytes = b""


class Recorder:
    """Everything one worker measures: counts by op and outcome, errors by kind,
    latencies, the throughput timeline, and the private keys' check."""

    def __init__(
        self,
        ops: list[str],
        private: PrivateKeys,
        progress: Progress,
        *,
        interval: float,
        start: float,
    ) -> None:
        self.private = private
        self.progress = progress
        self.interval = interval
        self.start = start
        self.latencies = {op: array("d") for op in ops}
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.timeline_ops: list[int] = []
        self.timeline_errors: list[int] = []
        self._unreported_ops = 0
        self._unreported_errors = 0

    def outcome(
        self,
        op: str,
        item: Item | None,
        outcome: str,
        ended: float,
        *,
        read: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Count one key's outcome (``item`` None: a ``keys`` call) and check it."""
        self.counts[f"{op}.{outcome}"] += 1
        bucket = int((ended - self.start) / self.interval)
        while len(self.timeline_ops) <= bucket:
            self.timeline_ops.append(0)
            self.timeline_errors.append(0)
        self._unreported_ops += 1
        if outcome == "error":
            self.timeline_errors[bucket] += 1
            self._unreported_errors += 1
            self._count_error(op, item.key if item else "", error)
        else:
            self.timeline_ops[bucket] += 1
        if item is not None and item.private:
            self._check(op, item, outcome, read)
        if self._unreported_errors or self._unreported_ops >= _REPORT_EVERY:
            self.flush()

    def latency(self, op: str, seconds: float) -> None:
        """One request's latency (a batch request counts once, whatever its size)."""
        self.latencies[op].append(seconds)

    def flush(self) -> None:
        if self._unreported_ops:
            self.progress.add(self._unreported_ops, self._unreported_errors)
            self._unreported_ops = self._unreported_errors = 0

    def _count_error(self, op: str, key: str, error: BaseException | None) -> None:
        if isinstance(error, LrukvClientError):
            # A refused connection and an UNAVAILABLE answer both mean "the server
            # is down or going down": one kind, whichever the transport saw.
            kind = "Unavailable" if isinstance(error, Unreachable) else type(error).__name__
            message = str(error)
        else:  # not an SDK error: a bug somewhere; count it, loudly
            kind = f"unexpected:{type(error).__name__}"
            message = repr(error)
        self.errors[kind] += 1
        if len(self.error_samples) < _MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{op} {key!r}: {kind}: {message}")

    def _check(self, op: str, item: Item, outcome: str, read: bytes | None) -> None:
        private, index = self.private, item.index
        if op == "get" and outcome != "error":
            private.read(index, read)
        elif op == "put":
            (private.put_done if outcome == "ok" else private.put_failed)(index, item.value)
        elif op == "delete":
            if outcome == "ok":
                private.delete_done(index)
            else:
                private.delete_failed(index)


class Executor(Protocol):
    """Sends one operation's items (all of one op) and records their outcomes."""

    def run(self, op: str, items: list[Item]) -> None: ...

    def finish(self) -> None: ...


def _outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    return "miss" if isinstance(error, KeyNotFound) else "error"


class SingleExecutor:
    """One call per key: ``get``, ``put``, ``delete`` (and ``keys``)."""

    def __init__(self, client: AnyClient, recorder: Recorder) -> None:
        self.client = client
        self.recorder = recorder

    def run(self, op: str, items: list[Item]) -> None:
        client, clock = self.client, time.perf_counter
        targets: list[Item | None] = list(items) if items else [None]
        for item in targets:
            read: bytes | None = None
            error: BaseException | None = None
            began = clock()
            try:
                if item is None:
                    client.keys()
                elif op == "get":
                    read = client.get(item.key)
                elif op == "put":
                    client.put(item.key, item.value)
                else:
                    client.delete(item.key)
            except Exception as exc:  # every failure is counted, SDK error or bug
                error = exc
            ended = clock()
            outcome = _outcome_of(error)
            if outcome != "error":
                self.recorder.latency(op, ended - began)
            self.recorder.outcome(op, item, outcome, ended, read=read, error=error)

    def finish(self) -> None:
        pass


class BatchExecutor(SingleExecutor):
    """All the items of an operation in one batch call: ``get_many_results``,
    ``put_many``, ``delete_many`` (``keys`` stays one call)."""

    def run(self, op: str, items: list[Item]) -> None:
        if op == "keys":
            super().run(op, items)
            return
        client, clock = self.client, time.perf_counter
        keys = [item.key for item in items]
        began = clock()
        results: list[BatchResult] | None = None
        failure: BaseException | None = None
        try:
            if op == "get":
                results = client.get_many_results(keys)
            elif op == "put":
                results = client.put_many([(item.key, item.value) for item in items])
            else:
                results = client.delete_many(keys)
        except Exception as exc:  # the whole batch failed: every key did
            failure = exc
        ended = clock()
        if failure is None:
            self.recorder.latency(op, ended - began)
        for position, item in enumerate(items):
            result = results[position] if results is not None else None
            error = failure if result is None else result.error
            found = result is not None and result.ok and (op != "get" or result.found)
            outcome = "error" if error is not None else ("ok" if found else "miss")
            if op != "get" and outcome == "miss":
                outcome = "ok"  # a delete of an absent key succeeded
            read = result.value if result is not None else None
            self.recorder.outcome(op, item, outcome, ended, read=read, error=error)


class PipelineExecutor:
    """Every request on one pipeline, ``window`` in flight. Outcomes are recorded
    in the order the requests were sent, and a private key waits for its
    previous request to be answered, so the check sees each key's history in
    order. A pipeline whose stream broke is replaced by a new one."""

    def __init__(
        self,
        client: AnyClient,
        recorder: Recorder,
        window: int,
        open_pipeline: Callable[[], Any] | None = None,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.window = window
        self._open = open_pipeline or (lambda: client.pipeline(window=window))
        self._pipeline: Any = None
        self._in_flight: deque[tuple[str, Item | None, float, Future[Any], list[float]]] = deque()
        self._private_in_flight: Counter[int] = Counter()

    def run(self, op: str, items: list[Item]) -> None:
        if op == "keys":
            self._drain(0)
            SingleExecutor(self.client, self.recorder).run(op, items)
            return
        for item in items:
            while item.private and self._private_in_flight[item.index]:
                self._settle_oldest()
            self._drain(self.window - 1)
            pipeline = self._current()
            began = time.perf_counter()
            if op == "get":
                future = pipeline.get(item.key)
            elif op == "put":
                future = pipeline.put(item.key, item.value)
            else:
                future = pipeline.delete(item.key)
            done_at: list[float] = []
            future.add_done_callback(lambda _f, at=done_at: at.append(time.perf_counter()))
            self._in_flight.append((op, item, began, future, done_at))
            if item.private:
                self._private_in_flight[item.index] += 1

    def finish(self) -> None:
        self._drain(0)
        self._close()

    def _current(self) -> Any:
        if self._pipeline is not None and getattr(self._pipeline, "failed", False):
            self._drain(0)
            self._close()
        if self._pipeline is None:
            self._pipeline = self._open()
        return self._pipeline

    def _close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            # The stream's failure was already each unanswered request's error.
            with contextlib.suppress(LrukvClientError):
                pipeline.close()

    def _drain(self, keep: int) -> None:
        while len(self._in_flight) > keep:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        op, item, began, future, done_at = self._in_flight.popleft()
        read: bytes | None = None
        error: BaseException | None = None
        try:
            value = future.result()
            if op == "get":
                read = value
        except Exception as exc:
            error = exc
        ended = done_at[0] if done_at else time.perf_counter()
        outcome = _outcome_of(error)
        if outcome != "error":
            self.recorder.latency(op, ended - began)
        if item is not None and item.private:
            self._private_in_flight[item.index] -= 1
        self.recorder.outcome(op, item, outcome, ended, read=read, error=error)
