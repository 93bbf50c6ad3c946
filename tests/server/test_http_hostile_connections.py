"""Idle and slow HTTP clients must not take the server's threads from everyone else.

gunicorn's gthread worker used to hand each new connection to one of its 8
threads, which then waited up to 5 s for a first byte and blocked reading the
request head for as long as the client kept trickling it: 8 silent connections
stalled every HTTP request for 5 s, and 8 slowloris clients froze HTTP.

Here a small attack (50 silent connections and 10 that send one header byte
every 100 ms) runs while a normal client makes requests on new connections;
their p99 must stay far below the seconds an occupied thread pool costs. The
full-size figure (300 + 50, p99 <= 100 ms) is benchmarks/bench_slow_clients.py's.
"""

from __future__ import annotations

import json
import socket
import time

from benchmarks.slow_clients import SlowClients, measure_gets
from tests.conftest import StartServer

IDLE = 50
SLOWLORIS = 10
# Generous for a shared CI machine: an occupied thread pool costs seconds.
P99_BOUND_SECONDS = 1.0


def test_requests_are_answered_while_idle_and_slowloris_clients_hold_connections(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory()
    with SlowClients("127.0.0.1", server.http_port, idle=IDLE, slowloris=SLOWLORIS, seconds=60):
        result = measure_gets("127.0.0.1", server.http_port, seconds=20, requests=100)
    assert result.failures == 0, f"{result.failures} requests failed or timed out"
    assert len(result.latencies) == 100
    p99 = result.percentile(99)
    assert p99 <= P99_BOUND_SECONDS, f"p99 {p99 * 1000:.0f} ms under {IDLE} idle + {SLOWLORIS} slow"
    assert server.alive()


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = bytearray()
    while chunk := sock.recv(4096):
        data.extend(chunk)
    return bytes(data)


def test_a_request_head_that_never_ends_is_cut_off_with_408(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        started = time.monotonic()
        # Keep trickling: a per-read timeout would never fire; the head deadline must.
        sock.settimeout(0.2)
        answer = b""
        while not answer and time.monotonic() - started < 30:
            try:
                sock.send(b"a")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert took < 25


def test_a_silent_connection_is_closed_without_an_answer(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock, timeout=30) == b""
        assert time.monotonic() - started < 25


def test_a_client_that_never_closes_after_connection_close_stalls_nobody(
    lrukv_server_factory: StartServer,
) -> None:
    # After a "Connection: close" answer the server waits up to 2 s for the client's
    # FIN; gunicorn did so in its main loop, stalling every other connection meanwhile.
    server = lrukv_server_factory()
    holders = []
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            holders.append(sock)  # read the answer, then never close
        result = measure_gets("127.0.0.1", server.http_port, seconds=20, requests=20)
    finally:
        for sock in holders:
            sock.close()
    assert result.failures == 0
    p99 = result.percentile(99)
    assert p99 <= P99_BOUND_SECONDS, f"p99 {p99 * 1000:.0f} ms beside 5 lingering clients"
