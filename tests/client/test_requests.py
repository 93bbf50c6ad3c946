"""The request layer without I/O: the error table, request building, answer
decoding, and the batch plans (chunking, halving, atomic), driven by hand."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from lrukv_client import (
    BatchResult,
    BatchTooLarge,
    InvalidArgument,
    KeyNotFound,
    NotLeader,
    PermissionDenied,
    ServerError,
    Unavailable,
    ValueTooLarge,
)
from lrukv_client._grpc_common import error_from_status
from lrukv_client._grpc_wire import GrpcWire, pipeline_request, pipeline_result
from lrukv_client._http_wire import HttpRequest, HttpWire, batch_results, status_error
from lrukv_client._requests import (
    Call,
    ClientCore,
    Plan,
    batch_plan,
    chunks,
    drive,
    entry_size,
    error_for,
    put_entries,
)
from lrukv_client.models import Consistency
from lrukv_proto import ERROR_CODE_METADATA, LEADER_HTTP_HEADER, LEADER_RPC_METADATA
from lrukv_proto.v1 import kv_pb2

# -- the one error table -------------------------------------------------------------------


def test_the_wire_code_decides_over_the_status() -> None:
    # A 503 that says not_leader is a NotLeader; a 413 that says batch_too_large
    # is the precise BatchTooLarge, not just ValueTooLarge.
    assert isinstance(error_for("not_leader", Unavailable, message="m", status=503), NotLeader)
    error = error_for("batch_too_large", ValueTooLarge, message="m", status=413)
    assert type(error) is BatchTooLarge
    assert error.error_code == "batch_too_large"


def test_without_a_known_code_the_status_decides() -> None:
    error = error_for("something_new", PermissionDenied, message="n: no", status=403)
    assert type(error) is PermissionDenied and error.error_code == "something_new"
    unknown = error_for(None, None, message="n: boom", status=500)
    assert isinstance(unknown, ServerError) and unknown.code == 500
    assert str(unknown) == "n: boom (HTTP 500)"


def test_key_not_found_needs_the_key_of_the_call() -> None:
    found = error_for("key_not_found", None, message="m", status="NOT_FOUND", key="k")
    assert isinstance(found, KeyNotFound) and found.key == "k"
    # A call that names no key cannot mean "your key is missing": an odd answer.
    assert type(error_for("key_not_found", None, message="m", status="NOT_FOUND")) is ServerError


def test_grpc_errors_go_through_the_table() -> None:
    def status(code: grpc.StatusCode, wire: str | None, details: str = "d") -> Exception:
        metadata = [(ERROR_CODE_METADATA, wire)] if wire else []
        return error_from_status(code, details, metadata, target="n1")

    assert type(status(grpc.StatusCode.RESOURCE_EXHAUSTED, "batch_too_large")) is BatchTooLarge
    assert type(status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_streams")) is Unavailable
    assert type(status(grpc.StatusCode.INVALID_ARGUMENT, "invalid_key")) is InvalidArgument
    leader = error_from_status(
        grpc.StatusCode.FAILED_PRECONDITION,
        "not the leader",
        [(LEADER_RPC_METADATA, "l:1"), (ERROR_CODE_METADATA, "not_leader")],
        target="n1",
    )
    assert isinstance(leader, NotLeader) and leader.leader_rpc == "l:1"


class Answer:
    """An HTTP answer as the wire reads it (httpx.Response has these too)."""

    def __init__(self, status: int, body: Any = b"", headers: dict[str, str] | None = None):
        self.status_code = status
        self.headers = headers or {}
        self.content = body if isinstance(body, bytes) else json.dumps(body).encode()


def test_http_errors_go_through_the_same_table() -> None:
    too_large = Answer(413, {"error": {"code": "batch_too_large", "message": "10001 entries"}})
    error = status_error(too_large, "n1", None)
    assert type(error) is BatchTooLarge and str(error) == "n1: 10001 entries"
    redirect = status_error(Answer(307, headers={"Location": "http://l:8080/v1/k"}), "n1", "k")
    assert isinstance(redirect, NotLeader) and redirect.leader_http == "l:8080"
    busy = status_error(Answer(503, b"", {LEADER_HTTP_HEADER: "l:8080"}), "n1", None)
    assert isinstance(busy, NotLeader)
    assert type(status_error(Answer(503, b"overloaded"), "n1", None)) is Unavailable


# -- building requests, reading answers ---------------------------------------------------


def test_the_http_batch_body_carries_exact_bytes() -> None:
    call = HttpWire().batch(
        [{"op": "put", "key": "k", "value": base64.b64encode(b"\x00\xff").decode()}],
        level=Consistency.STALE,
    )
    request: HttpRequest = call.request
    assert (request.method, request.path, dict(request.params)) == (
        "POST",
        "/v1/util/batch",
        {"consistency": "stale"},
    )
    assert json.loads(request.content or b"") == {
        "ops": [{"op": "put", "key": "k", "value": "AP8="}],
        "atomic": False,
    }
    assert call.write is True  # a batch with a put is retried only as a write


def test_http_batch_results_decode_values_and_errors() -> None:
    answer = Answer(
        200,
        {
            "results": [
                {"op": "get", "key": "a", "found": True, "value": "AP8="},
                {"op": "get", "key": "z", "found": False},
                {"op": "delete", "key": "c", "existed": True},
                {"op": "put", "key": "", "error": {"code": "invalid_key", "message": "empty"}},
            ]
        },
    )
    a, z, c, bad = batch_results(answer, "n1")
    assert (a.found, a.value) == (True, b"\x00\xff")
    assert (z.found, z.value, z.ok) == (False, None, True)
    assert c.existed is True
    assert isinstance(bad.error, InvalidArgument) and bad.error.error_code == "invalid_key"
    with pytest.raises(ServerError):
        batch_results(Answer(200, {"nope": []}), "n1")


def test_grpc_batch_requests_and_results() -> None:
    wire = GrpcWire()
    entries = list(put_entries([("a", b"1"), ("b", "2", 5.0)], None))
    call = wire.put_many(entries, atomic=True)  # type: ignore[arg-type]
    assert call.method == "PutMany" and call.write and call.request.atomic
    first, second = call.request.entries
    assert not first.HasField("ttl_seconds") and second.ttl_seconds == 5.0
    response = kv_pb2.GetManyResponse(
        results=[
            kv_pb2.GetManyResult(key="a", found=True, value=b"v"),
            kv_pb2.GetManyResult(
                key="", error=kv_pb2.Error(code="invalid_key", message="empty", grpc_code=3)
            ),
        ]
    )
    found, refused = wire.get_many(["a", ""], Consistency.DEFAULT).decode(response, "n1")
    assert (found.found, found.value) == (True, b"v")
    assert isinstance(refused.error, InvalidArgument)


def test_pipeline_requests_and_answers() -> None:
    request = pipeline_request(7, "put", "k", value="v", ttl=2.0)
    assert (request.id, request.put.value, request.put.ttl_seconds) == (7, b"v", 2.0)
    missing = kv_pb2.PipelineResponse(
        id=7, error=kv_pb2.Error(code="key_not_found", message="gone", grpc_code=5)
    )
    assert pipeline_result(missing, "get", "k", "n1") == BatchResult("get", "k")
    with pytest.raises(InvalidArgument):
        pipeline_request(8, "get", "")


def test_per_call_metadata_is_one_place() -> None:
    core = ClientCore(
        ["n1:1"],
        timeout=None,
        retry=None,
        consistency="stale",
        leader_of=lambda err: err.leader_rpc,
        headers={"X-Tenant": "blue"},
    )
    assert core.call_metadata() == (("x-tenant", "blue"),)
    assert core.level(None) is Consistency.STALE


def test_put_entries_checks_each_item_in_order() -> None:
    items: Any = {"a": b"1", "": b"2", "c": 3}  # a value that is not bytes or str
    planned = list(put_entries(items, ttl=9.0))
    assert [type(p).__name__ for p in planned] == ["PutEntry", "BatchResult", "BatchResult"]
    assert planned[0].ttl == 9.0  # type: ignore[union-attr]
    refused = planned[1]
    assert isinstance(refused, BatchResult) and isinstance(refused.error, InvalidArgument)
    with pytest.raises(InvalidArgument):
        list(put_entries([], ttl=-1))


# -- batch plans ---------------------------------------------------------------------------


def _run(
    plan: Plan[list[BatchResult]], answer: Callable[[list[str]], list[BatchResult]]
) -> tuple[list[BatchResult], list[list[str]]]:
    """Drive ``plan`` with a fake transport; return its result and each request's keys."""
    sent: list[list[str]] = []

    def execute(call: Call[Any]) -> Any:
        keys = list(call.request)
        sent.append(keys)
        return answer(keys)

    return drive(plan, execute), sent


