"""Pipelines: many requests in flight on one connection, answers as futures.

``with kv.pipeline() as p:`` gives a pipeline whose ``get``, ``put`` and
``delete`` return at once with a future; each future's ``result()`` is what the
single call would return (``bytes``, ``None``, ``bool``) or raises what it would
raise (``KeyNotFound``, ``InvalidArgument``…). Leaving the block waits for
every answer. A request's own failure is only its future's; the stream itself
failing (the node went away) fails every unanswered future with that error and
is raised when the block ends, so a lost write is never silent.

* :class:`Pipeline` (``Client``): the gRPC ``Pipeline`` stream; at most
  ``window`` requests unanswered (a call blocks while the window is full).
* :class:`AsyncPipeline` (``AsyncClient``): the same on grpc.aio; its methods
  are coroutines that wait for room in the window and return the future.
* :class:`HttpPipeline` (``HttpClient``): collects requests and sends each
  ``window`` of them as one ``POST /v1/util/batch`` (and the rest at the end,
  or when a future's outcome is asked for first).

Pipelines are not retried and do not follow a leader: a request a follower
refuses fails with ``NotLeader`` in its future. Use a pipeline from one thread
(or one task) at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import grpc

from lrukv_client._grpc_common import error_from_rpc
from lrukv_client._grpc_wire import pipeline_request, pipeline_result
from lrukv_client._http_wire import batch_op
from lrukv_client._lifecycle import AsyncClosing, Closing
from lrukv_client._requests import Call
from lrukv_client.errors import KeyNotFound, LrukvClientError, ServerError
from lrukv_client.models import BatchResult, Consistency, check_key, check_ttl, to_bytes
from lrukv_proto.v1 import kv_pb2

__all__ = ["AsyncPipeline", "HttpPipeline", "Pipeline"]

AnyFuture = Future[Any] | asyncio.Future[Any]


def settle(future: AnyFuture, result: BatchResult) -> None:
    """Give ``future`` what the single call would have returned or raised."""
    if future.done():
        return
    if result.error is not None:
        future.set_exception(result.error)
    elif result.op == "get":
        if result.found and result.value is not None:
            future.set_result(result.value)
        else:
            future.set_exception(KeyNotFound(result.key))
    elif result.op == "delete":
        future.set_result(result.existed)
    else:
        future.set_result(None)


def _fail(future: AnyFuture, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class _StreamPipeline:
    """What the blocking and the asyncio stream pipelines share: the requests
    waiting for an answer by id, and what the end of the stream does to them."""

    def __init__(self, open_stream: Any, target: str, window: int, level: Consistency) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._open = open_stream
        self.target = target
        self._level = level
        self._pending: dict[int, tuple[Any, str, str]] = {}
        self._ids = itertools.count(1)
        self._call: Any = None
        self._failure: LrukvClientError | None = None
        self._closed = False

    @property
    def failed(self) -> bool:
        """Whether the stream broke (every later request fails at once)."""
        return self._failure is not None

    def _level_of(self, consistency: Consistency | str | None) -> Consistency:
        return self._level if consistency is None else Consistency.parse(consistency)

    def _answer(self, response: kv_pb2.PipelineResponse) -> bool:
        """Settle the future of ``response``; False if no request has its id."""
        entry = self._pending.pop(response.id, None)
        if entry is None:
            return False  # an id we did not send (or answered twice): nothing to match
        future, op, key = entry
        settle(future, pipeline_result(response, op, key, self.target))
        return True

    def _end(self, failure: LrukvClientError | None) -> int:
        """The stream ended (``failure``: how). Fail every unanswered future with
        the failure (a stream that ended early without one is a failure too);
        return how many there were."""
        if failure is None and self._pending:
            failure = ServerError(
                f"{self.target}: the pipeline stream ended with "
                f"{len(self._pending)} requests unanswered"
            )
        if failure is not None:
            self._failure = failure
        pending, self._pending = list(self._pending.values()), {}
        for future, _, _ in pending:
            _fail(future, failure or ServerError("pipeline ended"))
        return len(pending)


class Pipeline(_StreamPipeline, Closing):
    """A pipeline on a gRPC ``Pipeline`` stream (see the module doc).

    ``open_stream(requests)`` starts the stream call on the node; ``window``
    bounds the unanswered requests.
    """

    def __init__(
        self,
        open_stream: Callable[[Iterator[kv_pb2.PipelineRequest]], Any],
        target: str,
        *,
        window: int = 128,
        level: Consistency = Consistency.DEFAULT,
    ) -> None:
        super().__init__(open_stream, target, window, level)
        self._room = threading.Semaphore(window)
        self._outgoing: queue.SimpleQueue[kv_pb2.PipelineRequest | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # -- the requests -------------------------------------------------------------------

    def get(self, key: str, *, consistency: Consistency | str | None = None) -> Future[bytes]:
        """Read ``key``: the future's result is its value, or it raises ``KeyNotFound``."""
        return self._submit("get", key, level=self._level_of(consistency))

    def put(self, key: str, value: bytes | str, *, ttl: float | None = None) -> Future[None]:
        """Store ``value`` under ``key``: the future's result is None once acknowledged."""
        return self._submit("put", key, value=value, ttl=ttl)

    def delete(self, key: str) -> Future[bool]:
        """Remove ``key``: the future's result says whether it existed."""
        return self._submit("delete", key)

    def _submit(self, op: str, key: str, **fields: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self._closed:
            raise LrukvClientError("the pipeline is closed")
        self._start()
        request_id = next(self._ids)
        try:
            request = pipeline_request(request_id, op, key, **fields)
        except LrukvClientError as err:  # refused before sending: only this request's
            future.set_exception(err)
            return future
        self._room.acquire()
        with self._lock:
            if self._failure is not None:
                self._room.release()
                future.set_exception(self._failure)
                return future
            self._pending[request_id] = (future, op, key)
        self._outgoing.put(request)
        return future

    # -- the stream ---------------------------------------------------------------------

    def _requests(self) -> Iterator[kv_pb2.PipelineRequest]:
        while (request := self._outgoing.get()) is not None:
            yield request

    def _start(self) -> None:
        if self._reader is not None:
            return
        self._call = self._open(self._requests())
        self._reader = threading.Thread(target=self._read, name="lrukv-pipeline", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        failure: LrukvClientError | None = None
        try:
            for response in self._call:
                with self._lock:
                    answered = self._answer(response)
                if answered:
                    self._room.release()
        except grpc.RpcError as exc:
            failure = error_from_rpc(exc, target=self.target)
        except Exception as exc:  # a bug must fail the futures, not leave them waiting
            failure = ServerError(f"{self.target}: pipeline reader failed: {exc!r}")
        with self._lock:
            ended = self._end(failure)
        for _ in range(ended):
            self._room.release()

    def close(self) -> None:
        """Send no more, wait for every answer; raise the stream's failure, if any
        request was lost to it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reader is None:
            return
        self._outgoing.put(None)  # half-close: the server answers what it has, then ends
        self._reader.join()
        if self._failure is not None:
            raise self._failure

    def cancel(self) -> None:
        """Abandon the stream: unanswered futures fail (``CANCELLED``). Idempotent."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        self._outgoing.put(None)
        if self._reader is not None:
            self._reader.join()

    def abandon(self) -> None:
        """Leaving the block on an exception cancels: no waiting for answers."""
        self.cancel()


class AsyncPipeline(_StreamPipeline, AsyncClosing):
    """:class:`Pipeline` for ``AsyncClient``: ``f = await p.get("k")`` waits for
    room in the window and returns an ``asyncio.Future``."""

    def __init__(
        self,
        open_stream: Callable[[], Any],
        target: str,
        *,
        window: int = 128,
        level: Consistency = Consistency.DEFAULT,
    ) -> None:
        super().__init__(open_stream, target, window, level)
        self._room = asyncio.Semaphore(window)
        self._reader: asyncio.Task[None] | None = None

    async def get(
        self, key: str, *, consistency: Consistency | str | None = None
    ) -> asyncio.Future[bytes]:
        """Read ``key``; see :meth:`Pipeline.get`."""
        return await self._submit("get", key, level=self._level_of(consistency))

    async def put(
        self, key: str, value: bytes | str, *, ttl: float | None = None
    ) -> asyncio.Future[None]:
        """Store ``value`` under ``key``; see :meth:`Pipeline.put`."""
        return await self._submit("put", key, value=value, ttl=ttl)

    async def delete(self, key: str) -> asyncio.Future[bool]:
        """Remove ``key``; see :meth:`Pipeline.delete`."""
        return await self._submit("delete", key)

    async def _submit(self, op: str, key: str, **fields: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            raise LrukvClientError("the pipeline is closed")
        request_id = next(self._ids)
        try:
            request = pipeline_request(request_id, op, key, **fields)
        except LrukvClientError as err:
            future.set_exception(err)
            return future
        await self._room.acquire()
        if self._failure is not None:
            self._room.release()
            future.set_exception(self._failure)
            return future
        if self._call is None:
            self._call = self._open()
            self._reader = asyncio.create_task(self._read())
        self._pending[request_id] = (future, op, key)
        with contextlib.suppress(grpc.RpcError):  # the reader sees it and fails the futures
            await self._call.write(request)
        return future

    async def _read(self) -> None:
        failure: LrukvClientError | None = None
        try:
            while (response := await self._call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
                if self._answer(response):
                    self._room.release()
        except grpc.RpcError as exc:
            failure = error_from_rpc(exc, target=self.target)
        for _ in range(self._end(failure)):
            self._room.release()

    async def close(self) -> None:
        """Send no more, wait for every answer; raise the stream's failure if any
        request was lost to it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._call is None or self._reader is None:
            return
        with contextlib.suppress(grpc.RpcError):  # the reader reports it
            await self._call.done_writing()
        await self._reader
        if self._failure is not None:
            raise self._failure

    async def cancel(self) -> None:
        """Abandon the stream; unanswered futures fail. Idempotent."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            await self._reader

    async def abandon(self) -> None:
        """Leaving the block on an exception cancels: no waiting for answers."""
        await self.cancel()


class _FlushingFuture(Future[Any]):
    """A future of an HTTP pipeline: asking for its outcome before it is known
    sends what was collected, so ``f.result()`` inside the block never waits
    for a batch that is only sent when the block ends."""

    def __init__(self, flush: Callable[[], None]) -> None:
        super().__init__()
        self._flush = flush

    def result(self, timeout: float | None = None) -> Any:
        if not self.done():
            self._flush()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self._flush()
        return super().exception(timeout)


class HttpPipeline(Closing):
    """A pipeline for ``HttpClient``: requests are collected and sent ``window``
    at a time as one ``POST /v1/util/batch`` (not atomic: each op is judged on
    its own, in order). ``execute(call)`` sends one batch with the client's
    retries (a batch with writes is retried as a write)."""

    def __init__(
        self,
        execute: Callable[[Call[list[BatchResult]]], list[BatchResult]],
        build: Callable[[list[dict[str, Any]], Consistency], Call[list[BatchResult]]],
        *,
        window: int = 128,
        level: Consistency = Consistency.DEFAULT,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._execute = execute
        self._build = build
        self._window = window
        self._level = level
        self._ops: list[dict[str, Any]] = []
        self._futures: list[Future[Any]] = []
        self._failure: LrukvClientError | None = None
        self._closed = False

    def get(self, key: str, *, consistency: Consistency | str | None = None) -> Future[bytes]:
        """Read ``key``; see :meth:`Pipeline.get`. A consistency other than the
        pipeline's first sends what was collected before."""
        level = self._level if consistency is None else Consistency.parse(consistency)
        if level is not self._level:
            self.flush()
            self._level = level
        return self._add(lambda: batch_op("get", check_key(key)))

    def put(self, key: str, value: bytes | str, *, ttl: float | None = None) -> Future[None]:
        """Store ``value`` under ``key``; see :meth:`Pipeline.put`."""
        return self._add(lambda: batch_op("put", check_key(key), to_bytes(value), check_ttl(ttl)))

    def delete(self, key: str) -> Future[bool]:
        """Remove ``key``; see :meth:`Pipeline.delete`."""
        return self._add(lambda: batch_op("delete", check_key(key)))

    def _add(self, build_op: Callable[[], dict[str, Any]]) -> Future[Any]:
        if self._closed:
            raise LrukvClientError("the pipeline is closed")
        future: Future[Any] = _FlushingFuture(self.flush)
        try:
            op = build_op()
        except LrukvClientError as err:
            future.set_exception(err)
            return future
        self._ops.append(op)
        self._futures.append(future)
        if len(self._ops) >= self._window:
            self.flush()
        return future

    @property
    def failed(self) -> bool:
        """Whether a batch failed as a whole (the pipeline itself goes on)."""
        return False

    def flush(self) -> None:
        """Send what was collected now, and settle its futures."""
        ops, futures, self._ops, self._futures = self._ops, self._futures, [], []
        if not ops:
            return
        try:
            results = self._execute(self._build(ops, self._level))
        except LrukvClientError as err:
            self._failure = self._failure or err
            for future in futures:
                _fail(future, err)
            return
        for future, result in zip(futures, results, strict=False):
            settle(future, result)
        for future in futures[len(results) :]:
            _fail(future, ServerError("the batch answer has fewer results than requests"))

    def close(self) -> None:
        """Send the rest and settle every future; raise the first batch that
        failed as a whole. Idempotent."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._failure is not None:
            raise self._failure

    def abandon(self) -> None:
        """Leaving the block on an exception sends nothing more: the collected
        requests' futures are cancelled."""
        self._closed = True
        for future in self._futures:
            future.cancel()
