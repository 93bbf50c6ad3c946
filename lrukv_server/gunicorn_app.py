"""gunicorn, embedded: ``lrukv-server`` is one command that runs gunicorn's master
and exactly one gthread worker, and the Agent inside that worker.

Process layout::

    master (this module's Arbiter)        worker (forked by the master)
    - binds the HTTP socket               - builds the Agent: store, service,
    - forwards SIGTERM/SIGINT               gRPC server, Flask app (load())
    - restarts a worker that dies         - serves HTTP on its threads, gRPC on
                                            the gRPC pool
    - exits when the worker has exited    - on SIGTERM/SIGINT: stops accepting,
                                            drains HTTP and gRPC, closes the store

Why the store and gRPC live in the worker: the worker is where requests are
served, and one worker means one store (several workers would be several
different stores). gRPC must not be started before a fork, so the master never
creates a gRPC object.

If the worker dies (a crash, the OOM killer), the master starts a new one. Its
store is rebuilt from the transaction log when one is on, and starts EMPTY
otherwise; the new worker logs a warning saying which.

Signals: SIGTERM and SIGINT (Ctrl-C) both shut down gracefully (gunicorn's own
SIGINT is a quick shutdown; lrukv changes that so Ctrl-C never drops requests).
A second SIGINT or a SIGQUIT during the drain makes it quick.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import threading
import time
from typing import Any

from gunicorn import glogging
from gunicorn import sock as gunicorn_sock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from lrukv_server.agent import Agent, ServiceWrapper
from lrukv_server.api.grpc_server import format_addr
from lrukv_server.config import LogMode, ServerConfig
from lrukv_server.http_streams import StreamLimit, max_streams_for
from lrukv_server.http_worker import LrukvWorker, raise_fd_limit
from lrukv_server.tls import gunicorn_ssl_settings
from lrukv_server.txlog import Backend, TxLogError

__all__ = [
    "ACCESS_LOG_FORMAT",
    "LrukvApplication",
    "bind_http",
    "check_grpc_port",
    "check_raft_port",
    "process_started_at",
]

log = logging.getLogger("lrukv_server")

ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
"""gunicorn's access log line (development and debug): client, request line,
status, bytes, milliseconds, user agent, and the request's id (the response's
``X-Request-Id``), so the line can be matched with the request's other lines."""

# After the drain, the worker still closes the store (flushing the log); the
# master waits this much longer than the drain timeout before it kills the worker.
_CLOSE_MARGIN_SECONDS = 10