def _keys_plan(
    keys: list[str], *, limit: int = 100, atomic: bool = False, max_bytes: int = 1 << 20
) -> Plan[list[BatchResult]]:
    planned: list[str | BatchResult] = [
        BatchResult("put", k, error=InvalidArgument("bad")) if k == "" else k for k in keys
    ]
    return batch_plan(
        "put",
        planned,
        lambda part: Call("PutMany", part, lambda a, t: a, write=True),
        str,
        entry_size,
        atomic=atomic,
        max_entries=limit,
        max_bytes=max_bytes,
    )


def _ok(keys: list[str]) -> list[BatchResult]:
    return [BatchResult("put", k) for k in keys]


def test_a_batch_is_split_in_chunks_and_answered_in_input_order() -> None:
    keys = [f"k{i}" for i in range(7)]
    results, sent = _run(_keys_plan(keys, limit=3), _ok)
    assert sent == [keys[0:3], keys[3:6], keys[6:7]]
    assert [r.key for r in results] == keys


def test_items_refused_before_sending_keep_their_place() -> None:
    results, sent = _run(_keys_plan(["a", "", "b"]), _ok)
    assert sent == [["a", "b"]]
    assert [(r.key, r.ok) for r in results] == [("a", True), ("", False), ("b", True)]


def test_an_empty_batch_sends_nothing() -> None:
    assert _run(_keys_plan([]), _ok) == ([], [])


