"""``AsyncClient``: the asyncio twin of :class:`lrukv_client.Client` (grpc.aio).

Same methods (as coroutines), same errors, same retry policy and redirects;
only the sleeping between retries uses ``asyncio.sleep`` (``Retry.sleep`` is the
blocking clients'). ``items()`` returns an async iterator that opens the stream
on first use, so ``async for key, value in kv.items()`` works directly.

>>> async def main() -> None:  # doctest: +SKIP
...     async with AsyncClient("127.0.0.1:50051") as kv:
...         await kv.put("key-a", b"Hello")
...         async for key, value in kv.items():
...             print(key, value)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio
from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

from lrukv_client._auth import check_token, with_token
from lrukv_client._grpc_common import (
    ChannelOptions,
    channel_credentials,
    channel_options,
    consistency_pb,
    error_from_rpc,
    server_info,
    store_stats,
    ttl_of,
)
from lrukv_client._targets import Targets, parse_servers
from lrukv_client._tracing import aio_trace_interceptors, otel_installed
from lrukv_client.client import DEFAULT_GRPC_PORT, DEFAULT_GRPC_SERVER
from lrukv_client.errors import (
    DeadlineExceeded,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    Unreachable,
)
from lrukv_client.models import (
    Consistency,
    ServerInfo,
    StoreStats,
    TLSConfig,
    check_key,
    check_ttl,
    to_bytes,
)
from lrukv_client.retry import Retry
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc

__all__ = ["AsyncClient", "AsyncItemStream"]

R = TypeVar("R")


async def call_with_retry_async(
    retry: Retry,
    do: Callable[[float | None], Awaitable[R]],
    *,
    write: bool = False,
    timeout: float | None = None,
    redirect: Callable[[NotLeader], bool] | None = None,
    failover: Callable[[LrukvClientError], None] | None = None,
    reached: Callable[[], bool] | None = None,
    seeds: int = 1,
) -> R:
    """:meth:`Retry.call_with_retry` for coroutines: the same decisions
    (``RetryCall.on_failure``), with ``asyncio.sleep`` between attempts."""
    call = retry.begin(timeout)
    while True:
        try:
            return await do(call.attempt_timeout())
        except LrukvClientError as err:
            delay = call.on_failure(
                err,
                write=write,
                redirect=redirect,
                failover=failover,
                reached=reached,
                seeds=seeds,
            )
        if delay > 0:
            await asyncio.sleep(delay)


class AsyncClient:
    """An asyncio lrukv client over gRPC; arguments as for :class:`lrukv_client.Client`.

    Create and use it inside one running event loop (grpc.aio channels belong to
    the loop that made them).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_GRPC_SERVER,
        *,
        timeout: float | None = None,
        retry: Retry | None = None,
        tls: TLSConfig | None = None,
        consistency: Consistency | str = Consistency.DEFAULT,
        extra_options: ChannelOptions = (),
        token: str | None = None,
    ) -> None:
        self._token = check_token(token)
        self._targets = Targets(parse_servers(servers, default_port=DEFAULT_GRPC_PORT))
        self._timeout = timeout
        self._retry = retry if retry is not None else Retry()
        self._consistency = Consistency.parse(consistency)
        self._options = channel_options(tls, extra_options)
        self._credentials = channel_credentials(tls) if tls is not None else None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, Any] = {}
        self._closed = False

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every channel; open streams are cancelled. Idempotent."""
        self._closed = True
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            await channel.close(None)

    @property
    def server(self) -> str:
        """The address the next call goes to."""
        return self._targets.current

    async def put(
        self,
        key: str,
        value: bytes | str,
        *,
        ttl: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Store ``value`` under ``key``; see :meth:`lrukv_client.Client.put`."""
        request = kv_pb2.PutRequest(key=check_key(key), value=to_bytes(value))
        ttl = check_ttl(ttl)
        if ttl is not None:
            request.ttl_seconds = ttl
        await self._unary(
            lambda stub, t: stub.Put(request, timeout=t), key=key, write=True, timeout=timeout
        )

    async def get(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Return the value of ``key``; raise ``KeyNotFound`` if it is absent."""
        request = kv_pb2.GetRequest(key=check_key(key), consistency=self._level(consistency))
        response: kv_pb2.GetResponse = await self._unary(
            lambda stub, t: stub.Get(request, timeout=t), key=key, timeout=timeout
        )
        return response.value

    async def delete(self, key: str, *, timeout: float | None = None) -> bool:
        """Remove ``key``; return whether it existed."""
        request = kv_pb2.DeleteRequest(key=check_key(key))
        response: kv_pb2.DeleteResponse = await self._unary(
            lambda stub, t: stub.Delete(request, timeout=t), key=key, write=True, timeout=timeout
        )
        return response.existed

    async def keys(
        self, *, consistency: Consistency | str | None = None, timeout: float | None = None
    ) -> list[str]:
        """Every live key."""
        request = kv_pb2.GetKeysRequest(consistency=self._level(consistency))
        response: kv_pb2.GetKeysResponse = await self._unary(
            lambda stub, t: stub.GetKeys(request, timeout=t), timeout=timeout
        )
        return list(response.keys)

    async def servers(self, *, timeout: float | None = None) -> list[ServerInfo]:
        """The nodes of the cluster."""
        request = kv_pb2.GetServersRequest()
        response: kv_pb2.GetServersResponse = await self._unary(
            lambda stub, t: stub.GetServers(request, timeout=t), timeout=timeout
        )
        return [server_info(server) for server in response.servers]

    async def stats(self, *, timeout: float | None = None) -> StoreStats:
        """The node's size, capacity, limits and counters."""
        request = kv_pb2.StatsRequest()
        response: kv_pb2.StatsResponse = await self._unary(
            lambda stub, t: stub.Stats(request, timeout=t), timeout=timeout
        )
        return store_stats(response)

    async def ttl(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> float | None:
        """Seconds until ``key`` expires, or None; see :meth:`lrukv_client.Client.ttl`."""
        request = kv_pb2.TtlRequest(key=check_key(key), consistency=self._level(consistency))
        response: kv_pb2.TtlResponse = await self._unary(
            lambda stub, t: stub.Ttl(request, timeout=t), key=key, timeout=timeout
        )
        return ttl_of(response)

    async def exists(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Whether ``key`` is present (not a use)."""
        try:
            await self.ttl(key, consistency=consistency, timeout=timeout)
        except KeyNotFound:
            return False
        return True

    def items(
        self,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
        stream_timeout: float | None = None,
    ) -> AsyncItemStream:
        """Stream every live ``(key, value)``; see :meth:`lrukv_client.Client.items`.

        The stream opens (with retries, within ``timeout``) on the first
        ``__anext__``; ``aclose()`` or leaving ``async with`` cancels it."""
        request = kv_pb2.GetKeysValuesRequest(consistency=self._level(consistency))
        return AsyncItemStream(self, request, timeout, stream_timeout)

    # -- internals ----------------------------------------------------------------

    def _level(self, consistency: Consistency | str | None) -> kv_pb2.Consistency.ValueType:
        return consistency_pb(self._consistency if consistency is None else consistency)

    def _stub(self, target: str) -> Any:
        # Typed as Any: the generated KVStub's aio overload is a type-check-only class.
        if self._closed:
            raise LrukvClientError("the client is closed")
        stub = self._stubs.get(target)
        if stub is None:
            # The caller's trace context goes along when OpenTelemetry is installed.
            traced = aio_trace_interceptors() if otel_installed() else None
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(
                    target, self._credentials, self._options, interceptors=traced
                )
            else:
                channel = grpc.aio.insecure_channel(target, self._options, interceptors=traced)
            self._channels[target] = channel
            stub = self._stubs[target] = with_token(kv_pb2_grpc.KVStub(channel), self._token)
        return stub

    async def _unary(
        self,
        invoke: Callable[[Any, float | None], Awaitable[R]],
        *,
        key: str | None = None,
        write: bool = False,
        timeout: float | None = None,
    ) -> R:
        async def attempt(attempt_timeout: float | None) -> R:
            target = self._targets.current
            stub = self._stub(target)
            try:
                result = await invoke(stub, attempt_timeout)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, target=target, key=key)
                self._targets.reached |= not isinstance(error, Unreachable)
                raise error from exc
            self._targets.reached = True
            return result

        return await call_with_retry_async(
            self._retry,
            attempt,
            write=write,
            timeout=timeout if timeout is not None else self._timeout,
            redirect=self._redirect,
            failover=self._failover,
            reached=self._targets.has_reached,
            seeds=len(self._targets.seeds),
        )

    def _redirect(self, err: NotLeader) -> bool:
        if not err.leader_rpc:
            return False
        self._targets.follow(err.leader_rpc)
        return True

    def _failover(self, err: LrukvClientError) -> None:
        self._targets.fail_over()


class AsyncItemStream(AsyncIterator[tuple[str, bytes]]):
    """The async iterator :meth:`AsyncClient.items` returns."""

    def __init__(
        self,
        client: AsyncClient,
        request: kv_pb2.GetKeysValuesRequest,
        timeout: float | None,
        stream_timeout: float | None,
    ) -> None:
        self._client = client
        self._request = request
        self._timeout = timeout
        self._stream_timeout = stream_timeout
        self._call: Any = None
        self._target = ""
        self._first: kv_pb2.KeyValue | None = None
        self._done = False

    def __aiter__(self) -> AsyncItemStream:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        if self._done:
            raise StopAsyncIteration
        if self._call is None:
            await self._open()
            if self._first is None:
                await self.aclose()
                raise StopAsyncIteration
            first, self._first = self._first, None
            return first.key, first.value
        try:
            item = await self._call.read()
        except grpc.RpcError as exc:
            await self.aclose()
            raise error_from_rpc(exc, target=self._target) from exc
        if item is EOF:
            await self.aclose()
            raise StopAsyncIteration
        return item.key, item.value

    async def _open(self) -> None:
        client = self._client

        async def attempt(attempt_timeout: float | None) -> tuple[Any, str, Any]:
            target = client._targets.current
            call = client._stub(target).GetKeysValues(self._request, timeout=self._stream_timeout)
            try:
                first = await asyncio.wait_for(call.read(), attempt_timeout)
            except TimeoutError as exc:
                call.cancel()
                raise DeadlineExceeded(f"{target}: no item within {attempt_timeout:.3g} s") from exc
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, target=target)
                client._targets.reached |= not isinstance(error, Unreachable)
                raise error from exc
            client._targets.reached = True
            return call, target, first

        call, self._target, first = await call_with_retry_async(
            client._retry,
            attempt,
            timeout=self._timeout if self._timeout is not None else client._timeout,
            redirect=client._redirect,
            failover=client._failover,
            reached=client._targets.has_reached,
            seeds=len(client._targets.seeds),
        )
        self._call = call
        self._first = None if first is EOF else first

    async def aclose(self) -> None:
        """Cancel the stream if it is open. Idempotent."""
        self._done = True
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> AsyncItemStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
