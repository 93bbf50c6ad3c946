"""What the blocking and the asyncio gRPC clients share: channel settings, TLS
credentials, and turning a failed call into the client's exception (what grpcio
itself says here; what the server says goes through the one error table of
``lrukv_client._requests``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from lrukv_client._requests import GRPC_STATUS, error_for
from lrukv_client.errors import LrukvClientError, ServerError, Unreachable, ValueTooLarge
from lrukv_client.models import TLSConfig
from lrukv_proto import ERROR_CODE_METADATA, LEADER_HTTP_METADATA, LEADER_RPC_METADATA

__all__ = [
    "ChannelOptions",
    "channel_credentials",
    "channel_options",
    "error_from_rpc",
    "error_from_status",
]

ChannelOptions = Sequence[tuple[str, Any]]

# keys() of a large store is one message; the 4 MiB default is too small.
_MAX_RECEIVE_BYTES = 256 * 1024 * 1024

_DEFAULT_OPTIONS: dict[str, Any] = {
    # gRPC's own reconnect backoff starts at 1 s and grows to 120 s; while it waits,
    # calls fail fast. Keep it short so the Retry policy, not the channel, decides
    # how long a client waits for a restarted node.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.max_receive_message_length": _MAX_RECEIVE_BYTES,
}


def channel_options(tls: TLSConfig | None, extra: ChannelOptions = ()) -> list[tuple[str, Any]]:
    """Our defaults, then the TLS name override, then the caller's ``extra`` (which win)."""
    options = dict(_DEFAULT_OPTIONS)
    if tls is not None and tls.server_name:
        options["grpc.ssl_target_name_override"] = tls.server_name
        options["grpc.default_authority"] = tls.server_name
    options.update(dict(extra))
    return list(options.items())


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    ca, key, cert = tls.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def error_from_status(
    code: grpc.StatusCode,
    details: str | None,
    metadata: Iterable[Any] | None,
    *,
    target: str,
    key: str | None = None,
) -> LrukvClientError:
    """Translate a failed call's status into the client's exception."""
    pairs = _text_metadata(metadata)
    error = _error_from_status(code, details, pairs, target=target, key=key)
    error.error_code = pairs.get(ERROR_CODE_METADATA)
    return error


def error_from_rpc(exc: grpc.RpcError, *, target: str, key: str | None = None) -> LrukvClientError:
    """Translate a failed call of either the blocking or the asyncio API. Both
    raise an RpcError that also has ``code()``, ``details()`` and
    ``trailing_metadata()``; anything else is an unknown failure."""
    code_of = getattr(exc, "code", None)
    if not callable(code_of):
        return error_from_status(grpc.StatusCode.UNKNOWN, str(exc), None, target=target, key=key)
    code: grpc.StatusCode = code_of()
    details: str | None = exc.details()
    metadata = exc.trailing_metadata()
    return error_from_status(code, details, metadata, target=target, key=key)


def _error_from_status(
    code: grpc.StatusCode,
    details: str | None,
    metadata: dict[str, str],
    *,
    target: str,
    key: str | None,
) -> LrukvClientError:
    message = f"{target}: {details or code.name}"
    wire_code = metadata.get(ERROR_CODE_METADATA)
    if wire_code is None:
        # Said by grpcio itself, not by lrukv: a limit it enforced, a connection it
        # could not make. The server's own errors carry their code.
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return _transport_limit(message, details, target=target)
        if code == grpc.StatusCode.UNAVAILABLE and _no_connection(details):
            return Unreachable(message)
    return error_for(
        wire_code,
        GRPC_STATUS.get(code.name),
        message=message,
        status=code.name,
        key=key,
        leader_rpc=metadata.get(LEADER_RPC_METADATA) or None,
        leader_http=metadata.get(LEADER_HTTP_METADATA) or None,
    )


# What gRPC core says when the connection was refused or the name did not
# resolve: nothing listens there. Not a connect timeout (a busy or distant
# host), a server that answered UNAVAILABLE, or a connection that broke.
_NO_CONNECTION = (
    "connection refused",
    "errors resolving",
    "dns resolution failed",
    "domain name not found",
)


def _no_connection(details: str | None) -> bool:
    text = (details or "").lower()
    return any(marker in text for marker in _NO_CONNECTION)


# grpcio's own answer to a message over a limit, on either side of the call.
_TRANSPORT_LIMIT = re.compile(r"(Received|Sent) message larger than max \((\d+) vs\. (\d+)\)")


def _transport_limit(message: str, details: str | None, *, target: str) -> LrukvClientError:
    """RESOURCE_EXHAUSTED without lrukv's code: a gRPC message limit that grpcio
    enforced before lrukv saw the message (or an older server's value limit)."""
    limit = _TRANSPORT_LIMIT.search(details or "")
    if limit is None:
        return ValueTooLarge(message)
    direction, size, most = limit.group(1), int(limit.group(2)), int(limit.group(3))
    if direction == "Sent":  # this client's own send limit (a channel option)
        return ValueTooLarge(
            f"{target}: value too large: the request is {size} bytes; this client sends "
            f"at most {most} (grpc.max_send_message_length in the channel options)"
        )
    if direction == "Received" and most == _MAX_RECEIVE_BYTES:
        # This client's own receive limit: an answer (keys() of a huge store) too big.
        return ServerError(
            f"{target}: the answer is {size} bytes; this client takes at most {most} "
            "(raise grpc.max_receive_message_length in the channel options, or use "
            "items() to stream a large store)",
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.name,
        )
    # The server's request limit: its value limit plus room for the key and framing
    # (more when the server takes oversized values to answer them itself).
    return ValueTooLarge(
        f"{target}: value too large: the request is {size} bytes and the server takes "
        f"gRPC requests of at most {most} bytes (its value limit, --max-value-bytes, is "
        "lower still)"
    )


def _text_metadata(metadata: Iterable[Any] | None) -> dict[str, str]:
    """The trailing metadata we read, as text. Entries are ``(key, value)`` pairs
    (plain tuples, or grpc's named ``_Metadatum`` tuples)."""
    wanted = (LEADER_RPC_METADATA, LEADER_HTTP_METADATA, ERROR_CODE_METADATA)
    found: dict[str, str] = {}
    for name, value in metadata or ():
        if name in wanted:
            found[name] = value.decode(errors="replace") if isinstance(value, bytes) else value
    return found
