"""lrukv_client: the Python SDK of lrukv, and the ``lrukv`` command line.

Two blocking clients with the same methods and the same errors —
:class:`Client` over gRPC and :class:`HttpClient` over HTTP — plus
:class:`AsyncClient`, the asyncio twin of :class:`Client`. Each is a context
manager that reuses one channel (or connection pool), follows the leader, and
retries what is safe to retry under an overall deadline (see :class:`Retry`).

>>> from lrukv_client import Client
>>> with Client("127.0.0.1:50051") as kv:  # doctest: +SKIP
...     kv.put("key-a", b"Hello, key-value store!")
...     kv.get("key-a")
b'Hello, key-value store!'
"""

from typing import TYPE_CHECKING

try:
    from lrukv_client.aio import AsyncClient, AsyncItemStream
    from lrukv_client.backoff import (
        AbstractBackoff,
        ConstantBackoff,
        EqualJitterBackoff,
        ExponentialBackoff,
        ExponentialWithJitterBackoff,
        NoBackoff,
        default_backoff,
    )
    from lrukv_client.client import DEFAULT_GRPC_PORT, DEFAULT_GRPC_SERVER, Client
    from lrukv_client.connect import AnyClient, Transport, connect, infer_transport, resolve_servers
    from lrukv_client.errors import (
        BatchTooLarge,
        DeadlineExceeded,
        InvalidArgument,
        KeyNotFound,
        LrukvClientError,
        NotLeader,
        PermissionDenied,
        ServerError,
        TooManyRedirects,
        Unauthenticated,
        Unavailable,
        Unreachable,
        ValueTooLarge,
    )
    from lrukv_client.http_client import DEFAULT_HTTP_PORT, DEFAULT_HTTP_SERVER, HttpClient
    from lrukv_client.models import (
        BatchResult,
        ClusterMember,
        ClusterStatus,
        Consistency,
        ServerInfo,
        StoreStats,
        TLSConfig,
    )
    from lrukv_client.pipeline import AsyncPipeline, HttpPipeline, Pipeline
    from lrukv_client.retry import Retry, RetryCall
    from lrukv_client.stream import ItemStream
except ModuleNotFoundError as _missing:
    # Installed without the 'client' extra: keep `import lrukv_client` working
    # (the `lrukv` command's entry point needs that to say what is missing) and
    # make every name say which extra to install.
    if (_missing.name or "").split(".")[0] in {"lrukv", "lrukv_client", "lrukv_proto"}:
        raise
    _MISSING_MESSAGE = (
        "lrukv_client needs the 'client' extra: pip install 'lrukv[client]' "
        f"(missing module: {_missing.name})"
    )
    _MISSING_NAME = _missing.name
    if not TYPE_CHECKING:

        def __getattr__(name: str) -> object:
            if name.startswith("__"):
                raise AttributeError(name)
            raise ModuleNotFoundError(_MISSING_MESSAGE, name=_MISSING_NAME)


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_GRPC_SERVER",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_HTTP_SERVER",
    "AbstractBackoff",
    "AnyClient",
    "AsyncClient",
    "AsyncItemStream",
    "AsyncPipeline",
    "BatchResult",
    "BatchTooLarge",
    "Client",
    "ClusterMember",
    "ClusterStatus",
    "Consistency",
    "ConstantBackoff",
    "DeadlineExceeded",
    "EqualJitterBackoff",
    "ExponentialBackoff",
    "ExponentialWithJitterBackoff",
    "HttpClient",
    "HttpPipeline",
    "InvalidArgument",
    "ItemStream",
    "KeyNotFound",
    "LrukvClientError",
    "NoBackoff",
    "NotLeader",
    "PermissionDenied",
    "Pipeline",
    "Retry",
    "RetryCall",
    "ServerError",
    "ServerInfo",
    "StoreStats",
    "TLSConfig",
    "TooManyRedirects",
    "Transport",
    "Unauthenticated",
    "Unavailable",
    "Unreachable",
    "ValueTooLarge",
    "__version__",
    "connect",
    "default_backoff",
    "infer_transport",
    "resolve_servers",
]
