"""lrukv's gunicorn worker: gthread, with request heads read in the poller.

gunicorn's gthread worker (27.x) hands a freshly accepted connection straight to
one of its threads, which waits up to 5 s for a first byte and then blocks
reading the request head for as long as the client takes. With 8 threads, 8
silent connections stalled every HTTP request for 5 s, and 8 clients sending one
header byte every 100 ms (slowloris) froze HTTP for as long as they kept on.

This worker keeps a connection in the poller, the main thread's selector, until
its whole request head has arrived, reading what is there whenever the socket
is readable (non-blocking, in the main thread); only a connection with a
complete head takes a thread. Kept-alive connections go the same way for each
next request. Limits:

* ``HEAD_TIMEOUT``: a request head must be complete within 10 s of the
  connection's opening (of its first byte, on a kept-alive connection). A
  connection that sent nothing is then closed silently; one that sent part of a
  head is answered 408 ``request_timeout``.
* ``HEAD_LIMIT``: a head still incomplete after 64 KiB is answered 431.
* ``SEND_TIMEOUT``: every connection has SO_SNDTIMEO of 10 s, so a response
  write that makes no progress for 10 s (a client that stopped reading) fails,
  and the connection is closed, freeing its thread (see also http_streams).
* Closing after ``Connection: close`` lingers for the client's FIN in the
  poller too (gunicorn lingered up to 2 s in the main loop, stalling it).

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
import struct
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any

from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from lrukv_server.http_errors import error_code, error_response, install_json_errors

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


@dataclass(eq=False)
class _Wait:
    """A connection waiting in the poller: for its request head, or for the
    client's FIN after the server's half-close (``lingering``)."""

    conn: TConn
    deadline: float
    lingering: bool = False
    head: bytearray = field(default_factory=bytearray)
    drained: int = 0
    active: bool = True


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
        # In deadline order: every deadline is now + a constant.
        self._waits: deque[_Wait] = deque()
        self._stop_capped = False

    # ------------------------------------------------------------ signals

    def init_process(self) -> None:
        install_json_errors()
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

    # -------------------------------------------------- waiting for heads

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
        conn = TConn(self.cfg, sock, addr, listener.getsockname())  # non-blocking now
        # The request is often there already: read it before waiting on the poller.
        self._read_head(conn, None)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection has bytes: its next request head starts."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn, None)

    def _read_head(self, conn: TConn, wait: _Wait | None, buffered: bytes = b"") -> None:
        """Read what has arrived of *conn*'s request head; hand the connection to a
        thread once the head is complete, else wait in the poller (again)."""
        data = buffered
        if not data:
            try:
                data = conn.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                if wait is None:
                    self._start_wait(conn, bytearray())
                return
            except OSError:
                data = b""
            if not data:  # the client closed (or reset) the connection
                self._end_wait(wait)
                self._drop(conn)
                return
        head = wait.head if wait is not None else bytearray()
        head += data
        if _head_complete(head, len(data), self.cfg.limit_request_line):
            self._end_wait(wait)
            conn.lrukv_head = bytes(head)
            conn.data_ready = True  # gunicorn must not wait for data again
            self.enqueue_req(conn)
        elif len(head) > HEAD_LIMIT:
            self._end_wait(wait)
            self._refuse(conn, 431, "Request Header Fields Too Large",
                         f"the request head is over {HEAD_LIMIT} bytes")  # fmt: skip
        elif wait is None:
            self._start_wait(conn, head)

    def _start_wait(self, conn: TConn, head: bytearray) -> None:
        wait = _Wait(conn, time.monotonic() + HEAD_TIMEOUT, head=head)
        if not self.alive:
            wait.deadline = min(wait.deadline, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self._add_wait(wait, partial(self._on_head_readable, wait))

    def _on_head_readable(self, wait: _Wait, _sock: Any) -> None:
        self._read_head(wait.conn, wait)

    def _add_wait(self, wait: _Wait, callback: Any) -> None:
        self._waits.append(wait)
        self.poller.register(wait.conn.sock, selectors.EVENT_READ, callback)

    def _end_wait(self, wait: _Wait | None) -> None:
        if wait is None or not wait.active:
            return
        wait.active = False
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(wait.conn.sock)

    def _drop(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: TConn, status: int, reason: str, message: str) -> None:
        code = error_code(reason)
        with contextlib.suppress(OSError):  # a courtesy: the connection closes anyway
            conn.sock.send(error_response(status, reason, code, message))
        self.nr_conns -= 1
        self._linger(conn)

    def handle(self, conn: TConn) -> Any:
        head = getattr(conn, "lrukv_head", b"")
        if head:
            # In the thread: give the parser the head the poller read.
            conn.lrukv_head = b""
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(head)
        return super().handle(conn)

    # ------------------------------------------------- after each request

    def handle_request(self, req: Any, conn: TConn) -> Any:
        try:
            return super().handle_request(req, conn)
        except OSError as exc:
            if exc.errno not in _NO_PROGRESS_ERRNOS:
                raise
            # SO_SNDTIMEO: the client took no response data for SEND_TIMEOUT seconds.
            log.warning(
                "HTTP client %s read nothing of the response for %ds; closed its connection",
                conn.client[0] if isinstance(conn.client, tuple) else conn.client,
                SEND_TIMEOUT,
            )
            _abort(conn.sock)
            return False

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        """gunicorn's, except that a kept-alive connection's read-ahead bytes and a
        closing connection's wait for the client's FIN are handled in the poller."""
        try:
            keepalive = fs.result() if not fs.cancelled() else False
        except Exception:
            keepalive = False
        try:
            if keepalive and conn.sock.fileno() >= 0:
                conn.sock.setblocking(False)
                read_ahead = conn.parser.unreader.take_buffered()
                if read_ahead:
                    # Pipelined: the next request's head (or part of it) is here.
                    self._read_head(conn, None, buffered=read_ahead)
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
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        wait = _Wait(conn, time.monotonic() + LINGER_TIMEOUT, lingering=True)
        self._add_wait(wait, partial(self._on_linger_readable, wait))

    def _on_linger_readable(self, wait: _Wait, _sock: Any) -> None:
        try:
            data = wait.conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        wait.drained += len(data)
        if not data or wait.drained >= _LINGER_DRAIN:
            self._end_wait(wait)
            wait.conn.sock.close()

    # ---------------------------------------------------------- deadlines

    def murder_pending(self) -> None:
        """Runs after every poll (about once a second at least): end the waits
        whose deadline has passed."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and not self._stop_capped:
            # Stopping: waiting heads get what kept-alive connections get.
            self._stop_capped = True
            cap = now + STOP_KEEPALIVE_LINGER
            for wait in self._waits:
                wait.deadline = min(wait.deadline, cap)
        while self._waits and self._waits[0].deadline <= now:
            wait = self._waits.popleft()
            if not wait.active:
                continue
            self._end_wait(wait)
            if wait.lingering:
                wait.conn.sock.close()
            elif wait.head:
                message = f"the request head did not arrive within {HEAD_TIMEOUT:g} s"
                self._refuse(wait.conn, 408, "Request Timeout", message)
            else:
                self._drop(wait.conn)  # never sent a byte: nothing to answer
