"""lrukv's gunicorn worker: gthread, where no thread ever waits for a request head.

gunicorn's gthread worker (27.x) hands a freshly accepted connection straight to
one of its threads, which waits up to 5 s for a first byte and then blocks
reading the request head for as long as the client takes. With 8 threads, 8
silent connections stalled every HTTP request for 5 s, and 8 clients sending one
header byte every 100 ms (slowloris) froze HTTP for as long as they kept on.

Here a thread given a connection only reads what has arrived, without blocking
(handle()). If the request head is not complete yet, the connection goes back
to the poller, the main thread's selector, with the bytes so far, and returns
to a thread when it is readable again; a thread serves the request only once
its head is whole. Kept-alive connections go the same way for each next
request. (Reading heads in the main thread instead would add a socket call,
and a GIL hand-off, to the main loop for every request.) Limits:

* ``HEAD_TIMEOUT``: a request head must be complete within 10 s of the
  connection's opening (of its first byte, on a kept-alive connection). A
  connection that sent nothing is then closed silently; one that sent part of a
  head is answered 408 ``request_timeout``.
* ``HEAD_LIMIT``: a head still incomplete after 64 KiB is answered 431.
* ``SEND_TIMEOUT``: every connection has SO_SNDTIMEO of 10 s, so a response
  write that makes no progress for 10 s (a client that stopped reading) fails,
  and the connection is closed, freeing its thread. A backstop: the kernel keeps
  taking a few bytes while it probes a closed window, so it can take longer;
  streams have their own exact deadline (http_streams).
* Closing after ``Connection: close`` lingers for the client's FIN in the
  poller too (gunicorn lingered up to 2 s in the main loop, stalling it).

TLS (when gunicorn's ``certfile`` is set, see lrukv_server.tls): the worker
wraps each accepted socket itself and drives the handshake the same way as a
head, without blocking: a thread gets the connection only when handshake bytes
have arrived, takes one non-blocking step, and sends it back to the poller
(readable, or writable when OpenSSL must write). The handshake counts against
the head's 10 s deadline, so a client that never finishes it is closed like a
silent one. A failed handshake (a foreign CA, an expired certificate, no
client certificate when one is required, garbage) closes the connection with a
debug line only; plain HTTP sent to the TLS port is answered, in plain text,
400 ``bad_request`` saying to use https. A TLS socket is never fully blocking:
OpenSSL retries a write that SO_SNDTIMEO cut short for ever, so "blocking"
means a 10 s deadline per operation there (_DeadlineSSLSocket). The verified
client certificate's CN goes into the WSGI environ as ``lrukv.tls.peer_cn``.

gunicorn's own error answers are JSON (http_errors), and SIGINT drains like
SIGTERM.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import selectors
import signal
import socket
import ssl
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future
from functools import partial
from types import FrameType
from typing import Any

from gunicorn import http as gunicorn_http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from lrukv_server.http_errors import error_code, error_response, install_json_errors
from lrukv_server.tls import PEER_CN_ENVIRON, peer_common_name

__all__ = [
    "HEAD_LIMIT",
    "HEAD_TIMEOUT",
    "SEND_TIMEOUT",
    "LrukvWorker",
    "raise_fd_limit",
]

log = logging.getLogger("lrukv_server.http")

HEAD_TIMEOUT = 10.0
HEAD_LIMIT = 64 * 1024
SEND_TIMEOUT = 10
LINGER_TIMEOUT = 2.0  # gunicorn's close_graceful: wait this long for the client's FIN
_LINGER_DRAIN = 64 * 1024
_RECV = 64 * 1024
_SNDTIMEO = struct.pack("ll", SEND_TIMEOUT, 0)  # struct timeval
_ACCEPT_ERRNOS = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)
_NO_PROGRESS_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK)


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise this process's soft open-files limit towards *wanted* (never above the
    hard limit); return the soft limit now in force. Idle connections wait in the
    poller, so the number of connections is bounded by file descriptors, not threads."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


_MORE = object()  # handle()'s answer: the head is incomplete; wait in the poller


class _Head:
    """A request head being read: the bytes so far and its deadline.

    ``in_poller`` is True while the connection waits in the poller (not in a
    thread); ``active`` becomes False once the head is complete or the
    connection is gone."""

    __slots__ = (
        "active", "buf", "conn", "deadline", "handshaking", "in_poller", "queued", "want_write",
    )  # fmt: skip

    def __init__(
        self, conn: TConn, deadline: float, buf: bytes = b"", *, handshaking: bool = False
    ) -> None:
        self.conn = conn
        self.deadline = deadline
        self.buf = bytearray(buf)
        self.in_poller = False
        self.queued = False  # in the worker's deadline queue
        self.active = True
        self.handshaking = handshaking  # the TLS handshake is not done yet
        self.want_write = False  # OpenSSL waits to write, not to read


class _DeadlineSSLSocket(ssl.SSLSocket):
    """An SSLSocket on which blocking means a SEND_TIMEOUT deadline per operation.

    gunicorn puts a connection's socket in blocking mode to serve a request; on a
    TLS socket a write to a client that stopped reading would then never end
    (SO_SNDTIMEO's EAGAIN makes OpenSSL retry), so a thread would be held for good.
    """

    def setblocking(self, flag: bool) -> None:
        super().settimeout(SEND_TIMEOUT if flag else 0.0)

    def settimeout(self, value: float | None) -> None:
        super().settimeout(SEND_TIMEOUT if value is None else value)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        # With OP_IGNORE_UNEXPECTED_EOF a FIN without close_notify surfaces as
        # SSLZeroReturnError; it is the end of the client's data, as over TCP.
        try:
            return super().read(len, buffer)
        except ssl.SSLZeroReturnError:
            return 0 if buffer is not None else b""

    def send(self, data: Any, flags: int = 0) -> int:
        # A write after the client closed is a broken pipe, as over TCP (gunicorn
        # ignores those quietly; it would log a TLS error as an invalid request).
        try:
            return super().send(data, flags)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as exc:
            raise BrokenPipeError(errno.EPIPE, "the client closed the TLS connection") from exc


def _has_pending(sock: socket.socket) -> bool:
    """Whether OpenSSL holds decrypted bytes the poller cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


class _Linger:
    """A closing connection waiting in the poller for the client's FIN."""

    __slots__ = ("active", "conn", "deadline", "drained")

    def __init__(self, conn: TConn, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.drained = 0
        self.active = True


def _head_complete(head: bytearray, new: int, line_limit: int) -> bool:
    """Whether gunicorn's parser can decide on *head* without reading more: the
    blank line ending the headers is there (CRLF or bare LF, which the parser
    refuses), or the request line alone is already over its limit (414)."""
    start = max(0, len(head) - new - 3)
    if head.find(b"\n\r\n", start) >= 0 or head.find(b"\n\n", start) >= 0:
        return True
    return line_limit > 0 and len(head) > line_limit + 2 and b"\n" not in head


def _abort(sock: socket.socket) -> None:
    """Close with RST: the kernel drops unsent data instead of holding it for a
    client that stopped reading."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class LrukvWorker(ThreadWorker):  # type: ignore[misc]
    """The gthread worker; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waits: deque[_Head] = deque()  # heads that waited in the poller
        self._lingers: deque[_Linger] = deque()
        self._stop_capped = False
        self._tls: ssl.SSLContext | None = None
        self._peer = threading.local()  # the CN of the connection this thread serves

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self.cfg.is_ssl:
            self.wsgi = self._with_peer_cn(self.wsgi)  # type: ignore[has-type]

    def _with_peer_cn(self, app: Any) -> Any:
        """*app*, seeing ``lrukv.tls.peer_cn`` when the client's certificate was verified."""
        local = self._peer

        def with_peer_cn(environ: dict[str, Any], start_response: Any) -> Any:
            common_name = getattr(local, "cn", None)
            if common_name is not None:
                environ[PEER_CN_ENVIRON] = common_name
            return app(environ, start_response)

        return with_peer_cn

    # ------------------------------------------------------------ signals

    def init_process(self) -> None:
        install_json_errors()
        if self.cfg.is_ssl:
            # One context for every connection, from gunicorn's certfile, keyfile,
            # ca_certs and cert_reqs (checked when the config was loaded).
            self._tls = gunicorn_sock.ssl_context(self.cfg)
            self._tls.sslsocket_class = _DeadlineSSLSocket
            # A client's FIN without close_notify ends its side as over plain TCP
            # (OpenSSL 3 would fail the connection, so a short body could not be
            # answered 400). HTTP's own framing detects a truncated request.
            self._tls.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        # gunicorn's worker exits at once on SIGINT; Ctrl-C in a terminal reaches
        # the worker too, and must drain like SIGTERM.
        signal.signal(signal.SIGINT, self.handle_exit)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        agent = getattr(self.app, "agent", None)
        if agent is not None:
            agent.begin_shutdown()

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        agent = getattr(self.app, "agent", None)
        if agent is not None:
            agent.begin_shutdown(quick=True)
        super().handle_quit(sig, frame)

    # -------------------------------------------------- reading heads

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in _ACCEPT_ERRNOS:
                raise
            return
        self.nr_conns += 1
        with contextlib.suppress(OSError):  # elsewhere than Linux: no send deadline
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SNDTIMEO)
        if self._tls is not None:
            # No I/O yet: the handshake is driven by handle(), without blocking.
            sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        conn = TConn(self.cfg, sock, addr, listener.getsockname())  # non-blocking now
        self._start_head(conn, handshaking=self._tls is not None)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection has bytes: its next request head starts."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_head(conn)

    def _start_head(
        self, conn: TConn, read_ahead: bytes = b"", *, handshaking: bool = False
    ) -> None:
        # Like gunicorn, hand the connection to a thread at once; the thread only
        # reads what has arrived, without blocking (handle()).
        deadline = time.monotonic() + HEAD_TIMEOUT
        conn.lrukv_head = _Head(conn, deadline, read_ahead, handshaking=handshaking)
        self.enqueue_req(conn)

    def handle(self, conn: TConn) -> Any:
        """In a thread: read what has arrived of the head (non-blocking); go on to
        gunicorn's handling only once it is complete, else return _MORE."""
        head: _Head | None = getattr(conn, "lrukv_head", None)
        if head is not None and head.active:
            outcome = self._handshake(conn, head) if head.handshaking else None
            if outcome is None:
                outcome = self._read_head(conn, head)
            if outcome is not None:
                return outcome
        return super().handle(conn)

    def _handshake(self, conn: TConn, head: _Head) -> Any:
        """One non-blocking step of the TLS handshake: None once it is done,
        _MORE while it needs the client, False when it failed."""
        sock: ssl.SSLSocket = conn.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            head.want_write = False
            return _MORE
        except ssl.SSLWantWriteError:
            head.want_write = True
            return _MORE
        except ssl.SSLError as exc:
            head.active = False
            self._refuse_handshake(conn, exc)
            return False
        except OSError:  # reset, or gone
            head.active = False
            return False
        head.handshaking = head.want_write = False
        conn.lrukv_peer_cn = peer_common_name(sock)
        # gunicorn's TConn.init() would wrap the socket again unless it has a parser.
        conn.parser = gunicorn_http.get_parser(self.cfg, sock, conn.client)
        return None

    @staticmethod
    def _refuse_handshake(conn: TConn, exc: ssl.SSLError) -> None:
        """A failed handshake is the client's business: a debug line, no traceback.
        Plain HTTP gets a plain-text 400 saying to use https."""
        client = conn.client[0] if isinstance(conn.client, tuple) else conn.client
        log.debug("TLS handshake with %s failed: %s", client, exc.reason or exc)
        if exc.reason == "HTTP_REQUEST":
            answer = error_response(
                400, "Bad Request", "bad_request",
                "this port speaks TLS: send the request to https://, not http://",
            )  # fmt: skip
            with contextlib.suppress(OSError):
                socket.socket.send(conn.sock, answer)  # the raw socket, not TLS

    def _read_head(self, conn: TConn, head: _Head) -> Any:
        """None once the head is complete (and handed to the parser); else _MORE,
        or False to close the connection."""
        buf = head.buf
        new = len(buf)
        while not (buf and _head_complete(buf, new, self.cfg.limit_request_line)):
            try:
                data = conn.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return _MORE
            except ssl.SSLWantWriteError:
                head.want_write = True
                return _MORE
            except OSError:
                return False
            if not data:  # the client closed the connection
                head.active = False
                return False
            buf += data
            new = len(data)
            if _head_complete(buf, new, self.cfg.limit_request_line):
                break
            if len(buf) > HEAD_LIMIT:
                head.active = False
                self._answer(conn, 431, "Request Header Fields Too Large",
                             f"the request head is over {HEAD_LIMIT} bytes")  # fmt: skip
                return False
            if not _has_pending(conn.sock):  # else OpenSSL has more, unseen by the poller
                return _MORE
        head.active = False
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(buf))
        conn.data_ready = True  # gunicorn must not wait for data again
        return None

    def _on_head_readable(self, head: _Head, _sock: Any) -> None:
        head.in_poller = False
        self.poller.unregister(head.conn.sock)
        self.enqueue_req(head.conn)

    def _wait_for_more(self, conn: TConn) -> None:
        """Main thread: the head is incomplete; wait in the poller until readable."""
        head: _Head = conn.lrukv_head
        if head.deadline <= time.monotonic():
            self._expire(head)
            return
        if not self.alive:
            head.deadline = min(head.deadline, time.monotonic() + STOP_KEEPALIVE_LINGER)
        if not head.queued:
            head.queued = True
            self._waits.append(head)
        head.in_poller = True
        event = selectors.EVENT_WRITE if head.want_write else selectors.EVENT_READ
        self.poller.register(conn.sock, event, partial(self._on_head_readable, head))

    def _expire(self, head: _Head) -> None:
        head.active = False
        if head.in_poller:
            head.in_poller = False
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(head.conn.sock)
        self.nr_conns -= 1
        if head.buf:
            message = f"the request head did not arrive within {HEAD_TIMEOUT:g} s"
            self._answer(head.conn, 408, "Request Timeout", message)
            self._linger(head.conn)
        else:
            head.conn.close()  # it never sent a byte: nothing to answer

    @staticmethod
    def _answer(conn: TConn, status: int, reason: str, message: str) -> None:
        with contextlib.suppress(OSError):  # a courtesy: the connection closes anyway
            conn.sock.send(error_response(status, reason, error_code(reason), message))

    # ------------------------------------------------- after each request

    def handle_request(self, req: Any, conn: TConn) -> Any:
        self._peer.cn = getattr(conn, "lrukv_peer_cn", None)
        try:
            return super().handle_request(req, conn)
        except OSError as exc:
            # A stream's send deadline (socket.timeout, see http_streams), or
            # SO_SNDTIMEO (EAGAIN): the client stopped taking the response.
            if not isinstance(exc, TimeoutError) and exc.errno not in _NO_PROGRESS_ERRNOS:
                raise
            log.warning(
                "HTTP client %s stopped reading its response; closed its connection",
                conn.client[0] if isinstance(conn.client, tuple) else conn.client,
            )
            _abort(conn.sock)
            return False

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        """gunicorn's, plus: an incomplete head waits in the poller; a kept-alive
        connection's read-ahead starts the next head; a closing connection waits
        for the client's FIN in the poller, not in this loop."""
        try:
            outcome = fs.result() if not fs.cancelled() else False
        except Exception:
            outcome = False
        try:
            if outcome is _MORE and conn.sock.fileno() >= 0:
                self._wait_for_more(conn)
            elif outcome is True and conn.sock.fileno() >= 0:
                conn.sock.setblocking(False)
                read_ahead = conn.parser.unreader.take_buffered()
                if read_ahead or _has_pending(conn.sock):  # pipelined: the next request is here
                    self._start_head(conn, read_ahead)
                    return
                conn.set_timeout()
                if not self.alive:
                    conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
                self.keepalived_conns.append(conn)
                self.poller.register(
                    conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
                )
            else:
                self.nr_conns -= 1
                self._linger(conn)
        except Exception:
            self.nr_conns -= 1
            conn.close()

    def _linger(self, conn: TConn) -> None:
        """Half-close, then wait in the poller (not in the main loop, as gunicorn's
        close_graceful does) for the client's FIN, draining what it still sends;
        close at the FIN, after LINGER_TIMEOUT, or after _LINGER_DRAIN bytes."""
        sock = conn.sock
        try:
            if sock.fileno() < 0:
                return
            head = getattr(conn, "lrukv_head", None)
            if isinstance(sock, ssl.SSLSocket) and not (head is not None and head.handshaking):
                # close_notify, without waiting for the client's (non-blocking).
                sock.setblocking(False)
                with contextlib.suppress(OSError, ValueError):
                    sock.unwrap()
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        linger = _Linger(conn, time.monotonic() + LINGER_TIMEOUT)
        self._lingers.append(linger)
        self.poller.register(sock, selectors.EVENT_READ, partial(self._on_linger_readable, linger))

    def _on_linger_readable(self, linger: _Linger, _sock: Any) -> None:
        try:
            data = linger.conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        linger.drained += len(data)
        if not data or linger.drained >= _LINGER_DRAIN:
            self._end_linger(linger)

    def _end_linger(self, linger: _Linger) -> None:
        linger.active = False
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(linger.conn.sock)
        linger.conn.sock.close()

    # ---------------------------------------------------------- deadlines

    def murder_pending(self) -> None:
        """Runs after every poll (about once a second at least): end the heads and
        lingering closes whose deadline has passed."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and not self._stop_capped:
            # Stopping: heads being read get what kept-alive connections get.
            self._stop_capped = True
            cap = now + STOP_KEEPALIVE_LINGER
            for head in self._waits:
                head.deadline = min(head.deadline, cap)
        # Both queues are in (nearly) deadline order: each deadline is now + a constant.
        while self._waits and self._waits[0].deadline <= now:
            head = self._waits.popleft()
            if head.active and head.in_poller:
                self._expire(head)
            # A head being read in a thread expires when it comes back (_wait_for_more).
        while self._lingers and self._lingers[0].deadline <= now:
            linger = self._lingers.popleft()
            if linger.active:
                self._end_linger(linger)
