"""The harness starts a real server that answers, and stops it by PID."""

from __future__ import annotations

import http.client

from tests.harness import ServerProcess


def test_harness_server_answers_http_and_stops_cleanly(lrukv_server: ServerProcess) -> None:
    conn = http.client.HTTPConnection(lrukv_server.http_addr, timeout=10)
    conn.request("PUT", "/v1/key-a", body=b"Hello, key-value store!")
    assert conn.getresponse().status == 201
    conn.close()
    assert lrukv_server.stop() == 0
    assert not lrukv_server.worker_alive()
