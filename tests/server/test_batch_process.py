"""Batches against the real ``lrukv-server``, over both transports: GetMany, PutMany,
DeleteMany, the Pipeline stream and ``POST /v1/util/batch``.

Per-key results whose codes are what a single call answers, empty batches,
duplicate keys, order of application, recency, the batch limits (refused whole,
nothing changed), atomic batches, hostile bodies, and pipelines whose client
stops reading or vanishes (writers go on, the stream slot comes back).
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.harness import REPO_ROOT, ServerProcess, start_server
from tests.server.grpc_util import error_code

VALUE_LIMIT = 4096
MAX_ENTRIES = 100
MAX_BATCH_BYTES = 256 * 1024
TIMEOUT = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("batch"),
        "--max-value-bytes",
        str(VALUE_LIMIT),
        "--max-batch-entries",
        str(MAX_ENTRIES),
        "--max-batch-bytes",
        str(MAX_BATCH_BYTES),
        "--items-per-shard",
        "1000",
    )
    try:
        yield process
        assert "Traceback" not in process.stderr(), process.stderr()
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def kv(server: ServerProcess) -> Iterator[kv_pb2_grpc.KVStub]:
    with grpc.insecure_channel(server.rpc_addr) as channel:
        yield kv_pb2_grpc.KVStub(channel)


def _entry(key: str, value: bytes, ttl: float | None = None) -> kv_pb2.PutManyEntry:
    if ttl is None:
        return kv_pb2.PutManyEntry(key=key, value=value)
    return kv_pb2.PutManyEntry(key=key, value=value, ttl_seconds=ttl)


def _single_put_error(kv: kv_pb2_grpc.KVStub, key: str, value: bytes) -> tuple[str, int]:
    """What a single Put answers: (lrukv-error-code, gRPC status number)."""
    with pytest.raises(grpc.RpcError) as error:
        kv.Put(kv_pb2.PutRequest(key=key, value=value), timeout=TIMEOUT)
    code = error_code(error.value)
    assert code is not None
    return code, error.value.code().value[0]


def _values(kv: kv_pb2_grpc.KVStub, keys: list[str]) -> list[bytes | None]:
    answer = kv.GetMany(kv_pb2.GetManyRequest(keys=keys), timeout=TIMEOUT)
    return [r.value if r.found else None for r in answer.results]


# --------------------------------------------------------------------- gRPC


def test_put_many_answers_each_key_with_the_code_a_single_put_would(
    kv: kv_pb2_grpc.KVStub,
) -> None:
    entries = [
        _entry("g-a", b"1"),
        _entry("", b"x"),
        _entry("g-big", b"v" * (VALUE_LIMIT + 1)),
        _entry("g-bad\x00", b"x"),
        _entry("g-ttl", b"x", ttl=-1),
        _entry("g-b", bytes(range(256)), ttl=60),
    ]
    answer = kv.PutMany(kv_pb2.PutManyRequest(entries=entries), timeout=TIMEOUT)
    assert [r.key for r in answer.results] == [e.key for e in entries]
    assert [r.HasField("error") for r in answer.results] == [False, True, True, True, True, False]
    for result, entry in zip(answer.results, entries, strict=True):
        if result.HasField("error"):
            single = _single_put_error(kv, entry.key, entry.value) if entry.key != "g-ttl" else None
            if single is not None:
                assert (result.error.code, result.error.grpc_code) == single
            assert result.error.message
    assert answer.results[4].error.code == "invalid_ttl"
    assert _values(kv, ["g-a", "g-big", "g-ttl", "g-b"]) == [b"1", None, None, bytes(range(256))]


def test_get_many_answers_every_key_in_order_found_or_not(kv: kv_pb2_grpc.KVStub) -> None:
    kv.PutMany(
        kv_pb2.PutManyRequest(entries=[_entry("m-1", b"one"), _entry("m-2", b"")]),
        timeout=TIMEOUT,
    )
    for level in (
        kv_pb2.CONSISTENCY_DEFAULT,
        kv_pb2.CONSISTENCY_STALE,
        kv_pb2.CONSISTENCY_LINEARIZABLE,
    ):
        answer = kv.GetMany(
            kv_pb2.GetManyRequest(keys=["m-2", "m-none", "m-1", "", "m-1"], consistency=level),
            timeout=TIMEOUT,
        )
        got = [(r.key, r.found, r.value, r.error.code) for r in answer.results]
        assert got == [
            ("m-2", True, b"", ""),
            ("m-none", False, b"", ""),
            ("m-1", True, b"one", ""),
            ("", False, b"", "invalid_key"),
            ("m-1", True, b"one", ""),
        ]
    with pytest.raises(grpc.RpcError) as error:
        bad = kv_pb2.GetManyRequest(keys=["m-1"], consistency=7)  # type: ignore[arg-type]
        kv.GetMany(bad, timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_batch_applies_in_order_so_duplicates_end_as_the_last_op_left_them(
    kv: kv_pb2_grpc.KVStub,
) -> None:
    entries = [_entry("d-k", b"1"), _entry("d-k", b"2"), _entry("d-j", b"x"), _entry("d-k", b"3")]
    kv.PutMany(kv_pb2.PutManyRequest(entries=entries), timeout=TIMEOUT)
    assert _values(kv, ["d-k", "d-k"]) == [b"3", b"3"]
    answer = kv.DeleteMany(
        kv_pb2.DeleteManyRequest(keys=["d-k", "d-k", "d-none", "", "d-j"]), timeout=TIMEOUT
    )
    assert [(r.existed, r.error.code) for r in answer.results] == [
        (True, ""),
        (False, ""),  # the first delete removed it
        (False, ""),
        (False, "invalid_key"),
        (True, ""),
    ]
    assert _values(kv, ["d-k", "d-j"]) == [None, None]


def test_empty_batches_answer_nothing(kv: kv_pb2_grpc.KVStub) -> None:
    assert list(kv.GetMany(kv_pb2.GetManyRequest(), timeout=TIMEOUT).results) == []
    assert list(kv.PutMany(kv_pb2.PutManyRequest(), timeout=TIMEOUT).results) == []
    assert list(kv.PutMany(kv_pb2.PutManyRequest(atomic=True), timeout=TIMEOUT).results) == []
    assert list(kv.DeleteMany(kv_pb2.DeleteManyRequest(), timeout=TIMEOUT).results) == []


def test_an_atomic_put_many_with_one_refused_entry_stores_nothing(
    kv: kv_pb2_grpc.KVStub,
) -> None:
    entries = [_entry("at-1", b"v"), _entry("at-2", b"v" * (VALUE_LIMIT + 1))]
    with pytest.raises(grpc.RpcError) as error:
        kv.PutMany(kv_pb2.PutManyRequest(entries=entries, atomic=True), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_code(error.value) == "value_too_large"
    assert "operation 1" in (error.value.details() or "")
    with pytest.raises(grpc.RpcError) as error:
        kv.DeleteMany(kv_pb2.DeleteManyRequest(keys=["at-1", ""], atomic=True), timeout=TIMEOUT)
    assert error_code(error.value) == "invalid_key"
    assert _values(kv, ["at-1", "at-2"]) == [None, None]
    kv.PutMany(kv_pb2.PutManyRequest(entries=entries[:1], atomic=True), timeout=TIMEOUT)
    assert _values(kv, ["at-1"]) == [b"v"]


def test_a_grpc_batch_over_the_limits_is_refused_whole_and_changes_nothing(
    kv: kv_pb2_grpc.KVStub,
) -> None:
    too_many = [_entry(f"lim-{i}", b"v") for i in range(MAX_ENTRIES + 1)]
    too_big = [
        _entry(f"lim-{i}", b"v" * VALUE_LIMIT) for i in range(MAX_BATCH_BYTES // VALUE_LIMIT)
    ]
    calls: list[Callable[[], object]] = [
        lambda: kv.PutMany(kv_pb2.PutManyRequest(entries=too_many), timeout=TIMEOUT),
        lambda: kv.PutMany(kv_pb2.PutManyRequest(entries=too_big), timeout=TIMEOUT),
        lambda: kv.GetMany(
            kv_pb2.GetManyRequest(keys=[f"lim-{i}" for i in range(MAX_ENTRIES + 1)]),
            timeout=TIMEOUT,
        ),
        lambda: kv.DeleteMany(
            kv_pb2.DeleteManyRequest(keys=[f"lim-{i}" for i in range(MAX_ENTRIES + 1)]),
            timeout=TIMEOUT,
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_code(error.value) == "batch_too_large"
        assert "nothing was done" in (error.value.details() or "")
    assert _values(kv, ["lim-0", "lim-1"]) == [None, None]


def test_get_many_moves_found_keys_to_the_front_as_gets_would(tmp_path: Any) -> None:
    # One shard of three items: the least recently used key is the one evicted.
    process = start_server(tmp_path, "--shards", "1", "--items-per-shard", "3")
    try:
        with grpc.insecure_channel(process.rpc_addr) as channel:
            kv = kv_pb2_grpc.KVStub(channel)
            kv.PutMany(
                kv_pb2.PutManyRequest(entries=[_entry(k, b"v") for k in "abc"]), timeout=TIMEOUT
            )
            kv.GetMany(kv_pb2.GetManyRequest(keys=["a", "zz", "b"]), timeout=TIMEOUT)
            kv.Put(kv_pb2.PutRequest(key="d", value=b"v"), timeout=TIMEOUT)  # evicts c
            assert _values(kv, ["a", "b", "c", "d"]) == [b"v", b"v", None, b"v"]
    finally:
        assert process.stop() == 0, process.output()


# ----------------------------------------------------------------- Pipeline


def _pipeline(
    kv: kv_pb2_grpc.KVStub, requests: list[kv_pb2.PipelineRequest]
) -> dict[int, kv_pb2.PipelineResponse]:
    answers = {a.id: a for a in kv.Pipeline(iter(requests), timeout=TIMEOUT)}
    assert len(answers) == len(requests)
    return answers


def test_a_pipeline_answers_every_request_by_id_and_goes_on_after_errors(
    kv: kv_pb2_grpc.KVStub,
) -> None:
    P = kv_pb2.PipelineRequest
    requests = [
        P(id=100 + i, put=kv_pb2.PutRequest(key=f"p-{i}", value=b"%d" % i)) for i in range(50)
    ]
    requests += [
        P(id=1, get=kv_pb2.GetRequest(key="p-7")),  # after the puts: sees them
        P(id=2, get=kv_pb2.GetRequest(key="p-absent")),
        P(id=3, put=kv_pb2.PutRequest(key="", value=b"x")),
        P(id=4, put=kv_pb2.PutRequest(key="p-big", value=b"v" * (VALUE_LIMIT + 1))),
        P(id=5, delete=kv_pb2.DeleteRequest(key="p-8")),
        P(id=6, get=kv_pb2.GetRequest(key="p-8", consistency=kv_pb2.CONSISTENCY_STALE)),
        P(id=7),  # no request at all
        P(id=8, get=kv_pb2.GetRequest(key="p-9", consistency=9)),  # type: ignore[arg-type]
        P(id=9, put=kv_pb2.PutRequest(key="p-ttl", value=b"x", ttl_seconds=60)),
    ]
    answers = _pipeline(kv, requests)
    assert all(answers[100 + i].WhichOneof("response") == "put" for i in range(50))
    assert answers[1].get.value == b"7"
    assert answers[2].error.code == "key_not_found" and answers[2].error.grpc_code == 5
    assert answers[3].error.code == "invalid_key"
    assert answers[4].error.code == "value_too_large"
    assert answers[5].delete.existed is True
    assert answers[6].error.code == "key_not_found"
    assert answers[7].error.code == "invalid_request"
    assert answers[8].error.code == "invalid_request"
    assert answers[9].WhichOneof("response") == "put"
    assert _values(kv, ["p-0", "p-49", "p-8", "p-ttl"]) == [b"0", b"49", None, b"x"]


@pytest.fixture(scope="module")
def stream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two gRPC workers, so one stream slot; streams stalled for 2 s are cancelled."""
    process = start_server(
        tmp_path_factory.mktemp("pipeline-streams"),
        "--grpc-workers",
        "2",
        "--grpc-stream-send-timeout",
        "2",
        "--max-value-bytes",
        str(64 * 1024),
    )
    try:
        with grpc.insecure_channel(process.rpc_addr) as channel:
            kv_pb2_grpc.KVStub(channel).Put(
                kv_pb2.PutRequest(key="large", value=b"L" * 64 * 1024), timeout=TIMEOUT
            )
        yield process
    finally:
        assert process.stop() == 0, process.output()


