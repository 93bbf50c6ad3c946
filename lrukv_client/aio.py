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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import grpc
import grpc.aio
from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

from lrukv_client._api import AsyncApi
from lrukv_client._grpc_client import GrpcClientBase
from lrukv_client._grpc_common import (
    error_from_rpc,
)
from lrukv_client._grpc_wire import consistency_pb
from lrukv_client._lifecycle import AsyncClosing
from lrukv_client._requests import Call
from lrukv_client.errors import DeadlineExceeded, LrukvClientError, NotLeader
from lrukv_client.models import Consistency
from lrukv_client.pipeline import AsyncPipeline
from lrukv_client.retry import Retry
from lrukv_proto.v1 import kv_pb2

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


class AsyncClient(GrpcClientBase, AsyncApi):
    """An asyncio lrukv client over gRPC; arguments as for :class:`lrukv_client.Client`.

    Create and use it inside one running event loop (grpc.aio channels belong to
    the loop that made them).
    """

    channels: ClassVar[Any] = grpc.aio

    async def close(self) -> None:
        """Close every channel; open streams are cancelled. Idempotent."""
        for channel in self._take_channels():
            await channel.close(None)

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
        level = consistency_pb(self._core.level(consistency))
        request = kv_pb2.GetKeysValuesRequest(consistency=level)
        return AsyncItemStream(self, request, timeout, stream_timeout)

    def pipeline(self, *, window: int = 128, timeout: float | None = None) -> AsyncPipeline:
        """A pipeline on one ``Pipeline`` stream; see :meth:`lrukv_client.Client.pipeline`
        and :class:`~lrukv_client.pipeline.AsyncPipeline` (``f = await p.get(k)``)."""
        core = self._core
        target = core.targets.current

        def open_stream() -> Any:
            return self._stub(target).Pipeline(
                timeout=timeout, metadata=core.call_metadata() or None
            )

        return AsyncPipeline(open_stream, target, window=window, level=core.consistency)

    # -- internals ----------------------------------------------------------------

    async def _execute(self, call: Call[R], timeout: float | None) -> R:
        core = self._core

        async def attempt(attempt_timeout: float | None) -> R:
            target, pending = self._invoke(call, attempt_timeout)
            try:
                answer = await pending
            except grpc.RpcError as exc:
                raise self._failed(exc, target, call.key) from exc
            return self._decoded(call, answer, target)

        return await call_with_retry_async(
            core.retry, attempt, **core.retry_options(write=call.write, timeout=timeout)
        )


class AsyncItemStream(AsyncClosing, AsyncIterator[tuple[str, bytes]]):
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
        core = client._core

        async def attempt(attempt_timeout: float | None) -> tuple[Any, str, Any]:
            target = core.targets.current
            call = client._stub(target).GetKeysValues(
                self._request, timeout=self._stream_timeout, metadata=core.call_metadata() or None
            )
            try:
                first = await asyncio.wait_for(call.read(), attempt_timeout)
            except TimeoutError as exc:
                call.cancel()
                raise DeadlineExceeded(f"{target}: no item within {attempt_timeout:.3g} s") from exc
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, target=target)
                core.answered(error)
                raise error from exc
            core.answered(None)
            return call, target, first

        call, self._target, first = await call_with_retry_async(
            core.retry, attempt, **core.retry_options(write=False, timeout=self._timeout)
        )
        self._call = call
        self._first = None if first is EOF else first

    async def aclose(self) -> None:
        """Cancel the stream if it is open. Idempotent."""
        self._done = True
        if self._call is not None:
            self._call.cancel()

    async def close(self) -> None:
        """The same as :meth:`aclose` (for ``async with``)."""
        await self.aclose()
