"""Hostile clients of the TLS port must not take the HTTP threads from everyone else.

A TLS handshake is one more place for a client to stall: connect and send
nothing, send half a ClientHello and stop, finish the handshake and then idle
or trickle a request head, or send plain HTTP or garbage to the TLS port. The
worker drives handshakes without blocking (lrukv_server/http_worker.py) under
the head deadline, so none of these holds a thread: a normal HTTPS client keeps
getting answers meanwhile, each stalled connection is closed within the 10 s
deadline, and the log has no traceback.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from benchmarks.slow_clients import SlowClients, measure_gets
from tests.harness import ServerProcess, start_server
from tests.server.raw_http import UNVERIFIED_TLS, http_connection
from tests.tls_pki import tls_server_args

P99_BOUND_SECONDS = 1.0  # generous for a shared CI machine: a held pool costs seconds
DEADLINE_BOUND_SECONDS = 25.0  # the head deadline is 10 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("tls-hostile")
    process = start_server(directory, *tls_server_args(directory))
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()
    stderr = process.stderr()
    assert "Traceback" not in stderr, stderr
    assert " ERROR " not in stderr, stderr


def _client_hello_start(server: ServerProcess) -> bytes:
    """The first bytes a real client sends: a TLS record header and the start of
    its ClientHello (made by the ssl module, so it is what clients send)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = UNVERIFIED_TLS.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # a handshake record
    return hello[:40]


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data.extend(chunk)
    return bytes(data)


def test_https_is_answered_while_hostile_clients_hold_tls_connections(
    server: ServerProcess,
) -> None:
    port = server.http_port
    hello = _client_hello_start(server)
    stalled = []
    try:
        for _ in range(10):  # half a ClientHello, then nothing
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(hello)
            stalled.append(sock)
        with (
            # 30 never start a handshake; 5 trickle plain HTTP at the TLS port.
            SlowClients("127.0.0.1", port, idle=30, slowloris=5, seconds=60),
            # 15 finish the handshake and idle; 10 trickle a head inside TLS.
            SlowClients("127.0.0.1", port, idle=15, slowloris=10, seconds=60, tls=UNVERIFIED_TLS),
        ):
            result = measure_gets("127.0.0.1", port, seconds=30, requests=60, tls=UNVERIFIED_TLS)
    finally:
        for sock in stalled:
            sock.close()
    assert result.failures == 0, f"{result.failures} HTTPS requests failed or timed out"
    p99 = result.percentile(99)
    assert p99 <= P99_BOUND_SECONDS, f"HTTPS p99 {p99 * 1000:.0f} ms beside 70 hostile clients"
    assert server.alive() and server.worker_alive()


def test_a_handshake_never_finished_and_a_silent_tls_connection_are_closed_at_the_deadline(
    server: ServerProcess,
) -> None:
    half_hello = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    half_hello.sendall(_client_hello_start(server))
    raw = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    silent = UNVERIFIED_TLS.wrap_socket(raw, server_hostname="localhost")
    started = time.monotonic()
    with half_hello, silent:
        # Both stall at once; neither gets an answer, both are closed by the deadline.
        assert _read_until_closed(half_hello, timeout=30) == b""
        assert _read_until_closed(silent, timeout=30) == b""
        assert time.monotonic() - started < DEADLINE_BOUND_SECONDS


def test_a_tls_request_head_that_never_ends_is_cut_off_with_408(server: ServerProcess) -> None:
    raw = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    with UNVERIFIED_TLS.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        started = time.monotonic()
        sock.settimeout(0.2)
        answer = b""
        while not answer and time.monotonic() - started < 30:
            try:
                sock.send(b"a")  # one TLS record per byte: a per-read timeout never fires
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except OSError:
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < DEADLINE_BOUND_SECONDS


@pytest.mark.parametrize(
    "garbage",
    [b"\x00" * 64, b"\x16\x03\x01\xff\xff" + b"x" * 64, b"SSH-2.0-OpenSSH_9.0\r\n"],
    ids=["zeros", "oversized-record", "ssh"],
)
def test_garbage_on_the_tls_port_is_closed(server: ServerProcess, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.sendall(garbage)
        started = time.monotonic()
        _read_until_closed(sock, timeout=30)  # an alert at most, then the close
        assert time.monotonic() - started < DEADLINE_BOUND_SECONDS


def test_a_tls_client_that_stops_reading_its_responses_is_cut_off(server: ServerProcess) -> None:
    # SO_SNDTIMEO alone never ends a blocked TLS write (OpenSSL retries it), so
    # without the worker's per-operation deadline this thread would be held for good.
    value = b"v" * (1 << 20)
    conn = http_connection(server)
    try:
        conn.request("PUT", "/v1/big", body=value)
        assert conn.getresponse().status == 201
    finally:
        conn.close()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", server.http_port))
    with UNVERIFIED_TLS.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\n" * 16)  # and never read
        deadline = time.monotonic() + 40
        while "stopped reading its response" not in server.stderr():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
