"""The batch methods of ``lrukv.v1.KV``: GetMany, PutMany, DeleteMany and Pipeline.

Each is a thin layer over ``KVService.get_many`` / ``write_many`` (semantics in
:mod:`lrukv_server.service.batch` and docs/api.md, "Batches"). Per-key failures
are ``Error`` messages whose ``code`` and ``grpc_code`` are what the same
failure answers as a single call (one error table,
:mod:`lrukv_server.api.status`).

Limits: a request over ``--max-batch-entries`` or ``--max-batch-bytes`` is
refused whole with RESOURCE_EXHAUSTED / ``batch_too_large`` before the service
is called (its size is measured by the deserializer, on the bytes received).

Pipeline
--------
A bidirectional stream of ordinary requests, each answered with its id. Two
threads serve one pipeline: a *reader* takes requests off the stream into a
bounded queue of :data:`PIPELINE_WINDOW` requests, and the handler's pool thread
takes whatever has arrived, groups it into runs (consecutive puts and deletes
become ONE ``write_many``, one command; consecutive gets of one consistency
level ONE ``get_many``), runs them in order and sends the answers, in request
order. So a client need not wait for answers, the server works on up to a
window of requests at once, and a run is applied as one batch.

Bounds: when the client stops reading answers, the handler waits for HTTP/2
flow control, stops taking requests, the window fills and the reader stops
reading (backpressure reaches the client). A pipeline holds one of the stream
slots shared with GetKeysValues (``--grpc-max-streams``) and the same watchdog
cancels it when its client takes no answer for ``--grpc-stream-send-timeout``.
When the call ends for any reason (client gone, cancelled, server stopping),
both threads notice within a fraction of a second and end; a write run being
applied finishes (it holds no lock between calls), so writers never stall.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from lrukv.errors import KeyNotFound
from lrukv_proto.v1 import kv_pb2
from lrukv_server.api.batch_limits import BatchLimits
from lrukv_server.api.grpc_server import Malformed, _abort, _consistency, _malformed, _parser
from lrukv_server.api.grpc_streams import StreamLimits
from lrukv_server.api.status import INTERNAL, message_of, status_of
from lrukv_server.errors import BatchTooLarge, InvalidRequest
from lrukv_server.service.base import KVService
from lrukv_server.service.batch import DeleteOp, PutOp, WriteOp

__all__ = ["PIPELINE_WINDOW", "batch_method_handlers", "error_message"]

log = logging.getLogger(__name__)

PIPELINE_WINDOW = 256
"""Requests of one pipeline read ahead of their answers, at most."""

_POLL_SECONDS = 0.1  # how soon a pipeline's threads notice that its call ended
_END = object()  # the reader's last word


class _Oversized:
    """What a batch deserializer returns for a message over ``max_bytes``."""

    __slots__ = ("error",)

    def __init__(self, error: BatchTooLarge) -> None:
        self.error = error


def _batch_parser(message_type: type[Message], limits: BatchLimits) -> Callable[[bytes], Any]:
    parse = message_type.FromString
    max_bytes = limits.max_bytes

    def deserialize(data: bytes) -> Any:
        if len(data) > max_bytes:
            return _Oversized(BatchTooLarge(limits.too_many_bytes(len(data))))
        try:
            return parse(data)
        except DecodeError as exc:
            return Malformed(str(exc) or "the request is not a valid protobuf message")

    return deserialize


def error_message(exc: BaseException) -> kv_pb2.Error:
    """*exc* as a per-key ``Error``: the error table's code, message and gRPC code."""
    row = status_of(exc)
    if row is INTERNAL:
        log.error("unexpected error in a batch", exc_info=exc)
    return kv_pb2.Error(
        code=row.code, message=message_of(exc, row), grpc_code=row.grpc_code.value[0]
    )


def _check(request: Any, method: str, context: grpc.ServicerContext) -> None:
    """Refuse a malformed or oversized request whole."""
    if isinstance(request, Malformed):
        _malformed(context, method, request)
    if isinstance(request, _Oversized):
        _abort(context, request.error)


def _put_op(request: kv_pb2.PutRequest | kv_pb2.PutManyEntry) -> PutOp:
    ttl = request.ttl_seconds if request.HasField("ttl_seconds") else None
    return PutOp(request.key, request.value, ttl)


