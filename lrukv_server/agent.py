"""The Agent: the one place where a node's parts are built and wired together.

``start()`` runs the setup steps in order; each step that acquires something
registers how to release it, and ``shutdown()`` releases in reverse order. If a
step fails, what was already set up is released before the error propagates.

Setup order, and why:

0. transport options         TLS, interceptors, middleware (lrukv_server.transport):
                             one object for both servers, built before either
1. bind the gRPC port        fail fast on a taken port, before a long log replay
2. open the store            the StoreFSM over a ShardedMap, and the transaction
                             log's LoggedStore (replays the log) when it is on
3. the KVService             LocalService over the state machine (a
                             ReplicatedService later); each part registers a
                             named health check with the agent
4. start gRPC                KV + grpc.health.v1 + reflection
5. the HTTP app              the Flask app; gunicorn serves it
6. health monitor            mirrors the service's readiness into grpc.health.v1

Shutdown: ``begin_shutdown()`` (safe to call from a signal handler: it only sets
an event) makes a helper thread stop gRPC from accepting calls while in-flight
ones drain; gunicorn drains HTTP meanwhile. ``shutdown()`` then waits for gRPC
to finish, closes the service (which then refuses calls) and then closes the
transaction log, which flushes it. Each part is closed by the agent alone.
The Agent runs inside the gunicorn worker, never in the master (gRPC and fork
do not mix, and the store must live where requests are served).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from flask import Flask

from lrukv_server.api.batch_limits import BatchLimits
from lrukv_server.api.grpc_server import GrpcServer, format_addr
from lrukv_server.api.http_app import create_app
from lrukv_server.config import ConfigError, ServerConfig, resolve_data_dir
from lrukv_server.errors import Unavailable
from lrukv_server.fsm import Member, StoreFSM
from lrukv_server.raft import RaftConfig, RaftNode
from lrukv_server.service.base import KVService, ServerInfo
from lrukv_server.service.local import CommandWriter, HealthCheck, LocalService
from lrukv_server.service.replicated import ReplicaStateMachine, ReplicatedService
from lrukv_server.transport import TransportOptions
from lrukv_server.txlog import Backend, LoggedStore

__all__ = ["Agent", "ServiceWrapper", "advertised_host"]

log = logging.getLogger(__name__)

ServiceWrapper = Callable[[KVService], KVService]
"""Wraps the service the APIs call (used by tests to inject faults)."""

_HEALTH_POLL_SECONDS = 1.0


def advertised_host(bind_host: str) -> str:
    """The host to tell clients: the bind address, or this machine's name when the
    server listens on every interface (0.0.0.0 / ::), which no client can dial."""
    if bind_host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return bind_host


class Agent:
    """Builds, runs and stops one node. See the module docstring for the steps.

    ``http_addr`` is the ``host:port`` the HTTP listener is bound to (the
    process host binds it; with port 0 only it knows the port). ``transport``
    replaces the options built from the config (tests use it).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        http_addr: str,
        service_wrapper: ServiceWrapper | None = None,
        transport: TransportOptions | None = None,
    ) -> None:
        self.config = config
        self.http_addr = http_addr
        self.transport = transport if transport is not None else self._transport_options()
        self._service_wrapper = service_wrapper
        self._releases: list[tuple[str, Callable[[], None]]] = []
        self._draining = threading.Event()
        self._quick = False
        self._stopping = threading.Event()
        self._shut_down = False
        self._lock = threading.Lock()
        self.grpc: GrpcServer | None = None
        self.service: KVService | None = None
        self.wsgi_app: Flask | None = None
        self.store_description = ""
        self._health_checks: dict[str, HealthCheck] = {}

    # ---------------------------------------------------------------- setup

    def start(self) -> None:
        """Run every setup step; on failure release what was set up, then raise."""
        try:
            grpc_server = self._bind_grpc()
            if self.config.cluster.enabled:
                service = self._start_replica(grpc_server.port)
            else:
                fsm, writer = self._open_store()
                service = self._make_service(fsm, writer, grpc_server.port)
            self._start_grpc(grpc_server, service)
            self._make_http_app(service)
            self._start_health_monitor(grpc_server, service)
        except BaseException:
            # Quietly: the caller reports the failure in one line.
            self._release_all(report=False)
            raise

    def _transport_options(self) -> TransportOptions:
        """The options both servers are built with, from the config: TLS,
        interceptors and middleware are added here, by the parts that own them."""
        return TransportOptions()

    def _on_shutdown(self, name: str, release: Callable[[], None]) -> None:
        self._releases.append((name, release))

    def _bind_grpc(self) -> GrpcServer:
        cfg = self.config
        server = GrpcServer(
            host=cfg.host,
            port=cfg.grpc.port,
            workers=cfg.grpc.workers,
            max_value_bytes=cfg.max_value_bytes,
            max_key_bytes=cfg.store.max_key_bytes,
            max_streams=cfg.grpc.stream_slots,
            stream_send_timeout=cfg.grpc.stream_send_timeout,
            transport=self.transport,
            batch_limits=self._batch_limits(),
        )
        server.bind()
        self.grpc = server
        # Stopping an unstarted server releases its port. Once started, the drain
        # registered by _start_grpc runs before the service closes; this is then a no-op.
        self._on_shutdown("gRPC port", lambda: server.begin_stop(0))
        return server

    def _batch_limits(self) -> BatchLimits:
        batch = self.config.batch
        return BatchLimits(max_entries=batch.max_entries, max_bytes=batch.max_bytes)

    def _open_store(self) -> tuple[StoreFSM, CommandWriter | None]:
        cfg = self.config
        fsm = StoreFSM(cfg.store.build())
        geometry = f"{cfg.store.shards} shards x {cfg.store.items_per_shard} items"
        if cfg.txlog.backend is Backend.OFF:
            self.store_description = f"{geometry}, transaction log off"
            self._health_checks["txlog"] = lambda: "off"
            return fsm, None
        data_dir = resolve_data_dir(cfg)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(
                f"cannot create the data directory {data_dir}: {exc.strerror or exc}"
            ) from None
        # Replays the log into the state machine before anything is served.
        logged = LoggedStore.open(cfg.txlog, fsm, data_dir=data_dir, node_id=cfg.node_id)
        # Closed after the service (releases run in reverse): flushes the log.
        self._on_shutdown("transaction log", logged.close)
        self._health_checks["txlog"] = lambda: _describe_log_health(logged)
        self.store_description = f"{geometry}, {cfg.txlog.describe()}; {logged.recovery}"
        return fsm, logged

    def _node_info(self, grpc_port: int) -> ServerInfo:
        cfg = self.config
        host = advertised_host(cfg.host)
        http_port = int(self.http_addr.rsplit(":", 1)[1])
        return ServerInfo(
            id=cfg.node_id,
            rpc_addr=format_addr(host, grpc_port),
            http_addr=format_addr(host, http_port),
            is_leader=True,
        )

    def _make_service(
        self, fsm: StoreFSM, writer: CommandWriter | None, grpc_port: int
    ) -> KVService:
        node = self._node_info(grpc_port)
        local = LocalService(fsm, node=node, writer=writer, checks=self._health_checks)
        self._on_shutdown("service (refuses further calls)", local.close)
        return self._expose(local)

    def _start_replica(self, grpc_port: int) -> KVService:
        """A cluster member: the StoreFSM replicated by a Raft node (PySyncObj)."""
        cfg = self.config
        cluster = cfg.cluster
        # Replicas must never change state on their own: reads do not reap expired
        # keys, and apply does not enforce this node's value limit (the service
        # checks it before proposing).
        store = replace(cfg.store, max_value_bytes=None).build(reap_on_read=False)
        fsm = StoreFSM(store)
        replica = ReplicaStateMachine(fsm)
        raft_config = RaftConfig(
            self_addr=cluster.raft_addr,
            secret=cluster.effective_secret,
            peers=cluster.peers,
            join_addr=cluster.join or None,
            data_dir=str(resolve_data_dir(cfg) / "raft"),
        )
        try:
            raft = RaftNode(raft_config.validate(), replica)
        except ValueError as exc:
            raise ConfigError(f"cluster: {exc}") from None
        except Unavailable as exc:
            raise OSError(f"cannot start Raft on {cluster.raft_addr}: {exc}") from None
        self._on_shutdown("Raft node", raft.close)
        node = self._node_info(grpc_port)
        me = Member(cfg.node_id, cluster.raft_addr, node.http_addr, node.rpc_addr)
        service = ReplicatedService(
            fsm,
            raft,
            replica,
            me=me,
            max_value_bytes=cfg.max_value_bytes,
            checks=self._health_checks,
        )
        service.start()
        self._on_shutdown("service (refuses further calls)", service.close)
        peers = ", ".join(cluster.peers) or (f"joined via {cluster.join}" if cluster.join else "")
        self.store_description = (
            f"{cfg.store.shards} shards x {cfg.store.items_per_shard} items, replicated by "
            f"Raft at {cluster.raft_addr} ({peers or 'restarted from its journal'})"
        )
        return self._expose(service)

    def _expose(self, service: KVService) -> KVService:
        if self._service_wrapper is not None:
            service = self._service_wrapper(service)
        self.service = service
        return service

    def _start_grpc(self, server: GrpcServer, service: KVService) -> None:
        server.start(service)
        self._on_shutdown("gRPC server (drains in-flight calls)", lambda: self._stop_grpc(server))
        # A helper thread, so begin_shutdown() can be called from a signal handler.
        watcher = threading.Thread(
            target=self._stop_grpc_when_draining, args=(server,), name="lrukv-drain", daemon=True
        )
        watcher.start()

    def _make_http_app(self, service: KVService) -> None:
        self.wsgi_app = create_app(
            service,
            max_value_bytes=self.config.max_value_bytes,
            is_draining=self._draining.is_set,
            transport=self.transport,
            batch_limits=self._batch_limits(),
        )

    def _start_health_monitor(self, server: GrpcServer, service: KVService) -> None:
        def monitor() -> None:
            serving = True
            while not self._stopping.wait(_HEALTH_POLL_SECONDS):
                try:
                    ready = service.health().ready and not self._draining.is_set()
                except Exception:
                    log.exception("health check failed")
                    ready = False
                if ready != serving and not self._draining.is_set():
                    server.set_serving(ready)
                    log.warning("node is %s", "ready again" if ready else "NOT ready")
                    serving = ready

        thread = threading.Thread(target=monitor, name="lrukv-health", daemon=True)
        thread.start()
        self._on_shutdown("health monitor", self._stopping.set)

    # ------------------------------------------------------------- shutdown

    def begin_shutdown(self, *, quick: bool = False) -> None:
        """Stop taking new gRPC calls and report not-ready; returns at once.

        Only sets flags and an event, so it is safe in a signal handler. With
        ``quick`` in-flight gRPC calls are cancelled instead of drained.
        """
        self._quick = self._quick or quick
        self._draining.set()

    def _stop_grpc_when_draining(self, server: GrpcServer) -> None:
        self._draining.wait()
        server.begin_stop(0 if self._quick else self.config.drain_timeout)

    def _stop_grpc(self, server: GrpcServer) -> None:
        server.begin_stop(0 if self._quick else self.config.drain_timeout)
        if not server.wait_stopped(self.config.drain_timeout + 1):
            log.warning("gRPC calls still running after the drain timeout were cancelled")

    def shutdown(self) -> None:
        """Drain gRPC (HTTP is drained by gunicorn before this runs), then release
        everything in reverse setup order. Idempotent; never raises."""
        self.begin_shutdown()
        self._release_all()

    def _release_all(self, *, report: bool = True) -> None:
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._draining.set()
        started = time.monotonic()
        for name, release in reversed(self._releases):
            try:
                release()
            except Exception:
                log.exception("error while stopping the %s", name)
        self._releases.clear()
        if report:
            log.info("stopped in %.2fs", time.monotonic() - started)


def _describe_log_health(logged: LoggedStore) -> str:
    health = logged.log_health()
    return "ok" if health.ok else health.detail
