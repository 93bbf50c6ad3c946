"""``lrukv-server``: parse the settings, set up logging, bind, and run gunicorn + the Agent.

Exit status: 0 after a graceful shutdown; 2 for bad settings; 1 when the HTTP
address cannot be bound; 3 when the worker cannot start (the gRPC address is
taken, the transaction log cannot be opened…). The error is one line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lrukv._extras import EXIT_MISSING_EXTRA, missing_extra_message
from lrukv_server.agent import ServiceWrapper
from lrukv_server.config import ConfigError, LogMode, ServerConfig, load_config
from lrukv_server.gunicorn_app import LrukvApplication, bind_http, process_started_at
from lrukv_server.observability import logs
from lrukv_server.tls import plaintext_warning

__all__ = ["configure_logging", "main"]


def configure_logging(mode: LogMode, *, node_id: str = "") -> None:
    """prod: JSON lines at INFO; development: readable lines at INFO; debug: at DEBUG.
    Everything goes to stderr; stdout carries only the start-up lines.
    (The formats: lrukv_server.observability.logs.)"""
    logs.configure_logging(mode, node_id=node_id)


def _tracing_missing(config: ServerConfig) -> str | None:
    """With -t, the line to print when OpenTelemetry is not installed (else None).
    Checked in the master, so the worker never dies of it with a traceback."""
    if not config.observability.tracing:
        return None
    try:
        import lrukv_server.observability.tracing  # noqa: F401, PLC0415 (only with -t)
    except ModuleNotFoundError as exc:
        return missing_extra_message(exc, prog="lrukv-server", what="tracing (-t)", needs="server")
    return None


def _warn_insecure_cluster(config: ServerConfig) -> None:
    cluster = config.cluster
    if cluster.enabled and cluster.dev and not cluster.secret:
        print(
            "lrukv-server: warning: --dev without --cluster-secret: Raft traffic uses a "
            "well-known secret, so anyone who can reach the Raft port can join and read it",
            file=sys.stderr,
            flush=True,
        )


def _warn_plaintext(config: ServerConfig) -> None:
    warning = plaintext_warning(config)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)


def main(
    argv: Sequence[str] | None = None, *, service_wrapper: ServiceWrapper | None = None
) -> int:
    """Run the server until it is stopped; return the exit status.

    ``service_wrapper`` wraps the KVService the APIs call; tests use it to
    inject faults into the real process. The ``lrukv-server`` script passes none.
    """
    started_at = process_started_at()
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"lrukv-server: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.mode, node_id=config.node_id)
    missing = _tracing_missing(config)
    if missing is not None:
        print(missing, file=sys.stderr)
        return EXIT_MISSING_EXTRA
    _warn_insecure_cluster(config)
    _warn_plaintext(config)

    try:
        http_socket = bind_http(config.host, config.http.port)
    except OSError as exc:
        print(f"lrukv-server: error: {exc}", file=sys.stderr)
        return 1
    app = LrukvApplication(
        config, http_socket, service_wrapper=service_wrapper, started_at=started_at
    )
    try:
        app.run()
    except SystemExit as exc:  # gunicorn's master leaves through sys.exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
