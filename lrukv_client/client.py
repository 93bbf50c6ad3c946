"""``Client``: the blocking gRPC client.

One channel per node address, created on first use and reused by every call
(and every thread: a Client may be shared). Calls are retried, redirected to
the leader and bounded by a deadline as ``lrukv_client.retry`` describes.

>>> with Client("127.0.0.1:50051") as kv:  # doctest: +SKIP
...     kv.put("key-a", b"Hello, key-value store!")
...     kv.get("key-a")
b'Hello, key-value store!'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from lrukv_client._api import SyncApi
from lrukv_client._grpc_client import DEFAULT_GRPC_PORT, DEFAULT_GRPC_SERVER, GrpcClientBase
from lrukv_client._grpc_common import (
    error_from_rpc,
)
from lrukv_client._grpc_wire import consistency_pb
from lrukv_client._requests import (
    Call,
)
from lrukv_client.errors import (
    DeadlineExceeded,
    LrukvClientError,
)
from lrukv_client.models import Consistency
from lrukv_client.pipeline import Pipeline
from lrukv_client.stream import ItemStream
from lrukv_proto.v1 import kv_pb2

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_GRPC_SERVER", "Client"]


R = TypeVar("R")
# An opened item stream: the call (to cancel it), its iterator, the first item, the node.
_OpenStream = tuple[grpc.Call, Iterator[kv_pb2.KeyValue], kv_pb2.KeyValue | None, str]


class Client(GrpcClientBase, SyncApi):
    """A blocking lrukv client over gRPC.

    ``servers``: ``"host:port"``, a comma-separated list or a sequence of seeds;
    the client starts with the first, follows the leader it is pointed to, and
    moves to the next seed when a node is unavailable.
    ``timeout``: default deadline of each call in seconds, retries included;
    None takes the retry policy's (10 s unless ``retry`` says otherwise).
    ``retry``: a :class:`~lrukv_client.retry.Retry`; ``Retry.disabled()`` for none.
    ``tls``: a :class:`~lrukv_client.models.TLSConfig` turns TLS on.
    ``consistency``: the default level of reads.
    ``extra_options``: extra gRPC channel arguments; they override ours.
    ``metadata``: extra gRPC metadata sent with every call; ``token``: a bearer
    token, sent as ``authorization: Bearer <token>`` metadata on every call (for a
    server with ``--auth-policy``).
    ``batch_size`` / ``batch_bytes``: at most this many entries / bytes per
    request of ``put_many``, ``get_many`` and ``delete_many``.
    """

    def close(self) -> None:
        """Close every channel. Open item streams are cancelled. Idempotent."""
        for channel in self._take_channels():
            channel.close()

    # -- streams ------------------------------------------------------------------

    def items(
        self,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
        stream_timeout: float | None = None,
    ) -> ItemStream:
        """Stream every live ``(key, value)``, shard by shard.

        Opening the stream (up to its first item) is retried like any read and
        bounded by ``timeout``. After the first item a failure is raised from the
        iterator, not retried: restarting would repeat items. ``stream_timeout``
        bounds the whole stream (None: no limit). Close the returned
        :class:`~lrukv_client.stream.ItemStream` to stop early.
        """
        core = self._core
        request = kv_pb2.GetKeysValuesRequest(consistency=consistency_pb(core.level(consistency)))

        def open_stream(attempt_timeout: float | None) -> _OpenStream:
            target = core.targets.current
            call = self._stub(target).GetKeysValues(
                request, timeout=stream_timeout, metadata=core.call_metadata() or None
            )
            pending = iter(call)
            try:
                first = _first_item(call.cancel, pending, attempt_timeout, target)
            except LrukvClientError as err:
                core.answered(err)
                raise
            core.answered(None)
            return call, pending, first, target

        call, pending, first, target = core.retry.call_with_retry(
            open_stream, **core.retry_options(write=False, timeout=timeout)
        )
        return ItemStream(_pairs(pending, first, target), call.cancel)

    def pipeline(self, *, window: int = 128, timeout: float | None = None) -> Pipeline:
        """A pipeline on one ``Pipeline`` stream: requests go without waiting for
        each answer, at most ``window`` unanswered at a time. See
        :class:`~lrukv_client.pipeline.Pipeline`.

        ``with kv.pipeline() as p: f = p.get("k"); p.put("k2", b"v")`` — then
        ``f.result()`` after (or inside) the block."""
        core = self._core
        target = core.targets.current

        def open_stream(requests: Iterator[kv_pb2.PipelineRequest]) -> Any:
            return self._stub(target).Pipeline(
                requests, timeout=timeout, metadata=core.call_metadata() or None
            )

        return Pipeline(open_stream, target, window=window, level=core.consistency)

    # -- internals ----------------------------------------------------------------

    def _execute(self, call: Call[R], timeout: float | None) -> R:
        """Make ``call`` with retries and redirects: each attempt on the current node."""
        core = self._core

        def attempt(attempt_timeout: float | None) -> R:
            target, answer = self._invoke(call, attempt_timeout)
            return self._decoded(call, answer, target)

        return core.retry.call_with_retry(
            attempt, **core.retry_options(write=call.write, timeout=timeout)
        )


def _first_item(
    cancel: Callable[[], object],
    pending: Iterator[kv_pb2.KeyValue],
    attempt_timeout: float | None,
    target: str,
) -> kv_pb2.KeyValue | None:
    """Wait for the stream's first item (None: the store is empty), at most
    ``attempt_timeout`` seconds: a timer cancels a stream that does not start."""
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        cancel()

    timer = threading.Timer(attempt_timeout, expire) if attempt_timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        return next(pending)
    except StopIteration:
        return None
    except grpc.RpcError as exc:
        if timed_out.is_set():
            raise DeadlineExceeded(f"{target}: no item within {attempt_timeout:.3g} s") from exc
        raise error_from_rpc(exc, target=target) from exc
    finally:
        if timer is not None:
            timer.cancel()


def _pairs(
    pending: Iterator[kv_pb2.KeyValue], first: kv_pb2.KeyValue | None, target: str
) -> Iterator[tuple[str, bytes]]:
    if first is None:
        return
    yield first.key, first.value
    try:
        for item in pending:
            yield item.key, item.value
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, target=target) from exc