def _writes_go_on(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        for i in range(20):
            kv.Put(kv_pb2.PutRequest(key=f"w-{i}", value=b"w"), timeout=TIMEOUT)
            kv.PutMany(kv_pb2.PutManyRequest(entries=[_entry(f"wm-{i}", b"w")]), timeout=TIMEOUT)


def _pipeline_works(server: ServerProcess, deadline: float = TIMEOUT) -> None:
    """A new pipeline is served (its slot is free), retrying while the cap says busy."""
    end = time.monotonic() + deadline
    while True:
        with grpc.insecure_channel(server.rpc_addr) as channel:
            kv = kv_pb2_grpc.KVStub(channel)
            try:
                answers = _pipeline(
                    kv, [kv_pb2.PipelineRequest(id=1, get=kv_pb2.GetRequest(key="large"))]
                )
                assert len(answers[1].get.value) == 64 * 1024
                return
            except grpc.RpcError as error:
                assert error_code(error) == "too_many_streams", error
                assert time.monotonic() < end, "the stream slot never came back"
                time.sleep(0.2)


def _endless_gets() -> Iterator[kv_pb2.PipelineRequest]:
    for number in range(100_000):
        yield kv_pb2.PipelineRequest(id=number, get=kv_pb2.GetRequest(key="large"))


def test_a_pipeline_whose_client_stops_reading_stalls_no_writer_and_is_cancelled(
    stream_server: ServerProcess,
) -> None:
    with grpc.insecure_channel(stream_server.rpc_addr) as channel:
        answers = kv_pb2_grpc.KVStub(channel).Pipeline(_endless_gets(), timeout=60)
        next(iter(answers))  # then stop reading: the server's sends block on flow control
        started = time.monotonic()
        _writes_go_on(stream_server)
        # It holds the one stream slot until the watchdog cancels it (2 s).
        _pipeline_works(stream_server)
        assert time.monotonic() - started >= 1.5
        with pytest.raises(grpc.RpcError) as error:
            for _ in answers:
                pass
        assert error.value.code() == grpc.StatusCode.CANCELLED


def test_pipelines_whose_client_vanishes_mid_stream_release_their_slot(
    stream_server: ServerProcess,
) -> None:
    for _ in range(3):  # more than the one slot: each must come back
        _pipeline_works(stream_server)
        client = subprocess.Popen(
            [sys.executable, "-m", "tests.server.pipeline_client", stream_server.rpc_addr, "large"],
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
            text=True,
        )
        try:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "reading"
            _writes_go_on(stream_server)
        finally:
            client.kill()  # SIGKILL: the connection just dies, answers unsent
            client.wait(TIMEOUT)
    _pipeline_works(stream_server)
    _writes_go_on(stream_server)
    assert "Traceback" not in stream_server.stderr(), stream_server.stderr()


def test_a_pipeline_counts_against_the_stream_cap(stream_server: ServerProcess) -> None:
    release = threading.Event()

    def hold() -> Iterator[kv_pb2.PipelineRequest]:
        yield kv_pb2.PipelineRequest(id=1, get=kv_pb2.GetRequest(key="large"))
        release.wait(TIMEOUT)

    _pipeline_works(stream_server)  # wait for the slot (an earlier test may still hold it)
    with grpc.insecure_channel(stream_server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        held = kv.Pipeline(hold(), timeout=TIMEOUT)
        assert next(iter(held)).id == 1
        with pytest.raises(grpc.RpcError) as error:
            list(kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT))
        assert error_code(error.value) == "too_many_streams"
        release.set()
        assert list(held) == []
    _pipeline_works(stream_server)


# --------------------------------------------------------------------- HTTP


def _post(
    server: ServerProcess,
    body: bytes | str | dict[str, Any],
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request("POST", f"/v1/util/batch{query}", body=data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        assert response.getheader("Content-Type") == "application/json", raw
        return response.status, json.loads(raw)
    finally:
        conn.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_http_batch_answers_each_op_in_order_with_exact_bytes(server: ServerProcess) -> None:
    binary = bytes(range(256)) * 4
    ops: list[dict[str, Any]] = [
        {"op": "put", "key": "h-bin", "value": _b64(binary), "ttl": 30.5},
        {"op": "get", "key": "h-bin"},  # after the put in the same batch: sees it
        {"op": "put", "key": "", "value": "AA=="},
        {"op": "put", "key": "h-big", "value": _b64(b"v" * (VALUE_LIMIT + 1))},
        {"op": "put", "key": "h-ttl", "value": "AA==", "ttl": 0},
        {"op": "put", "key": "h-dup", "value": _b64(b"1")},
        {"op": "put", "key": "h-dup", "value": _b64(b"2")},
        {"op": "get", "key": "h-dup"},
        {"op": "delete", "key": "h-dup"},
        {"op": "delete", "key": "h-dup"},
        {"op": "get", "key": "h-dup"},
        {"op": "get", "key": "h-\u00e9\u4e16"},
        {"op": "get", "key": "bad\u0000key"},
    ]
    status, answer = _post(server, {"ops": ops}, "?consistency=linearizable")
    assert status == 200, answer
    results = answer["results"]
    assert [(r["op"], r["key"]) for r in results] == [(o["op"], o["key"]) for o in ops]
    assert base64.b64decode(results[1]["value"]) == binary and results[1]["found"] is True
    assert [r.get("error", {}).get("code") for r in results[2:5]] == [
        "invalid_key",
        "value_too_large",
        "invalid_ttl",
    ]
    assert results[7] == {"op": "get", "key": "h-dup", "found": True, "value": _b64(b"2")}
    assert [results[8]["existed"], results[9]["existed"]] == [True, False]
    assert results[10] == {"op": "get", "key": "h-dup", "found": False}
    assert results[11] == {"op": "get", "key": "h-\u00e9\u4e16", "found": False}
    assert results[12]["error"]["code"] == "invalid_key"
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    conn.request("GET", "/v1/h-bin")
    assert conn.getresponse().read() == binary  # the same bytes through the single API
    conn.close()


def test_an_empty_http_batch_answers_no_results(server: ServerProcess) -> None:
    assert _post(server, {"ops": []}) == (200, {"results": []})
    assert _post(server, {"ops": [], "atomic": True}) == (200, {"results": []})


def test_an_atomic_http_batch_is_all_or_nothing(server: ServerProcess) -> None:
    good = {"op": "put", "key": "ha-1", "value": "AA=="}
    status, answer = _post(server, {"ops": [good, {"op": "delete", "key": ""}], "atomic": True})
    assert (status, answer["error"]["code"]) == (400, "invalid_key")
    assert "operation 1" in answer["error"]["message"]
    big = {"op": "put", "key": "ha-2", "value": _b64(b"v" * (VALUE_LIMIT + 1))}
    status, answer = _post(server, {"ops": [good, big], "atomic": True})
    assert (status, answer["error"]["code"]) == (413, "value_too_large")
    status, answer = _post(server, {"ops": [good, {"op": "get", "key": "x"}], "atomic": True})
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert _post(server, {"ops": [{"op": "get", "key": "ha-1"}]})[1]["results"][0]["found"] is False
    status, answer = _post(server, {"ops": [good], "atomic": True})
    assert (status, answer) == (200, {"results": [{"op": "put", "key": "ha-1"}]})


def test_an_http_batch_over_the_limits_is_413_and_changes_nothing(server: ServerProcess) -> None:
    many = [{"op": "put", "key": f"hl-{i}", "value": "AA=="} for i in range(MAX_ENTRIES + 1)]
    status, answer = _post(server, {"ops": many})
    assert (status, answer["error"]["code"]) == (413, "batch_too_large")
    value = _b64(b"v" * VALUE_LIMIT)
    big = [{"op": "put", "key": f"hl-{i}", "value": value} for i in range(MAX_ENTRIES // 2)]
    assert len(json.dumps({"ops": big})) > MAX_BATCH_BYTES
    status, answer = _post(server, {"ops": big})
    assert (status, answer["error"]["code"]) == (413, "batch_too_large")
    # A chunked body is cut off at the limit too.
    chunked = json.dumps({"ops": big}).encode()
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    conn.request("POST", "/v1/util/batch", body=iter([chunked]), encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and b"batch_too_large" in response.read()
    conn.close()
    status, answer = _post(server, {"ops": [{"op": "get", "key": "hl-0"}]})
    assert answer["results"][0]["found"] is False


HOSTILE_BODIES = [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b'{"ops": [{"op": "get", "key": "a"}', "not valid JSON"),  # truncated
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # nesting deep enough to recurse
    (b'{"ops": NaN}', "not valid JSON"),
    (b"[]", "JSON object"),
    (b'{"ops": {}}', '"ops"'),
    (b'{"ops": [], "atomic": "yes"}', '"atomic"'),
    (b'{"ops": [1]}', "operation 0"),
    (b'{"ops": [{"op": "get", "key": "a"}, {"op": "fetch", "key": "b"}]}', "operation 1"),
    (b'{"ops": [{"op": "get"}]}', "operation 0"),
    (b'{"ops": [{"op": "get", "key": 5}]}', "operation 0"),
    (b'{"ops": [{"op": "put", "key": "a"}]}', "operation 0"),
    (b'{"ops": [{"op": "put", "key": "a", "value": "not base64!"}]}', "base64"),
    (b'{"ops": [{"op": "put", "key": "a", "value": "AAA"}]}', "base64"),
    (b'{"ops": [{"op": "put", "key": "a", "value": "AA==", "ttl": "30"}]}', '"ttl"'),
    (b'{"ops": [{"op": "put", "key": "a", "value": "AA==", "ttl": true}]}', '"ttl"'),
]


@pytest.mark.parametrize(("body", "names"), HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_a_body_that_is_not_a_batch_is_400_naming_the_problem(
    server: ServerProcess, body: bytes, names: str
) -> None:
    if len(body) > MAX_BATCH_BYTES:
        body = body[: MAX_BATCH_BYTES // 2] + body[-MAX_BATCH_BYTES // 2 :]
    status, answer = _post(server, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert names in answer["error"]["message"]


def test_a_huge_ttl_and_a_lone_surrogate_key_are_that_ops_errors(server: ServerProcess) -> None:
    body = b'{"ops": [{"op": "put", "key": "hz", "value": "AA==", "ttl": 1' + b"0" * 400 + b"}"
    body += b', {"op": "get", "key": "\\ud800"}]}'
    status, answer = _post(server, body)
    assert status == 200, answer
    assert [r["error"]["code"] for r in answer["results"]] == ["invalid_ttl", "invalid_key"]


def test_the_batch_route_answers_post_only(server: ServerProcess) -> None:
    for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS"):
        conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
        conn.request(method, "/v1/util/batch", body=b"" if method == "PUT" else None)
        response = conn.getresponse()
        response.read()
        assert response.status == (204 if method == "OPTIONS" else 405), method
        assert response.getheader("Allow") == "OPTIONS, POST"
        conn.close()
    # percent-encoded, it is the key "util/batch", which a PUT stores
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    conn.request("PUT", "/v1/util%2Fbatch", body=b"k")
    assert conn.getresponse().status == 201
    conn.close()


def test_an_http_batch_reads_at_each_consistency_and_refuses_an_unknown_one(
    server: ServerProcess,
) -> None:
    _post(server, {"ops": [{"op": "put", "key": "hc", "value": "AQI="}]})
    for level in ("stale", "default", "linearizable"):
        status, answer = _post(
            server, {"ops": [{"op": "get", "key": "hc"}]}, f"?consistency={level}"
        )
        assert answer["results"][0]["value"] == "AQI=", level
    status, answer = _post(server, {"ops": []}, "?consistency=eventual")
    assert (status, answer["error"]["code"]) == (400, "invalid_request")


def test_a_method_no_rule_knows_on_the_batch_route_is_405(server: ServerProcess) -> None:
    for method in ("TRACE", "PATCH"):
        conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
        conn.request(method, "/v1/util/batch")
        response = conn.getresponse()
        response.read()
        assert (response.status, response.getheader("Allow")) == (405, "OPTIONS, POST"), method
        conn.close()