def bind_http(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Bind and listen on the HTTP address in the master (port 0: a free port).

    Binding here, not in gunicorn, gives one clear error at once instead of
    gunicorn's five retries a second apart, and tells the real port before any
    worker starts. Raises OSError naming the address.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise OSError(
            f"cannot listen for HTTP on {format_addr(host, port)}: {_reason(exc)}"
        ) from None


def check_grpc_port(host: str, port: int) -> None:
    """Raise OSError("cannot listen for gRPC on ...: Address already in use") if
    another socket listens on the gRPC address.

    grpcio reports a taken port with a C-core log line on stderr and a vague
    RuntimeError; probing first gives one clear line. (A port taken between the
    probe and grpcio's bind still fails, with grpcio's words.)
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Like grpcio: SO_REUSEADDR (a port in TIME_WAIT is free), no SO_REUSEPORT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(
                f"cannot listen for gRPC on {format_addr(host, port)}: {_reason(exc)}"
            ) from None


def check_raft_port(raft_addr: str) -> None:
    """Raise OSError("cannot listen for Raft on ...: Address already in use") if
    another socket listens on the Raft address (``host:port``); PySyncObj would
    log a traceback before failing."""
    host, _, port = raft_addr.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) == 0:
        return  # the Raft config reports a malformed address itself
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise OSError(f"cannot listen for Raft on {raft_addr}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    """The OS's words for *exc* ("Address already in use"), without the address
    details Python appends to them."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _heartbeat(worker: Any, done: threading.Event) -> None:
    """Tell the master the worker is alive, every second, until *done*."""
    while not done.wait(1.0):
        worker.notify()


def process_started_at() -> float:
    """When this process started (epoch seconds), from /proc on Linux, so the
    start-up time reported includes the interpreter's start and the imports;
    elsewhere, now."""
    try:
        with open("/proc/self/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        return time.time() - uptime + int(fields[19]) / ticks
    except (OSError, ValueError, IndexError):
        return time.time()


def _is_boot_failure_report(record: logging.LogRecord) -> bool:
    """gunicorn's master line for a worker that exited with WORKER_BOOT_ERROR."""
    return (
        record.msg == "Worker (pid:%s) exited with code %s."
        and isinstance(record.args, tuple)
        and record.args[-1:] == (Arbiter.WORKER_BOOT_ERROR,)
    )


class _Logger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, sending its lines through Python logging's root handler
    so they get lrukv's format (JSON in prod).

    A worker that cannot start prints the one line saying why and exits with
    WORKER_BOOT_ERROR; the master's own report of that exit is dropped, so a
    start-up failure stays one line on stderr (see _Arbiter.halt).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        self.error_log.addFilter(lambda record: not _is_boot_failure_report(record))


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, using the socket lrukv bound and draining on SIGINT."""

    def __init__(self, app: LrukvApplication) -> None:
        super().__init__(app)
        self._lrukv_app = app

    def start(self) -> None:
        if not self.LISTENERS:  # type: ignore[has-type]
            fd = self._lrukv_app.http_socket.detach()
            self.LISTENERS = gunicorn_sock.create_sockets(self.cfg, self.log, [fd])
        super().start()

    def handle_term(self) -> None:
        self._log_shutdown("SIGTERM")
        super().handle_term()

    def handle_int(self) -> None:
        self._log_shutdown("SIGINT")
        super().handle_term()

    def handle_quit(self) -> None:
        log.warning("shutting down at once: SIGQUIT (in-flight requests are cut off)")
        super().handle_quit()

    def _log_shutdown(self, signal_name: str) -> None:
        log.info(
            "shutting down: %s received; draining in-flight requests for up to %gs",
            signal_name,
            self._lrukv_app.config.drain_timeout,
        )

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        if exit_status != self.WORKER_BOOT_ERROR:
            super().halt(reason, exit_status)
            return
        # The worker has printed why it could not start, in one line: exit
        # without gunicorn's "Shutting down" / "Reason: Worker failed to boot".
        self.stop()
        sys.exit(exit_status)

    def stop(self, graceful: bool = True) -> None:
        # The worker uses graceful_timeout for its HTTP drain (it read the config
        # when it forked); the master's wait must also cover closing the store.
        limit = self._lrukv_app.config.drain_timeout + _CLOSE_MARGIN_SECONDS
        self.cfg.set("graceful_timeout", math.ceil(limit))
        super().stop(graceful)


class LrukvApplication(BaseApplication):  # type: ignore[misc]
    """``lrukv-server`` as a gunicorn application: one gthread worker running the Agent."""

    def __init__(
        self,
        config: ServerConfig,
        http_socket: socket.socket,
        *,
        service_wrapper: ServiceWrapper | None = None,
        started_at: float | None = None,
    ) -> None:
        self.config = config
        self.http_socket = http_socket
        host, port = http_socket.getsockname()[:2]
        self.http_addr = format_addr(host, port)
        self.service_wrapper = service_wrapper
        self.started_at = process_started_at() if started_at is None else started_at
        self.agent: Agent | None = None
        self.worker_deaths = 0  # counted in the master, seen by the next worker after fork
        self._worker: Any = None
        super().__init__()

    def load_config(self) -> None:
        cfg = self.config
        mode = cfg.logging.mode
        settings: dict[str, Any] = {
            "bind": [self.http_addr],
            "workers": 1,
            "worker_class": LrukvWorker,
            "threads": cfg.http.threads,
            # Connections wait in the worker's poller until a request has arrived
            # (http_worker), so they are bounded by file descriptors, not threads.
            "worker_connections": max(cfg.http.threads * 4, min(10000, raise_fd_limit() - 256)),
            "graceful_timeout": math.ceil(cfg.drain_timeout),
            "timeout": 30,
            "keepalive": 5,
            "proc_name": "lrukv-server",
            "logger_class": _Logger,
            # gunicorn's info lines (starting, listening, booting) repeat lrukv's
            # banner and would surround a start-up failure's one line: debug only.
            "loglevel": "debug" if mode is LogMode.DEBUG else "warning",
            "errorlog": "-",
            "accesslog": None if mode is LogMode.PROD else "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            # A percent-encoded key of max_key_bytes takes up to 3 bytes per byte;
            # 8190 is gunicorn's maximum. Longer keys need gRPC.
            "limit_request_line": 8190,
            "control_socket_disable": True,
            "post_fork": self._post_fork,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
            "child_exit": self._child_exit,
        }
        settings.update(gunicorn_ssl_settings(cfg.tls))
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        """Runs in the worker: build and start the Agent; return the WSGI app."""
        if self.worker_deaths:
            log.warning(
                "the previous worker died; this one starts %s",
                "by replaying the transaction log"
                if self.config.txlog.backend is not Backend.OFF
                else "with an EMPTY store (the transaction log is off)",
            )
        agent = Agent(self.config, http_addr=self.http_addr, service_wrapper=self.service_wrapper)
        # Replaying a long transaction log can take longer than gunicorn's worker
        # timeout; without heartbeats the master would kill the booting worker and
        # start another that replays again, for ever.
        booted = threading.Event()
        worker = self._worker
        if worker is not None:
            threading.Thread(
                target=_heartbeat, args=(worker, booted), name="lrukv-boot-heartbeat", daemon=True
            ).start()
        try:
            check_grpc_port(self.config.host, self.config.grpc.port)
            if self.config.cluster.enabled:
                check_raft_port(self.config.cluster.raft_addr)
            agent.start()
        except (OSError, ValueError, TxLogError) as exc:
            # One clear line instead of a traceback; exit code 3 makes the master
            # give up (gunicorn's "worker failed to boot") instead of retrying.
            print(f"lrukv-server: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        finally:
            booted.set()
        self.agent = agent
        assert agent.wsgi_app is not None
        return StreamLimit(agent.wsgi_app, max_streams_for(self.config.http.threads))

    def _post_fork(self, server: Any, worker: Any) -> None:
        self._worker = worker  # in the worker process, before load()

    def _post_worker_init(self, worker: Any) -> None:
        agent = self.agent
        assert agent is not None and agent.grpc is not None
        cfg = self.config
        took = time.time() - self.started_at
        lines = [
            f"lrukv-server: node {cfg.node_id}: {agent.store_description}",
            f"lrukv-server: HTTP listening on {agent.transport.scheme}://{self.http_addr}",
            f"lrukv-server: gRPC listening on {agent.grpc.address}",
            f"lrukv-server: ready {took:.2f}s after start (master pid {os.getppid()}, "
            f"worker pid {os.getpid()})",
        ]
        print("\n".join(lines), flush=True)

    def _worker_exit(self, server: Any, worker: Any) -> None:
        # Also called in the master for a worker that vanished; only the worker has an Agent.
        if self.agent is not None and worker.pid == os.getpid():
            self.agent.shutdown()

    def _child_exit(self, server: Any, worker: Any) -> None:
        # In the master; a worker forked later inherits the count.
        self.worker_deaths += 1

    def run(self) -> None:
        _Arbiter(self).run()
