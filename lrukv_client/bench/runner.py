"""Run a load: start the workers (threads, or processes of threads), start them
together, watch their progress, stop them, and collect what they measured."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import queue
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lrukv_client.bench.config import BenchConfig
from lrukv_client.bench.keys import KeyChooser
from lrukv_client.bench.worker import LocalProgress, WorkerStats, open_client, run_worker
from lrukv_client.errors import KeyNotFound, LrukvClientError, ServerError

__all__ = ["OnProgress", "RunOutput", "WouldEvict", "run_load"]

# (ops done, errors, seconds since start); called about ten times a second.
OnProgress = Callable[[int, int, float], None]

_START_TIMEOUT = 60.0  # seconds for every worker to be ready (spawning takes ~1 s each)
_POLL = 0.1


@dataclass
class RunOutput:
    """The raw outcome of a run, before it is summarised."""

    config: BenchConfig
    run_id: str
    started_at: str
    elapsed: float
    workers: list[WorkerStats]
    preload: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    cleanup: dict[str, Any] = field(default_factory=dict)
    store: dict[str, int] = field(default_factory=dict)


class WouldEvict(ValueError):
    """The keys a run may write do not fit beside the server's existing keys:
    the LRU would evict keys that are not the run's."""


class _SharedProgress:
    """Progress counters shared by worker processes (a lock-protected int pair)."""

    def __init__(self, ops: Any, errors: Any) -> None:
        self._ops = ops
        self._errors = errors

    def add(self, ops: int, errors: int) -> None:
        with self._ops.get_lock():
            self._ops.value += ops
        if errors:
            with self._errors.get_lock():
                self._errors.value += errors


def _quotas(config: BenchConfig) -> list[int | None]:
    if config.ops is None:
        return [None] * config.clients
    base, extra = divmod(config.ops, config.clients)
    return [base + (1 if worker < extra else 0) for worker in range(config.clients)]


def _preflight(config: BenchConfig) -> dict[str, int]:
    """Fail fast (with the SDK's error) when the server cannot be reached, and
    refuse (WouldEvict) a run whose keys would push the server's own out of the
    LRU. Returns the store's size and capacity before the run (empty when the
    server has no Stats call)."""
    with open_client(config) as client:
        client.servers()
        try:
            stats = client.stats()
        except ServerError:  # a server from before the Stats call: no check
            return {}
    store = {"size_before": stats.size, "capacity": stats.capacity}
    if config.allow_evictions or stats.size == 0:
        return store
    if stats.size + config.new_keys > stats.capacity:
        raise WouldEvict(
            f"the server holds {stats.size:,} keys and has room for {stats.capacity:,}; "
            f"this run may write {config.new_keys:,} more (--keyspace {config.keyspace:,} "
            f"plus {config.clients} clients x {config.private_keys} private keys), so the "
            "LRU would evict keys that are not the bench's. Use a smaller --keyspace, a "
            "server with more capacity, or --allow-evictions"
        )
    return store


def _clean_up(config: BenchConfig) -> dict[str, Any]:
    """Delete the shared keys ``{prefix}0 .. {prefix}{keyspace-1}`` (the clients
    delete their private keys themselves). A second Ctrl-C stops it."""
    deleted = errors = 0
    try:
        with open_client(config) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:

            def delete(index: int) -> bool:
                try:
                    return client.delete(f"{config.key_prefix}{index}", timeout=2.0)
                except KeyNotFound:
                    return False

            futures = [pool.submit(delete, index) for index in range(config.keyspace)]
            for future in futures:
                try:
                    deleted += future.result()
                except LrukvClientError:
                    errors += 1
    except KeyboardInterrupt:
        return {"deleted": deleted, "errors": errors, "interrupted": True}
    return {"deleted": deleted, "errors": errors}


def _preload(config: BenchConfig) -> dict[str, int]:
    """Write every shared key once, so reads hit (as far as the capacity allows)."""
    if config.mix.get("get", 0) == 0 or config.keyspace == 0:
        return {"keys": 0, "errors": 0}
    rng = random.Random(config.seed)
    errors = 0
    with open_client(config) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        values = (rng.randbytes(config.value_size) for _ in range(config.keyspace))
        futures = [
            pool.submit(client.put, f"{config.key_prefix}{index}", value)
            for index, value in enumerate(values)
        ]
        for future in futures:
            try:
                future.result()
            except LrukvClientError:
                errors += 1
    return {"keys": config.keyspace, "errors": errors}


