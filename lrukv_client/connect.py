"""``connect()``: one function that opens the right client for an address.

The CLI and the load generator use it, so a transport is chosen the same way
everywhere: explicitly, or from the address (``http://`` / ``https://`` means
HTTP), else gRPC.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from lrukv_client._targets import parse_servers
from lrukv_client.client import DEFAULT_GRPC_PORT, DEFAULT_GRPC_SERVER, Client
from lrukv_client.errors import InvalidArgument
from lrukv_client.http_client import DEFAULT_HTTP_SERVER, HttpClient, http_seeds
from lrukv_client.models import Consistency, TLSConfig
from lrukv_client.retry import Retry

__all__ = ["AnyClient", "Transport", "connect", "infer_transport", "resolve_servers"]

AnyClient = Client | HttpClient


class Transport(enum.StrEnum):
    """The wire protocol of a client."""

    GRPC = "grpc"
    HTTP = "http"


def infer_transport(servers: str | Sequence[str] | None) -> Transport:
    """HTTP when an address has an ``http(s)://`` scheme, else gRPC.

    >>> infer_transport("http://127.0.0.1:8080").value
    'http'
    >>> infer_transport("127.0.0.1:50051").value
    'grpc'
    """
    if servers is None:
        return Transport.GRPC
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    schemes = {item.strip().split("://", 1)[0].lower() for item in items if "://" in item}
    return Transport.HTTP if schemes & {"http", "https"} else Transport.GRPC


def resolve_servers(
    servers: str | Sequence[str] | None, transport: Transport | str | None = None
) -> tuple[Transport, list[str]]:
    """The transport :func:`connect` would use and the addresses it would dial,
    each checked and with its port (50051 for gRPC, 8080 for HTTP when none is
    given). Raises ``InvalidArgument`` for a bad address, without dialling.

    >>> resolve_servers("localhost")
    (<Transport.GRPC: 'grpc'>, ['localhost:50051'])
    >>> resolve_servers("localhost", "http")
    (<Transport.HTTP: 'http'>, ['http://localhost:8080'])
    """
    try:
        chosen = Transport(transport) if transport is not None else infer_transport(servers)
    except ValueError:
        raise InvalidArgument(f"unknown transport {transport!r}; use grpc or http") from None
    if chosen is Transport.HTTP:
        schemes, hosts = http_seeds(servers if servers is not None else DEFAULT_HTTP_SERVER)
        scheme = "https" if "https" in schemes else "http"
        return chosen, [f"{scheme}://{host}" for host in hosts]
    if servers is not None and infer_transport(servers) is Transport.HTTP:
        raise InvalidArgument("an http:// address needs --transport http (or no --transport)")
    seeds = servers if servers is not None else DEFAULT_GRPC_SERVER
    return chosen, parse_servers(seeds, default_port=DEFAULT_GRPC_PORT)


def connect(
    servers: str | Sequence[str] | None = None,
    *,
    transport: Transport | str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    tls: TLSConfig | None = None,
    consistency: Consistency | str = Consistency.DEFAULT,
    token: str | None = None,
) -> AnyClient:
    """Open a :class:`Client` (gRPC) or an :class:`HttpClient` for ``servers``.

    ``servers`` None means the local default of the transport
    (``127.0.0.1:50051`` or ``127.0.0.1:8080``).

    >>> with connect("http://127.0.0.1:8080") as kv:  # doctest: +SKIP
    ...     kv.put("key-a", b"value")
    """
    try:
        chosen = Transport(transport) if transport is not None else infer_transport(servers)
    except ValueError:
        raise InvalidArgument(f"unknown transport {transport!r}; use grpc or http") from None
    cls: type[AnyClient] = HttpClient
    default = DEFAULT_HTTP_SERVER
    if chosen is Transport.GRPC:
        if servers is not None and infer_transport(servers) is Transport.HTTP:
            raise InvalidArgument("an http:// address needs --transport http (or no --transport)")
        cls, default = Client, DEFAULT_GRPC_SERVER
    seeds = servers if servers is not None else default
    return cls(seeds, timeout=timeout, retry=retry, tls=tls, consistency=consistency, token=token)
