"""Batches and pipelines of both clients (and the asyncio one) against the fake
node: per-key results, chunking under the server's limit, atomic batches,
redirects and retries driven by scripted faults."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from lrukv_client import (
    AsyncClient,
    BatchTooLarge,
    InvalidArgument,
    KeyNotFound,
    NotLeader,
    Unavailable,
    ValueTooLarge,
)
from tests.client.conftest import MakeClient, fast_retry
from tests.client.fakes import FakeNode, Fault

UNAVAILABLE = Fault(grpc.StatusCode.UNAVAILABLE, "shutting down")


def test_put_get_delete_many_round_trip(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    values: dict[str, bytes | str] = {
        "a": b"\x00\xff",
        "b": b"",
        "caf\u00e9": "text \u2603",
        "d/e": bytes(range(256)),
    }
    results = kv.put_many(values)
    assert [(r.op, r.key, r.ok) for r in results] == [("put", k, True) for k in values]
    expected = {k: v if isinstance(v, bytes) else v.encode() for k, v in values.items()}
    assert fake.data == expected
    assert kv.get_many([*values, "missing"]) == expected  # absent keys are not in the answer
    deleted = kv.delete_many(["a", "missing"])
    assert [(r.key, r.existed) for r in deleted] == [("a", True), ("missing", False)]
    assert "a" not in fake.data


def test_ttls_per_item_and_per_call(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    kv.put_many([("a", b"1"), ("b", b"2", 5.5)], ttl=30.0)
    assert fake.ttls == {"a": 30.0, "b": 5.5}


def test_bad_keys_and_oversized_values_are_their_items_errors(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.max_value_bytes = 10
    kv = make_client(fake)
    results = kv.put_many([("ok", b"v"), ("", b"v"), ("ctl\x01", b"v"), ("big", b"x" * 11)])
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[1].error is not None and results[1].error.error_code == "invalid_key"
    assert results[2].error is not None and results[2].error.error_code == "invalid_key"
    assert isinstance(results[3].error, ValueTooLarge)
    assert fake.data == {"ok": b"v"}
    # get_many raises a refused key's error; get_many_results reports it.
    with pytest.raises(InvalidArgument):
        kv.get_many(["ok", "ctl\x01"])
    got = kv.get_many_results(["ok", "ctl\x01"])
    assert got[0].value == b"v" and isinstance(got[1].error, InvalidArgument)


def test_empty_batches_send_nothing(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    assert kv.put_many({}) == []
    assert kv.get_many([]) == {}
    assert kv.delete_many([]) == []
    assert fake.batch_sizes == []


def test_a_key_given_twice_ends_with_its_last_value(
    fake: FakeNode, make_client: MakeClient
) -> None:
    kv = make_client(fake)
    results = kv.put_many([("k", b"first"), ("k", b"second")])
    assert [r.key for r in results] == ["k", "k"]
    assert kv.get_many(["k", "k"]) == {"k": b"second"}
    assert [r.existed for r in kv.delete_many(["k", "k"])] == [True, False]


def test_large_inputs_go_in_chunks(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake, batch_size=3)
    kv.put_many({f"k{i}": b"v" for i in range(10)})
    assert fake.batch_sizes == [3, 3, 3, 1]
    assert len(kv.get_many(f"k{i}" for i in range(10))) == 10


def test_a_server_limit_below_the_chunk_size_halves_the_chunks(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.max_batch_entries = 4
    kv = make_client(fake, batch_size=10)
    results = kv.put_many({f"k{i}": b"v" for i in range(10)})
    assert all(r.ok for r in results)
    assert len(fake.data) == 10
    assert fake.batch_sizes[:2] == [10, 5]  # refused whole, then halved
    assert all(size <= 4 for size in fake.batch_sizes[2:])


def test_atomic_batches_are_all_or_nothing_and_never_split(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.max_value_bytes = 10
    kv = make_client(fake, batch_size=2)
    with pytest.raises(ValueTooLarge):
        kv.put_many({"a": b"v", "b": b"x" * 11}, atomic=True)
    assert fake.data == {}
    with pytest.raises(InvalidArgument):  # refused before sending anything
        kv.put_many({"a": b"v", "": b"v"}, atomic=True)
    fake.max_batch_entries = 2
    with pytest.raises(BatchTooLarge):
        kv.put_many({f"k{i}": b"v" for i in range(3)}, atomic=True)
    assert fake.batch_sizes == [2, 3]  # one request each, never split
    assert fake.data == {}
    results = kv.delete_many(["x", "y"], atomic=True)
    assert [r.ok for r in results] == [True, True]


def test_a_follower_redirects_batches_to_the_leader(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    follower, leader = fake_pair
    kv = make_client(follower)
    kv.put_many({"a": b"1"})
    assert leader.data == {"a": b"1"} and follower.data == {}
    assert kv.get_many(["a"]) == {"a": b"1"}
    assert follower.count("PutMany") == 1 and follower.count("GetMany") == 0


def test_batches_of_writes_are_retried_only_under_retry_writes(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.fail("PutMany", UNAVAILABLE)
    kv = make_client(fake)
    kv.put_many({"a": b"1"})
    assert fake.count("PutMany") == 2 and fake.data == {"a": b"1"}

    strict = make_client(fake, retry=fast_retry(retry_writes=False))
    fake.fail("PutMany", UNAVAILABLE)
    with pytest.raises(Unavailable):
        strict.put_many({"b": b"2"})
    fake.fail("GetMany", UNAVAILABLE)  # reads are retried whatever retry_writes says
    assert strict.get_many(["a"]) == {"a": b"1"}


def test_a_pipeline_answers_every_request(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    fake.data["old"] = b"was here"
    with kv.pipeline(window=4) as p:
        puts = [p.put(f"k{i}", f"v{i}".encode()) for i in range(20)]
        read = p.get("old")
        missing = p.get("missing")
        refused = p.put("", b"v")
        gone = p.delete("old")
    assert [f.result() for f in puts] == [None] * 20
    assert read.result() == b"was here"
    with pytest.raises(KeyNotFound):
        missing.result()
    with pytest.raises(InvalidArgument):
        refused.result()
    assert gone.result() is True
    assert len(fake.data) == 20


def test_a_pipeline_stream_that_breaks_fails_its_unanswered_requests(fake: FakeNode) -> None:
    # gRPC only: the stream is cut after 3 answers; the others must not hang or pass.
    from lrukv_client import Client

    fake.fail("Pipeline", Fault(grpc.StatusCode.UNAVAILABLE, "going away", after_items=3))
    with Client(fake.rpc_addr, retry=fast_retry()) as kv:
        futures = []
        with pytest.raises(Unavailable), kv.pipeline(window=2) as p:
            futures = [p.put(f"k{i}", b"v") for i in range(6)]
        outcomes = [f.exception(timeout=10) for f in futures]
        assert outcomes[:3] == [None, None, None]
        assert all(isinstance(e, Unavailable) for e in outcomes[3:])


def test_an_http_pipeline_sends_batches(fake: FakeNode) -> None:
    from lrukv_client import HttpClient

    with HttpClient(fake.http_addr, retry=fast_retry()) as kv, kv.pipeline(window=5) as p:
        futures = [p.put(f"k{i}", b"v") for i in range(12)]
    assert fake.batch_sizes == [5, 5, 2]
    assert all(f.result() is None for f in futures)


def test_a_follower_refuses_pipelined_requests_with_not_leader(
    fake_pair: tuple[FakeNode, FakeNode],
) -> None:
    from lrukv_client import Client

    follower, _ = fake_pair
    with Client(follower.rpc_addr, retry=fast_retry()) as kv:
        with pytest.raises(NotLeader), kv.pipeline() as p:
            future = p.put("k", b"v")
        assert isinstance(future.exception(timeout=10), NotLeader)


def test_the_asyncio_client_has_batches_and_pipelines(fake: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(fake.rpc_addr, retry=fast_retry(), batch_size=2) as kv:
            results = await kv.put_many({"a": b"1", "b": b"2", "": b"3"})
            assert [r.ok for r in results] == [True, True, False]
            assert await kv.get_many(["a", "b", "c"]) == {"a": b"1", "b": b"2"}
            assert [r.existed for r in await kv.delete_many(["a", "c"])] == [True, False]
            async with kv.pipeline(window=2) as p:
                futures = [await p.put(f"p{i}", b"v") for i in range(5)]
                read = await p.get("b")
            assert all(f.result() is None for f in futures)
            assert read.result() == b"2"

    asyncio.run(scenario())
    assert fake.batch_sizes[:2] == [2, 2]


def test_per_call_metadata_reaches_the_server_on_every_call(fake: FakeNode) -> None:
    from lrukv_client import Client, HttpClient

    with Client(fake.rpc_addr, metadata={"X-Tenant": "blue"}, retry=fast_retry()) as kv:
        kv.put("k", b"v")
        kv.put_many({"a": b"1"})
    with HttpClient(fake.http_addr, headers={"X-Tenant": "blue"}, retry=fast_retry()) as http:
        http.get("k")
        http.get_many(["a"])
    assert len(fake.metadata_seen) == 4
    assert all(seen.get("x-tenant") == "blue" for seen in fake.metadata_seen)