class _BatchHandlers:
    def __init__(self, service: KVService, limits: BatchLimits, streams: StreamLimits) -> None:
        self._service = service
        self._limits = limits
        self._streams = streams

    def get_many(self, request: Any, context: grpc.ServicerContext) -> kv_pb2.GetManyResponse:
        _check(request, "GetMany", context)
        try:
            keys = request.keys
            self._limits.check_entries(len(keys))
            results = self._service.get_many(
                keys,
                consistency=_consistency(request.consistency),
                max_bytes=self._limits.max_bytes,
            )
        except Exception as exc:
            _abort(context, exc)
        # Results are added in place: a list of messages handed to the constructor
        # would be copied, which costs three times as much.
        response = kv_pb2.GetManyResponse()
        add = response.results.add
        for key, value, error in results:
            if value is not None:
                add(key=key, found=True, value=value)
            elif error is None:
                add(key=key)
            else:
                add(key=key, error=error_message(error))
        return response

    def put_many(self, request: Any, context: grpc.ServicerContext) -> kv_pb2.PutManyResponse:
        _check(request, "PutMany", context)
        try:
            entries = request.entries
            self._limits.check_entries(len(entries))
            results = self._service.write_many(
                [_put_op(entry) for entry in entries], atomic=request.atomic
            )
        except Exception as exc:
            _abort(context, exc)
        response = kv_pb2.PutManyResponse()
        add = response.results.add
        for key, _existed, error in results:
            if error is None:
                add(key=key)
            else:
                add(key=key, error=error_message(error))
        return response

    def delete_many(self, request: Any, context: grpc.ServicerContext) -> kv_pb2.DeleteManyResponse:
        _check(request, "DeleteMany", context)
        try:
            keys = request.keys
            self._limits.check_entries(len(keys))
            results = self._service.write_many(
                [DeleteOp(key) for key in keys], atomic=request.atomic
            )
        except Exception as exc:
            _abort(context, exc)
        response = kv_pb2.DeleteManyResponse()
        add = response.results.add
        for key, existed, error in results:
            if error is None:
                add(key=key, existed=existed)
            else:
                add(key=key, error=error_message(error))
        return response

    # --------------------------------------------------------------- pipeline

    def pipeline(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.PipelineResponse]:
        try:
            slot = self._streams.acquire(context)
        except Exception as exc:
            _abort(context, exc)
        over = threading.Event()
        context.add_callback(over.set)
        inbound: queue.Queue[object] = queue.Queue(maxsize=PIPELINE_WINDOW)
        reader = threading.Thread(
            target=_read_requests,
            args=(requests, inbound, over),
            name="lrukv-pipeline-reader",
            daemon=True,
        )
        reader.start()
        clock = time.monotonic
        max_run = min(self._limits.max_entries, PIPELINE_WINDOW)
        try:
            ended = False
            while not ended:
                first = _take(inbound, over)
                if first is _END:
                    return
                arrived = [first]
                while len(arrived) < max_run:  # whatever else has arrived, without waiting
                    try:
                        more = inbound.get_nowait()
                    except queue.Empty:
                        break
                    if more is _END:
                        ended = True
                        break
                    arrived.append(more)
                for answer in self._run(arrived, context):
                    slot.sending_since = clock()
                    yield answer
                    slot.sending_since = None
        finally:
            over.set()  # the reader stops at its next poll
            slot.release()

    def _run(
        self, arrived: list[object], context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.PipelineResponse]:
        """Answer *arrived* in order, a run of like requests at a time."""
        start = 0
        while start < len(arrived):
            first = arrived[start]
            if isinstance(first, Malformed):
                _malformed(context, "Pipeline", first)  # ends the stream: its id is unknown
            assert isinstance(first, kv_pb2.PipelineRequest)
            kind = first.WhichOneof("request")
            stop = start + 1
            if kind == "get":
                level = first.get.consistency
                while stop < len(arrived) and _is_get(arrived[stop], level):
                    stop += 1
                yield from self._gets(arrived[start:stop])  # type: ignore[arg-type]
            elif kind in ("put", "delete"):
                while stop < len(arrived) and _is_write(arrived[stop]):
                    stop += 1
                yield from self._writes(arrived[start:stop])  # type: ignore[arg-type]
            else:
                refusal = InvalidRequest("a pipeline request needs one of get, put or delete")
                yield kv_pb2.PipelineResponse(id=first.id, error=error_message(refusal))
            start = stop

    def _gets(self, run: Sequence[kv_pb2.PipelineRequest]) -> Iterator[kv_pb2.PipelineResponse]:
        answer = kv_pb2.PipelineResponse
        try:
            level = _consistency(run[0].get.consistency)
            results = self._service.get_many([r.get.key for r in run], consistency=level)
        except Exception as exc:  # the node's (or the level's) error: every request's answer
            failure = error_message(exc)
            for request in run:
                yield answer(id=request.id, error=failure)
            return
        for request, result in zip(run, results, strict=True):
            if result.value is not None:
                yield answer(id=request.id, get=kv_pb2.GetResponse(value=result.value))
            else:
                missing = result.error if result.error is not None else KeyNotFound(result.key)
                yield answer(id=request.id, error=error_message(missing))

    def _writes(self, run: Sequence[kv_pb2.PipelineRequest]) -> Iterator[kv_pb2.PipelineResponse]:
        answer = kv_pb2.PipelineResponse
        ops: list[WriteOp] = [
            _put_op(r.put) if r.WhichOneof("request") == "put" else DeleteOp(r.delete.key)
            for r in run
        ]
        try:
            results = self._service.write_many(ops)
        except Exception as exc:
            failure = error_message(exc)
            for request in run:
                yield answer(id=request.id, error=failure)
            return
        for request, op, result in zip(run, ops, results, strict=True):
            if result.error is not None:
                yield answer(id=request.id, error=error_message(result.error))
            elif isinstance(op, PutOp):
                yield answer(id=request.id, put=kv_pb2.PutResponse())
            else:
                yield answer(id=request.id, delete=kv_pb2.DeleteResponse(existed=result.existed))


