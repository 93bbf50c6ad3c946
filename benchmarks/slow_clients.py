"""Hostile HTTP clients and a normal client that measures meanwhile (loopback only).

    with SlowClients("127.0.0.1", port, idle=300, slowloris=50, seconds=60) as attack:
        latencies = measure_gets("127.0.0.1", port, seconds=10)
    print(attack.stats())

* **idle**: connections that never send a byte.
* **slowloris**: connections that send a request head one byte every
  ``interval`` seconds (0.1 s) and never finish it.

When the server closes one of them (a header-read deadline), it is opened again
at once, so the attack keeps its size for as long as it runs. One thread with a
selector drives them all; it stops when the ``with`` block ends or after
*seconds*, whichever comes first, and closes every socket.

``measure_gets`` is the normal client: sequential ``GET /v1/<key>`` requests, each
on a new connection (so each one goes through the server's accept path, where
idle connections used to wait for a thread), and returns their latencies.

With ``tls`` (an ``ssl.SSLContext``) every connection completes a TLS handshake
first and then idles or trickles inside TLS, and ``measure_gets`` speaks HTTPS.

Used by tests/server/test_http_hostile_connections.py (small sizes),
tests/server/test_tls_hostile.py (over TLS) and by benchmarks/bench_slow_clients.py
(the full-size figure).
"""

from __future__ import annotations

import contextlib
import http.client
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = ["GetResult", "SlowClients", "measure_gets"]

# A request head that never ends: one header whose value goes on for ever.
_SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class SlowClients:
    """*idle* silent connections and *slowloris* byte-a-tick senders to host:port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        idle: int,
        slowloris: int,
        interval: float = 0.1,
        seconds: float = 120.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("hostile clients target loopback only")
        self._addr = (host, port)
        self._idle = idle
        self._slowloris = slowloris
        self._interval = interval
        self._seconds = seconds
        self._tls = tls
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self.opened = 0
        self.closed_by_server = 0
        self.bytes_sent = 0
        self.errors: list[str] = []

    def __enter__(self) -> SlowClients:
        self._thread.start()
        if not self._ready.wait(30):
            self._stop.set()
            raise RuntimeError("could not open the slow connections within 30 s")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(30)

    def stats(self) -> dict[str, int]:
        return {
            "idle": self._idle,
            "slowloris": self._slowloris,
            "opened": self.opened,
            "closed_by_server": self.closed_by_server,
            "bytes_sent": self.bytes_sent,
        }

    def _connect(self, selector: selectors.BaseSelector, slow: bool) -> None:
        sock = socket.create_connection(self._addr, timeout=10)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self._addr[0])  # handshakes
        sock.setblocking(False)
        self.opened += 1
        # Readable means the server answered or closed: then open another.
        selector.register(sock, selectors.EVENT_READ, [slow, 0])

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        stop_at = time.monotonic() + self._seconds
        try:
            for _ in range(self._idle):
                self._connect(selector, slow=False)
            for _ in range(self._slowloris):
                self._connect(selector, slow=True)
            self._ready.set()
            next_tick = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < stop_at:
                timeout = max(0.0, next_tick - time.monotonic())
                for key, _ in selector.select(timeout):
                    self._on_readable(selector, key)
                if time.monotonic() >= next_tick:
                    next_tick += self._interval
                    self._tick(selector)
        except OSError as exc:
            self.errors.append(repr(exc))
            self._ready.set()
        finally:
            for key in list(selector.get_map().values()):
                with contextlib.suppress(OSError):
                    key.fileobj.close()  # type: ignore[union-attr]
            selector.close()

    def _on_readable(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        sock: socket.socket = key.fileobj  # type: ignore[assignment]
        try:
            data = sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # nothing yet (over TLS: a session ticket, no data)
        except OSError:
            data = b""
        if data:
            return  # an answer (a 408); the close follows
        selector.unregister(sock)
        sock.close()
        self.closed_by_server += 1
        self._connect(selector, slow=key.data[0])

    def _tick(self, selector: selectors.BaseSelector) -> None:
        """Every slowloris connection sends its next byte."""
        for key in list(selector.get_map().values()):
            slow, sent = key.data
            if not slow:
                continue
            byte = _SLOW_HEAD[sent : sent + 1] or b"a"
            try:
                key.fileobj.send(byte)  # type: ignore[union-attr]
            except OSError:
                continue  # the server closed it; _on_readable reopens it
            key.data[1] = sent + 1
            self.bytes_sent += 1


@dataclass
class GetResult:
    """Latencies (seconds) of the answered requests, and the failed ones."""

    latencies: list[float]
    failures: int

    def percentile(self, pct: float) -> float:
        values = sorted(self.latencies)
        if not values:
            return float("inf")
        rank = max(0, min(len(values) - 1, round(pct / 100 * len(values)) - 1))
        return values[rank]


def measure_gets(
    host: str,
    port: int,
    *,
    seconds: float,
    requests: int | None = None,
    path: str = "/v1/probe",
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> GetResult:
    """Sequential GETs of *path*, each on a new connection (HTTPS with *tls*), for
    *seconds* or until *requests* were made; a status other than 200/404, or no
    answer within *timeout*, is a failure."""
    latencies: list[float] = []
    failures = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and (requests is None or len(latencies) + failures < requests):
        conn = (
            http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
            if tls is not None
            else http.client.HTTPConnection(host, port, timeout=timeout)
        )
        begin = time.monotonic()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            ok = response.status in (200, 404)
        except OSError:
            ok = False
        finally:
            conn.close()
        if ok:
            latencies.append(time.monotonic() - begin)
        else:
            failures += 1
    return GetResult(latencies, failures)
