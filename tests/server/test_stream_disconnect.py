"""A client that stops reading a stream, or goes away in the middle of one, must not
hold a lock or a thread: writers go on, and the server keeps serving streams.

The original Go service deadlocked exactly here. The server runs with 2 gRPC
workers and 2 HTTP threads, so abandoning more streams than that would stop it
for good if an abandoned stream kept its thread.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.harness import REPO_ROOT, ServerProcess, start_server

THREADS = 2
ABANDONED = 3 * THREADS
ITEMS = 300
VALUE = b"v" * 32 * 1024  # ~10 MB in all: far more than the flow-control windows
TIMEOUT = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("streams"),
        "--grpc-workers",
        str(THREADS),
        "--http-threads",
        str(THREADS),
        "--items-per-shard",
        "1000",
    )
    try:
        with grpc.insecure_channel(process.rpc_addr) as channel:
            kv = kv_pb2_grpc.KVStub(channel)
            for i in range(ITEMS):
                kv.Put(kv_pb2.PutRequest(key=f"item-{i:04d}", value=VALUE), timeout=TIMEOUT)
        yield process
    finally:
        assert process.stop() == 0, process.output()


def _writes_go_on(server: ServerProcess, label: str) -> None:
    """Writers and a complete stream both succeed (deadlines turn a hang into a failure)."""
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        for i in range(50):
            kv.Put(kv_pb2.PutRequest(key=f"{label}-{i}", value=b"w"), timeout=TIMEOUT)
            kv.Delete(kv_pb2.DeleteRequest(key=f"{label}-{i}"), timeout=TIMEOUT)
        kv.Put(kv_pb2.PutRequest(key="item-0000", value=VALUE), timeout=TIMEOUT)
        count = sum(1 for _ in kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=60))
        assert count >= ITEMS


def test_writers_go_on_while_a_grpc_stream_is_stalled(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.rpc_addr) as channel:
        stream = kv_pb2_grpc.KVStub(channel).GetKeysValues(
            kv_pb2.GetKeysValuesRequest(), timeout=60
        )
        next(iter(stream))  # then stop reading: the server blocks on flow control
        with grpc.insecure_channel(server.rpc_addr) as writer_channel:
            writer = kv_pb2_grpc.KVStub(writer_channel)
            for i in range(50):
                writer.Put(kv_pb2.PutRequest(key=f"during-{i}", value=b"w"), timeout=TIMEOUT)
        stream.cancel()  # type: ignore[no-untyped-call]


def test_grpc_streams_cancelled_mid_way_release_their_threads(server: ServerProcess) -> None:
    for _ in range(ABANDONED):
        with grpc.insecure_channel(server.rpc_addr) as channel:
            stream = kv_pb2_grpc.KVStub(channel).GetKeysValues(
                kv_pb2.GetKeysValuesRequest(), timeout=60
            )
            next(iter(stream))
            stream.cancel()  # type: ignore[no-untyped-call]
    _writes_go_on(server, "after-cancel")


def test_grpc_clients_killed_mid_stream_release_their_threads(server: ServerProcess) -> None:
    clients = []
    try:
        for _ in range(ABANDONED):
            client = subprocess.Popen(
                [sys.executable, "-m", "tests.server.stream_client", server.rpc_addr],
                stdout=subprocess.PIPE,
                cwd=REPO_ROOT,
                text=True,
            )
            clients.append(client)
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "reading"
            client.kill()  # SIGKILL: the connection just dies, mid-stream
            client.wait(TIMEOUT)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(TIMEOUT)
    _writes_go_on(server, "after-kill")


def _abandon_http_stream(server: ServerProcess) -> None:
    """Start GET /v1/util/items, read a little, then reset the connection.

    The previous abandoned stream's slot is freed when the server's next write
    to it fails, a moment after the reset: until then the cap on streams
    answers 503 (Retry-After), and this client retries like a good one.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT)
        try:
            sock.sendall(b"GET /v1/util/items HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = sock.recv(4096)
            # SO_LINGER 0: close() sends RST, as a crashed client's kernel would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()
        if answer.startswith(b"HTTP/1.1 200 "):
            return
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert time.monotonic() < deadline, "an abandoned stream kept its slot"
        time.sleep(0.05)


def test_http_streams_abandoned_mid_way_release_their_threads(server: ServerProcess) -> None:
    for _ in range(ABANDONED):
        _abandon_http_stream(server)
    _writes_go_on(server, "after-http")
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        sock.sendall(b"GET /v1/util/items HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = bytearray()
        while chunk := sock.recv(1 << 20):
            data.extend(chunk)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    # Chunked transfer encoding: count the item lines inside.
    assert body.count(b'"key": "item-') >= ITEMS


def _stalled_reader(server: ServerProcess, path: str = "/v1/util/items") -> socket.socket:
    """A client that asks for a stream and never reads it (a small receive buffer,
    so the server's writes block soon)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.http_port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _http(server: ServerProcess, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_stalled_http_stream_readers_block_neither_readers_nor_writers(
    server: ServerProcess,
) -> None:
    stalled = [
        _stalled_reader(server, "/v1/util/items" if i % 2 else "/v1/util/keys")
        for i in range(ABANDONED)
    ]
    try:
        # Every other client is served while they stall (TIMEOUT turns a block into a failure).
        for i in range(20):
            assert _http(server, "PUT", f"/v1/stalled-{i}", b"w") == 201
            assert _http(server, "GET", f"/v1/stalled-{i}") == 200
        # More streams than the cap were refused at once, with the JSON error body.
        answers = [sock.recv(65536) for sock in stalled]
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503 ")]
        assert refused, [a[:40] for a in answers]
        for answer in refused:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b"Retry-After: 1" in head
            assert json.loads(body)["error"]["code"] == "unavailable"
        assert all(a.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 503 ")) for a in answers)
    finally:
        for sock in stalled:
            _reset(sock)


def test_a_stalled_http_stream_is_cut_off_after_the_send_deadline(server: ServerProcess) -> None:
    # THREADS // 2 = 1 stream at a time: while it stalls, another stream is refused.
    # (The previous test's reset readers free their slots a moment after the reset.)
    admitted = time.monotonic() + TIMEOUT
    while not (sock := _stalled_reader(server)).recv(64).startswith(b"HTTP/1.1 200 "):
        _reset(sock)
        assert time.monotonic() < admitted, "no stream slot came free"
        time.sleep(0.05)
    try:
        # The send deadline is 10 s; the rest is slack for a loaded machine.
        deadline = time.monotonic() + 30
        refused = 0
        while _http(server, "GET", "/v1/util/keys") == 503:
            refused += 1
            assert time.monotonic() < deadline, "the stalled stream still holds its slot"
            time.sleep(0.5)
        assert refused, "the stalled stream did not hold its slot"
        # The server gave up on the stalled reader: its connection ends early.
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        assert received < ITEMS * len(VALUE)
    finally:
        _reset(sock)