def _is_get(request: object, level: int) -> bool:
    return (
        isinstance(request, kv_pb2.PipelineRequest)
        and request.WhichOneof("request") == "get"
        and request.get.consistency == level
    )


def _is_write(request: object) -> bool:
    return isinstance(request, kv_pb2.PipelineRequest) and request.WhichOneof("request") in (
        "put",
        "delete",
    )


def _read_requests(
    requests: Iterator[Any], inbound: queue.Queue[object], over: threading.Event
) -> None:
    """The reader thread: requests into *inbound* until the stream or the call ends."""
    try:
        for request in requests:
            if not _offer(inbound, request, over):
                return
    except Exception:  # grpc.RpcError and friends once the call is cancelled
        pass
    finally:
        _offer(inbound, _END, over)


def _offer(inbound: queue.Queue[object], item: object, over: threading.Event) -> bool:
    """Put *item*, waiting while the window is full; False once the call is over."""
    while not over.is_set():
        try:
            inbound.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _take(inbound: queue.Queue[object], over: threading.Event) -> object:
    """The next request, or _END when the stream or the call is over."""
    while True:
        try:
            return inbound.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if over.is_set():
                return _END


def batch_method_handlers(
    service: KVService, *, limits: BatchLimits, streams: StreamLimits
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The GetMany, PutMany, DeleteMany and Pipeline handlers over *service*."""
    h = _BatchHandlers(service, limits, streams)
    unary = grpc.unary_unary_rpc_method_handler

    return {
        "GetMany": unary(
            h.get_many,
            request_deserializer=_batch_parser(kv_pb2.GetManyRequest, limits),
            response_serializer=kv_pb2.GetManyResponse.SerializeToString,
        ),
        "PutMany": unary(
            h.put_many,
            request_deserializer=_batch_parser(kv_pb2.PutManyRequest, limits),
            response_serializer=kv_pb2.PutManyResponse.SerializeToString,
        ),
        "DeleteMany": unary(
            h.delete_many,
            request_deserializer=_batch_parser(kv_pb2.DeleteManyRequest, limits),
            response_serializer=kv_pb2.DeleteManyResponse.SerializeToString,
        ),
        "Pipeline": grpc.stream_stream_rpc_method_handler(
            h.pipeline,
            request_deserializer=_parser(kv_pb2.PipelineRequest),  # the server's message limit
            response_serializer=kv_pb2.PipelineResponse.SerializeToString,
        ),
    }