def test_batch_too_large_halves_the_chunks_until_the_server_takes_them() -> None:
    def server(keys: list[str]) -> list[BatchResult]:
        if len(keys) > 2:
            raise BatchTooLarge("too many")
        return _ok(keys)

    keys = [f"k{i}" for i in range(5)]
    results, sent = _run(_keys_plan(keys, limit=8), server)
    assert [len(s) for s in sent] == [5, 2, 2, 1]
    assert [r.key for r in results] == keys and all(r.ok for r in results)


def test_a_single_entry_over_the_limit_is_that_entrys_error() -> None:
    def server(keys: list[str]) -> list[BatchResult]:
        if "huge" in keys:
            raise BatchTooLarge("too many bytes")
        return _ok(keys)

    results, _ = _run(_keys_plan(["a", "huge", "b"], limit=1), server)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, BatchTooLarge)


def test_an_atomic_batch_is_never_split() -> None:
    keys = [f"k{i}" for i in range(5)]
    _results, sent = _run(_keys_plan(keys, limit=2, atomic=True), _ok)
    assert sent == [keys]

    def refuse(keys: list[str]) -> list[BatchResult]:
        raise BatchTooLarge("too many")

    with pytest.raises(BatchTooLarge):
        _run(_keys_plan(keys, limit=2, atomic=True), refuse)


def test_an_atomic_batch_with_a_refused_item_sends_nothing() -> None:
    with pytest.raises(InvalidArgument):
        _run(_keys_plan(["a", ""], atomic=True), _ok)


def test_a_short_answer_is_a_server_error() -> None:
    with pytest.raises(ServerError):
        _run(_keys_plan(["a", "b"]), lambda keys: _ok(keys)[:1])


def test_chunks_respect_the_byte_budget() -> None:
    assert chunks([5, 5, 5], max_entries=10, max_bytes=10) == [range(2), range(2, 3)]
    assert chunks([50], max_entries=10, max_bytes=10) == [range(1)]