def run_load(
    config: BenchConfig,
    *,
    on_progress: OnProgress | None = None,
    on_start: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> RunOutput:
    """Run ``config`` to its end (or until ``stop`` is set / Ctrl-C) and return the
    raw measurements. Raises the SDK's error if the server is unreachable at the start.

    ``on_start`` is called once every worker is ready, as the timed load begins
    (after the pre-flight check and the preload).
    """
    config = config.validate().resolved()
    store = _preflight(config)
    preload = _preload(config) if config.preload else {}
    run_id = secrets.token_hex(4)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    stop = stop if stop is not None else threading.Event()
    report = on_progress or (lambda ops, errors, seconds: None)
    started = on_start or (lambda: None)
    if config.processes == 1:
        elapsed, workers, interrupted = _run_threads(config, run_id, stop, report, started)
    else:
        elapsed, workers, interrupted = _run_processes(config, run_id, stop, report, started)
    cleanup = {"kept": True} if config.keep else _clean_up(config)
    return RunOutput(
        config, run_id, started_at, elapsed, workers, preload, interrupted, cleanup, store
    )


def _run_threads(
    config: BenchConfig,
    run_id: str,
    stop: threading.Event,
    report: OnProgress,
    started: Callable[[], None],
) -> tuple[float, list[WorkerStats], bool]:
    chooser = KeyChooser(config.keyspace, config.distribution, config.zipf_s)
    progress = LocalProgress()
    ready = threading.Semaphore(0)
    go = threading.Event()
    results: list[WorkerStats | None] = [None] * config.clients

    def wait_for_start() -> None:
        ready.release()
        go.wait()

    def work(worker: int, quota: int | None) -> None:
        results[worker] = run_worker(
            config,
            worker=worker,
            run_id=run_id,
            chooser=chooser,
            quota=quota,
            wait_for_start=wait_for_start,
            stop=stop,
            progress=progress,
        )

    threads = [
        threading.Thread(target=work, args=(worker, quota), name=f"lrukv-bench-{worker}")
        for worker, quota in enumerate(_quotas(config))
    ]
    for thread in threads:
        thread.start()
    interrupted = False
    began = time.monotonic()
    try:
        for _ in threads:
            ready.acquire(timeout=_START_TIMEOUT)
        go.set()
        began = time.monotonic()
        started()
        while alive := [thread for thread in threads if thread.is_alive()]:
            alive[0].join(_POLL)
            ops, errors = progress.read()
            report(ops, errors, time.monotonic() - began)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        go.set()
    finally:
        for thread in threads:
            thread.join()
    workers = [r for r in results if r is not None]
    elapsed = _elapsed(workers)
    ops, errors = progress.read()
    report(ops, errors, elapsed)
    return elapsed, workers, interrupted or stop.is_set()


def _elapsed(workers: list[WorkerStats]) -> float:
    """The run's duration: its longest worker's loop (clean-up after it not included)."""
    return max((w.elapsed for w in workers), default=0.0)


def _process_main(
    *,
    config: BenchConfig,
    workers: list[tuple[int, int | None]],
    run_id: str,
    ready: Any,
    go: Any,
    stop: Any,
    ops: Any,
    errors: Any,
    results: Any,
) -> None:
    """The body of one worker process: its share of the workers, as threads."""
    # The parent handles Ctrl-C and sets ``stop``; a KeyboardInterrupt here would
    # only lose this process's measurements.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    chooser = KeyChooser(config.keyspace, config.distribution, config.zipf_s)
    progress = _SharedProgress(ops, errors)
    done: list[WorkerStats] = []
    lock = threading.Lock()

    def wait_for_start() -> None:
        with ready.get_lock():
            ready.value += 1
        go.wait()

    def work(worker: int, quota: int | None) -> None:
        stats = run_worker(
            config,
            worker=worker,
            run_id=run_id,
            chooser=chooser,
            quota=quota,
            wait_for_start=wait_for_start,
            stop=stop,
            progress=progress,
        )
        with lock:
            done.append(stats)

    threads = [threading.Thread(target=work, args=pair) for pair in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(done)


def _run_processes(
    config: BenchConfig,
    run_id: str,
    stop: threading.Event,
    report: OnProgress,
    started: Callable[[], None],
) -> tuple[float, list[WorkerStats], bool]:
    # spawn, not fork: gRPC's threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    ready = context.Value("q", 0)
    ops = context.Value("q", 0)
    errors = context.Value("q", 0)
    go = context.Event()
    shared_stop = context.Event()
    results: Any = context.Queue()
    quotas = list(enumerate(_quotas(config)))
    shares = [quotas[p :: config.processes] for p in range(config.processes)]
    processes = [
        context.Process(
            target=_process_main,
            kwargs={
                "config": config,
                "workers": share,
                "run_id": run_id,
                "ready": ready,
                "go": go,
                "stop": shared_stop,
                "ops": ops,
                "errors": errors,
                "results": results,
            },
            name=f"lrukv-bench-{index}",
            daemon=True,
        )
        for index, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    collected: list[WorkerStats] = []
    received = 0
    interrupted = False
    began = time.monotonic()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while ready.value < config.clients:
            if time.monotonic() > deadline or not all(p.is_alive() for p in processes):
                raise RuntimeError("worker processes did not start; see their output above")
            time.sleep(0.02)
        go.set()
        began = time.monotonic()
        started()
        while received < len(processes):
            if stop.is_set():
                shared_stop.set()
            try:
                collected.extend(results.get(timeout=_POLL))
                received += 1
            except queue.Empty:
                if not any(p.is_alive() for p in processes):
                    break  # a process died without reporting: what arrived is reported
            report(ops.value, errors.value, time.monotonic() - began)
    except KeyboardInterrupt:
        interrupted = True
        shared_stop.set()
        go.set()
        while received < len(processes) and any(p.is_alive() for p in processes):
            try:
                collected.extend(results.get(timeout=_POLL))
                received += 1
            except queue.Empty:
                pass
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    elapsed = _elapsed(collected)
    report(ops.value, errors.value, elapsed)
    lost = len(processes) - received
    if lost:
        collected.append(
            WorkerStats(worker=-1, crashed=f"{lost} worker process(es) died without results")
        )
    return elapsed, sorted(collected, key=lambda s: s.worker), interrupted or stop.is_set()
