"""A writing process for the crash tests: ``python -m tests.txlog.proc_writer MODE DIR ARG``.

Prints ``ack <key>`` (flushed) after each acknowledged put, so the parent knows
exactly what was acknowledged before it kills this process.

Modes:
* ``write DIR POLICY``: 4 threads put until killed.
* ``settle DIR POLICY``: put 500 keys, print ``done``, then wait to be killed
  (the log then ends in preallocated zeros, with no append in flight).
* ``fill DIR BYTES [POLICY [GROW_MIN]]``: the file size limit (RLIMIT_FSIZE) is
  BYTES, so the disk "fills up" when the log next grows (by at least GROW_MIN
  bytes); put until refused, then try once more; print ``refused``.
* ``compact DIR POINT``: put 60 keys, then compact and die (``os._exit``) at the
  named step of compaction.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading

from lrukv import ShardedMap
from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import LoggedStore, TxLogConfig, file_log

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def open_store(data_dir: str, fsync: str = "always") -> LoggedStore:
    config = TxLogConfig.from_flag("file", fsync=fsync, compact_after_events=None)
    return LoggedStore.open(
        config, ShardedMap(shards=4, items_per_shard=100_000), data_dir=data_dir, node_id="n"
    )


def write_forever(data_dir: str, policy: str) -> None:
    store = open_store(data_dir, policy)

    def writer(name: str) -> None:
        i = 0
        while True:
            key = f"{name}-{i}"
            store.put(key, key.encode())
            say(f"ack {key}")
            i += 1

    threads = [threading.Thread(target=writer, args=(f"t{n}",), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    threads[0].join()  # runs until killed


def settle(data_dir: str, policy: str) -> None:
    store = open_store(data_dir, policy)
    for i in range(500):
        key = f"k{i}"
        store.put(key, key.encode())
        say(f"ack {key}")
    say("done")
    threading.Event().wait()  # until killed


def fill(data_dir: str, limit: int, policy: str, grow_min: int | None) -> None:
    if grow_min is not None:
        file_log.GROW_MIN = grow_min  # so the limit is met after a few records
    store = open_store(data_dir, policy)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    i = 0
    try:
        while True:
            key = f"k{i}"
            store.put(key, bytes(1000))
            say(f"ack {key}")
            i += 1
    except LogUnavailable as exc:
        say(f"refused {exc}")
    try:
        store.put("after", b"x")
        say("accepted-after-failure")
    except LogUnavailable:
        say("refused-again")
    say(f"health {store.log_health().ok}")


def compact_and_die(data_dir: str, point: str) -> None:
    store = open_store(data_dir)
    for i in range(60):
        store.put(f"k{i}", b"v%d" % i)
        say(f"ack k{i}")
    store.delete("k7")
    say("deleted k7")

    def crash(step: str) -> None:
        if step == point:
            os._exit(77)

    file_log.crash_hook = crash
    store.compact()
    say("compacted")
    store.close()


def main() -> None:
    mode, data_dir, arg, *rest = sys.argv[1:]
    if mode == "write":
        write_forever(data_dir, arg)
    elif mode == "settle":
        settle(data_dir, arg)
    elif mode == "fill":
        policy = rest[0] if rest else "always"
        fill(data_dir, int(arg), policy, int(rest[1]) if len(rest) > 1 else None)
    elif mode == "compact":
        compact_and_die(data_dir, arg)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
