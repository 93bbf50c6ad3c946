"""What ``Client`` and ``AsyncClient`` share besides the API: the constructor,
and one channel (and stub) per node, made on first use. The two differ only in
the channel module (``grpc`` or ``grpc.aio``) and in how they wait."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import grpc

from lrukv_client._api import Wire
from lrukv_client._grpc_common import (
    ChannelOptions,
    channel_credentials,
    channel_options,
    error_from_rpc,
)
from lrukv_client._grpc_wire import GrpcWire
from lrukv_client._requests import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE, Call, ClientCore
from lrukv_client._targets import parse_servers
from lrukv_client.errors import LrukvClientError, NotLeader
from lrukv_client.models import Consistency, TLSConfig
from lrukv_client.retry import Retry
from lrukv_proto.v1 import kv_pb2_grpc

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_GRPC_SERVER", "GrpcClientBase"]

R = TypeVar("R")

DEFAULT_GRPC_PORT = 50051
DEFAULT_GRPC_SERVER = f"127.0.0.1:{DEFAULT_GRPC_PORT}"


def _leader_rpc(err: NotLeader) -> str | None:
    return err.leader_rpc


class GrpcClientBase:
    """The settings of a gRPC client; see :class:`lrukv_client.Client` for the arguments.

    ``channels``: the module whose ``secure_channel`` / ``insecure_channel``
    make this client's channels.
    """

    channels: ClassVar[Any] = grpc

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_GRPC_SERVER,
        *,
        timeout: float | None = None,
        retry: Retry | None = None,
        tls: TLSConfig | None = None,
        consistency: Consistency | str = Consistency.DEFAULT,
        extra_options: ChannelOptions = (),
        metadata: Mapping[str, str] | None = None,
        token: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        self._core = ClientCore(
            parse_servers(servers, default_port=DEFAULT_GRPC_PORT),
            timeout=timeout,
            retry=retry,
            consistency=consistency,
            leader_of=_leader_rpc,
            headers=metadata,
            token=token,
        )
        self._wire: Wire = GrpcWire()
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self._options = channel_options(tls, extra_options)
        self._credentials = channel_credentials(tls) if tls is not None else None
        self._channels: dict[str, Any] = {}
        self._stubs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def server(self) -> str:
        """The address the next call goes to (the leader, once one was followed)."""
        return self._core.targets.current

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server={self.server!r}, seeds={self._core.targets.seeds!r})"

    def _stub(self, target: str) -> Any:
        """The stub of ``target``'s channel (typed Any: the generated KVStub's aio
        overload is a type-check-only class)."""
        with self._lock:
            if self._closed:
                raise LrukvClientError("the client is closed")
            stub = self._stubs.get(target)
            if stub is None:
                if self._credentials is not None:
                    channel = self.channels.secure_channel(target, self._credentials, self._options)
                else:
                    channel = self.channels.insecure_channel(target, self._options)
                self._channels[target] = channel
                stub = self._stubs[target] = kv_pb2_grpc.KVStub(channel)
            return stub

    def _take_channels(self) -> list[Any]:
        """Mark the client closed and hand over its channels, to be closed."""
        with self._lock:
            self._closed = True
            channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        return channels

    # -- one attempt of a call: what the blocking and the asyncio clients share ----------

    def _invoke(self, call: Call[Any], attempt_timeout: float | None) -> tuple[str, Any]:
        """Start one attempt of ``call`` on the current node: (node, what the stub
        returned — the answer for a blocking channel, an awaitable for grpc.aio)."""
        target = self._core.targets.current
        method = getattr(self._stub(target), call.method)
        metadata = self._core.call_metadata() or None
        try:
            return target, method(call.request, timeout=attempt_timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise self._failed(exc, target, call.key) from exc

    def _failed(self, exc: grpc.RpcError, target: str, key: str | None) -> LrukvClientError:
        """The client's exception for a failed attempt (the node counts as reached
        unless nothing answered)."""
        error = error_from_rpc(exc, target=target, key=key)
        self._core.answered(error)
        return error

    def _decoded(self, call: Call[R], answer: Any, target: str) -> R:
        self._core.answered(None)
        return call.decode(answer, target)
