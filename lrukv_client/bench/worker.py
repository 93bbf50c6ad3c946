"""One load client: a loop of operations on one SDK client, measured and checked.

A worker runs in a thread (of the main process or of a worker process). It owns
its client, its random generator and its private keys, so workers share nothing
but the progress counters.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lrukv_client.bench.checker import PrivateKeys
from lrukv_client.bench.config import BenchConfig
from lrukv_client.bench.execute import (
    BatchExecutor,
    Executor,
    Item,
    PipelineExecutor,
    Recorder,
    SingleExecutor,
)
from lrukv_client.bench.keys import KeyChooser
from lrukv_client.connect import AnyClient, connect
from lrukv_client.errors import LrukvClientError

__all__ = ["Progress", "WorkerStats", "open_client", "run_worker", "shared_value"]

_REPORT_EVERY = 16  # operations between progress reports (a shared counter)


class Progress(Protocol):
    """Where workers report how many operations (and errors) they completed."""

    def add(self, ops: int, errors: int) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class WorkerStats:
    """Everything one worker measured. Picklable: worker processes send it home."""

    worker: int
    latencies: dict[str, array[float]] = field(default_factory=dict)  # op -> seconds
    counts: Counter[str] = field(default_factory=Counter)  # "get.ok", "get.miss", "put.error"…
    errors: Counter[str] = field(default_factory=Counter)  # error kind -> count
    error_samples: list[str] = field(default_factory=list)
    check: Counter[str] = field(default_factory=Counter)
    check_samples: list[str] = field(default_factory=list)
    timeline_ops: list[int] = field(default_factory=list)
    timeline_errors: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    crashed: str | None = None


def open_client(config: BenchConfig) -> AnyClient:
    """A client as the run's settings say (every worker opens its own)."""
    return connect(
        config.server,
        transport=config.transport,
        timeout=config.timeout,
        tls=config.tls,
        consistency=config.consistency,
    )


def shared_value(config: BenchConfig, rng: random.Random) -> bytes:
    return rng.randbytes(config.value_size)


def run_worker(
    config: BenchConfig,
    *,
    worker: int,
    run_id: str,
    chooser: KeyChooser,
    quota: int | None,
    wait_for_start: Callable[[], None],
    stop: StopFlag,
    progress: Progress,
) -> WorkerStats:
    """Wait for the common start, open a client, then run operations until the
    duration has passed, ``quota`` operations are done, or ``stop`` is set.
    (Opening a client connects lazily, so it costs next to nothing.)"""
    stats = WorkerStats(worker)
    # Ready first: a worker that cannot even open its client must not hold up the start.
    wait_for_start()
    try:
        with open_client(config) as client:
            _loop(config, run_id, chooser, quota, stop, progress, client, stats)
    except Exception:
        # A bug in the load generator must be seen, not lost in a thread.
        stats.crashed = traceback.format_exc(limit=8)
    return stats


def _executor(config: BenchConfig, client: AnyClient, recorder: Recorder) -> Executor:
    if config.pipeline:
        return PipelineExecutor(client, recorder, config.pipeline)
    if config.batch > 1:
        return BatchExecutor(client, recorder)
    return SingleExecutor(client, recorder)


def _loop(  # noqa: PLR0917 - the private hot loop; its caller names everything
    config: BenchConfig,
    run_id: str,
    chooser: KeyChooser,
    quota: int | None,
    stop: StopFlag,
    progress: Progress,
    client: AnyClient,
    stats: WorkerStats,
) -> None:
    worker = stats.worker
    rng = random.Random(config.seed * 1_000_003 + worker)
    ops = list(config.mix)
    cumulative = list(itertools.accumulate(config.mix[op] for op in ops))
    private = PrivateKeys(
        f"{config.key_prefix}{run_id}:",
        worker,
        config.private_keys,
        config.value_size,
        stale_ok=config.consistency == "stale",
    )
    prefix = config.key_prefix
    clock = time.perf_counter

    start = clock()
    recorder = Recorder(ops, private, progress, interval=config.interval, start=start)
    executor = _executor(config, client, recorder)
    ends_at = start + config.duration if config.duration is not None else float("inf")
    for done in itertools.count():
        if quota is not None and done >= quota:
            break
        # Every operation, not every few: against a dead server one operation can
        # take the whole --timeout, and the run must still end on time.
        if clock() >= ends_at or stop.is_set():
            break
        op = ops[min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(ops) - 1)]
        items: list[Item] = []
        for _ in range(config.batch if op != "keys" else 0):
            use_private = rng.random() < config.private_ratio
            index = rng.randrange(config.private_keys) if use_private else chooser.index(rng)
            key = private.names[index] if use_private else f"{prefix}{index}"
            value = b""
            if op == "put":
                value = private.next_value(index) if use_private else shared_value(config, rng)
            items.append(Item(key, index, use_private, value))
        executor.run(op, items)
    executor.finish()

    stats.elapsed = clock() - start
    recorder.flush()
    stats.latencies = recorder.latencies
    stats.counts.update(recorder.counts)
    stats.errors.update(recorder.errors)
    stats.error_samples.extend(recorder.error_samples)
    stats.timeline_ops = recorder.timeline_ops
    stats.timeline_errors = recorder.timeline_errors
    stats.check = private.counts
    stats.check_samples = private.samples
    if config.private_ratio > 0:
        _clean_up(client, private)


def _clean_up(client: AnyClient, private: PrivateKeys) -> None:
    """Delete this run's private keys (untimed, best effort: the LRU drops leftovers)."""
    for name in private.names:
        try:
            client.delete(name, timeout=1.0)
        except LrukvClientError:
            return


class LocalProgress:
    """Progress counters for worker threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops = 0
        self.errors = 0

    def add(self, ops: int, errors: int) -> None:
        with self._lock:
            self.ops += ops
            self.errors += errors

    def read(self) -> tuple[int, int]:
        return self.ops, self.errors
