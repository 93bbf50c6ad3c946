"""Item streams whose clients stop reading cannot take the gRPC thread pool.

A GetKeysValues stream holds one gRPC worker thread while the server waits for
the client to take the next message. Before the fix, as many stalled streams as
workers (clients that open the stream, read nothing and set no deadline) left no
thread for anything else: every Get and Put waited forever. Now at most
``--grpc-max-streams`` streams run at once (half the workers by default; more are
refused with RESOURCE_EXHAUSTED / ``too_many_streams``), and a stream whose client
takes no message for ``--grpc-stream-send-timeout`` seconds is cancelled.

The stalled clients are real grpc channels with a tiny flow-control window and
no bandwidth probing, that start the stream and never read from it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.harness import ServerProcess, start_server
from tests.server.grpc_util import error_code

WORKERS = 8
SLOTS = WORKERS // 2  # the default --grpc-max-streams
STALLED = WORKERS + 4  # more stalled clients than the server has threads
ITEMS = 100
VALUE = b"v" * 32 * 1024  # ~3 MB in all: far more than a stalled client's windows
TIMEOUT = 10
# A client that never reads: the smallest stream window grpc allows, never grown.
if TYPE_CHECKING:
    Stream = grpc.CallIterator[kv_pb2.KeyValue]
STALLED_OPTIONS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 1024),
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, like another client
]


def _start(tmp_path: Path, *args: str) -> ServerProcess:
    process = start_server(
        tmp_path, "--grpc-workers", str(WORKERS), "--items-per-shard", "1000", *args
    )
    try:
        with grpc.insecure_channel(process.rpc_addr) as channel:
            kv = kv_pb2_grpc.KVStub(channel)
            for i in range(ITEMS):
                kv.Put(kv_pb2.PutRequest(key=f"item-{i:04d}", value=VALUE), timeout=TIMEOUT)
    except BaseException:
        process.stop()
        raise
    return process


class StalledClients:
    """Streams opened on their own connections and never read."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channels: list[grpc.Channel] = []
        self.calls: list[Stream] = []

    def open(self, count: int) -> list[Stream]:
        """Open *count* streams; return once the server answered each (with its
        first item, or a refusal)."""
        opened = []
        for _ in range(count):
            channel = grpc.insecure_channel(self.target, options=STALLED_OPTIONS)
            self.channels.append(channel)
            call = kv_pb2_grpc.KVStub(channel).GetKeysValues(kv_pb2.GetKeysValuesRequest())
            self.calls.append(call)
            opened.append(call)
        # initial_metadata() returns when the server answers; it has no timeout, so
        # wait for it in threads (cancelling the calls at teardown releases them).
        with ThreadPoolExecutor(count) as pool:
            answers = [pool.submit(call.initial_metadata) for call in opened]
            _, unanswered = wait(answers, timeout=TIMEOUT)
            if unanswered:
                for call in opened:
                    call.cancel()  # type: ignore[no-untyped-call]
            assert not unanswered, f"{len(unanswered)} of {count} streams got no answer"
        return opened

    def close(self) -> None:
        for call in self.calls:
            call.cancel()  # type: ignore[no-untyped-call]
        for channel in self.channels:
            channel.close()


def _wait_done(calls: list[Stream], count: int) -> list[Stream]:
    """Wait until *count* of *calls* have ended; return those."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        done = [call for call in calls if call.done()]  # type: ignore[attr-defined]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.02)


def _unary_calls_answer(server: ServerProcess) -> None:
    """Put and Get answer within the deadline (the pool has threads for them)."""
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        for i in range(20):
            kv.Put(kv_pb2.PutRequest(key=f"unary-{i}", value=b"u"), timeout=TIMEOUT)
            got = kv.Get(kv_pb2.GetRequest(key=f"unary-{i}"), timeout=TIMEOUT)
            assert got.value == b"u"


def test_stalled_streams_leave_threads_for_unary_calls(tmp_path: Path) -> None:
    server = _start(tmp_path)  # the default send timeout (30 s) outlasts this test
    clients = StalledClients(server.rpc_addr)
    try:
        calls = clients.open(STALLED)
        _unary_calls_answer(server)
        refused = _wait_done(calls, STALLED - SLOTS)
        assert len(refused) == STALLED - SLOTS, "the streams beyond the cap are refused"
        for call in refused:
            assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_code(call) == "too_many_streams"  # type: ignore[arg-type]
            details = call.details()
            assert f"at most {SLOTS} item streams" in details, details
        # The streams within the cap still run: a reader gets everything.
        running = [call for call in calls if call not in refused]
        assert len(running) == SLOTS
        assert sum(1 for _ in running[0]) >= ITEMS
    finally:
        clients.close()
        assert server.stop() == 0, server.output()


def test_a_stream_whose_client_stops_reading_is_cancelled(tmp_path: Path) -> None:
    server = _start(tmp_path, "--grpc-stream-send-timeout", "3")
    clients = StalledClients(server.rpc_addr)
    try:
        stalled = clients.open(SLOTS)
        # Every slot is held: one more stream is refused, and unary calls go on.
        (extra,) = clients.open(1)
        assert _wait_done([extra], 1) == [extra], "a stream beyond the cap is refused"
        assert extra.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _unary_calls_answer(server)
        # After the send timeout the stalled streams are cancelled and their slots
        # freed: a new stream, read to the end, succeeds.
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(server.rpc_addr) as channel:
            kv = kv_pb2_grpc.KVStub(channel)
            while True:
                try:
                    stream = kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=60)
                    assert sum(1 for _ in stream) >= ITEMS
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                    assert time.monotonic() < deadline, "the stalled streams were never cancelled"
                    time.sleep(0.1)
        # A stalled client that reads again gets what was buffered, then the cancel.
        for call in stalled:
            with pytest.raises(grpc.RpcError) as cancelled:
                for _ in call:
                    pass
            assert cancelled.value.code() == grpc.StatusCode.CANCELLED
        assert "took no message for 3 s" in server.stderr()
    finally:
        clients.close()
        assert server.stop() == 0, server.output()
