"""Both clients against the in-process fake node: the same behaviour over gRPC and
HTTP, and deterministic retries and redirects driven by scripted faults."""

from __future__ import annotations

import grpc
import pytest

from lrukv_client import (
    Client,
    Consistency,
    ConstantBackoff,
    DeadlineExceeded,
    HttpClient,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    PermissionDenied,
    Retry,
    ServerError,
    ServerInfo,
    TooManyRedirects,
    Unavailable,
    ValueTooLarge,
)
from tests.client.conftest import MakeClient, fast_retry
from tests.client.fakes import FakeNode, Fault

UNAVAILABLE = Fault(grpc.StatusCode.UNAVAILABLE, "shutting down")


# -- the API -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "key-a",
        "with space",
        "a/b/c",
        "util/keys",
        "..",
        ".",
        "caf\u00e9 \u2603",
        "percent%2Fsign?x=1#frag",
        "x" * 1024,
    ],
)
def test_put_then_get_round_trips_any_key(
    fake: FakeNode, make_client: MakeClient, key: str
) -> None:
    kv = make_client(fake)
    kv.put(key, b"value")
    assert fake.data == {key: b"value"}
    assert kv.get(key) == b"value"


def test_values_are_binary_safe_and_str_is_utf8(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    binary = bytes(range(256)) * 4
    kv.put("bin", binary)
    kv.put("text", "Hello, key-value store! \u2603")
    kv.put("empty", b"")
    assert kv.get("bin") == binary
    assert kv.get("text") == "Hello, key-value store! \u2603".encode()
    assert kv.get("empty") == b""


def test_a_missing_key_raises_key_not_found(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    with pytest.raises(KeyNotFound) as info:
        kv.get("nope")
    assert info.value.key == "nope"
    assert isinstance(info.value, KeyError)
    assert fake.count("Get") == 1  # a miss is an answer, not a failure to retry


def test_delete_says_whether_the_key_existed(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    kv.put("k", b"v")
    assert kv.delete("k") is True
    assert kv.delete("k") is False
    assert fake.data == {}


def test_ttl_and_consistency_reach_the_server(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake, consistency="stale")
    kv.put("k", b"v", ttl=2.5)
    assert fake.ttls == {"k": 2.5}
    kv.get("k")
    kv.get("k", consistency=Consistency.LINEARIZABLE)
    kv.keys(consistency="default")
    assert fake.consistency_seen == ["stale", "linearizable", "default"]


def test_keys_and_items_list_the_store(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    assert kv.keys() == []
    assert list(kv.items()) == []
    expected = {f"k{i}": bytes([i]) * i for i in range(20)}
    for key, value in expected.items():
        kv.put(key, value)
    assert sorted(kv.keys()) == sorted(expected)
    assert dict(kv.items()) == expected


def test_items_can_be_abandoned_early(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    for i in range(50):
        kv.put(f"k{i:02}", b"v")
    with kv.items() as items:
        assert next(items) == ("k00", b"v")
    assert list(items) == []  # closed: iteration ends
    # the connection (or channel) is still good for the next calls
    assert kv.get("k01") == b"v"
    assert len(list(kv.items())) == 50


def test_servers_describe_the_cluster(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    follower, leader = fake_pair
    servers = make_client(follower).servers()
    assert servers == [
        ServerInfo("follower", follower.rpc_addr, follower.http_addr, False),
        ServerInfo("leader", leader.rpc_addr, leader.http_addr, True),
    ]


@pytest.mark.parametrize("key", ["", 7, "lone \udc80 surrogate"])
def test_bad_keys_are_refused_before_sending(
    fake: FakeNode, make_client: MakeClient, key: object
) -> None:
    kv = make_client(fake)
    with pytest.raises(InvalidArgument):
        kv.put(key, b"v")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        kv.get(key)  # type: ignore[arg-type]
    assert fake.calls == []


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan"), float("inf")])
def test_bad_ttls_are_refused_before_sending(
    fake: FakeNode, make_client: MakeClient, ttl: float
) -> None:
    with pytest.raises(InvalidArgument):
        make_client(fake).put("k", b"v", ttl=ttl)
    assert fake.calls == []


def test_a_closed_client_refuses_calls(fake: FakeNode, make_client: MakeClient) -> None:
    kv = make_client(fake)
    kv.close()
    with pytest.raises(LrukvClientError):
        kv.get("k")


# -- server errors map to the same exceptions on both transports ------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ValueTooLarge),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.INTERNAL, ServerError),
    ],
)
def test_server_errors_are_typed_and_not_retried(
    fake: FakeNode, make_client: MakeClient, code: grpc.StatusCode, error: type[Exception]
) -> None:
    fake.fail("Put", Fault(code, "refused"), times=5)
    with pytest.raises(error) as info:
        make_client(fake).put("k", b"v")
    assert "refused" in str(info.value)
    assert fake.count("Put") == 1


# -- retries, redirects, deadlines --------------------------------------------------------


def test_unavailable_is_retried(fake: FakeNode, make_client: MakeClient) -> None:
    fake.put("k", b"v", None)
    fake.fail("Get", UNAVAILABLE, times=3)
    assert make_client(fake).get("k") == b"v"
    assert fake.count("Get") == 4


def test_writes_are_retried_after_unavailable(fake: FakeNode, make_client: MakeClient) -> None:
    fake.fail("Put", UNAVAILABLE, times=2)
    make_client(fake).put("k", b"v")
    assert fake.data == {"k": b"v"}
    assert fake.count("Put") == 3


def test_retry_writes_false_leaves_ambiguous_write_failures_to_the_caller(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.fail("Delete", UNAVAILABLE)
    kv = make_client(fake, retry=fast_retry(retry_writes=False))
    with pytest.raises(Unavailable):
        kv.delete("k")
    assert fake.count("Delete") == 1


def test_not_leader_redirects_to_the_leader_and_stays_there(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    follower, leader = fake_pair
    follower.fail("Put", Fault(leader=leader))
    kv = make_client(follower)
    kv.put("k", b"v")
    assert leader.data == {"k": b"v"}
    assert follower.data == {}
    # the next calls go straight to the leader
    assert kv.get("k") == b"v"
    assert follower.calls == ["Put"]
    assert leader.calls == ["Put", "Get"]


def test_not_leader_without_a_leader_is_retried(fake: FakeNode, make_client: MakeClient) -> None:
    fake.fail("Put", Fault(grpc.StatusCode.FAILED_PRECONDITION, "no leader"), times=2)
    make_client(fake).put("k", b"v")
    assert fake.count("Put") == 3


def test_a_redirect_loop_ends_with_too_many_redirects(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    a, b = fake_pair
    a.fail("Get", Fault(leader=b), times=10)
    b.fail("Get", Fault(leader=a), times=10)
    kv = make_client(a, retry=fast_retry(max_redirects=3))
    with pytest.raises(TooManyRedirects):
        kv.get("k")
    assert a.count("Get") + b.count("Get") == 4


def test_redirects_disabled_hand_over_not_leader(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    follower, leader = fake_pair
    follower.fail("Get", Fault(leader=leader))
    kv = make_client(follower, retry=Retry.disabled())
    with pytest.raises(NotLeader) as info:
        kv.get("k")
    assert info.value.leader_rpc == leader.rpc_addr
    assert info.value.leader_http == leader.http_addr


def test_an_unavailable_seed_fails_over_to_the_next(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    first, second = fake_pair
    second.put("k", b"v", None)
    first.stop()
    kv = make_client(first, second)
    assert kv.get("k") == b"v"
    assert second.calls == ["Get"]


def test_a_stopped_server_gives_unavailable_not_a_hang(
    fake: FakeNode, make_client: MakeClient
) -> None:
    kv = make_client(fake, retry=Retry(ConstantBackoff(0.05), deadline=0.5))
    kv.put("k", b"v")
    fake.stop()
    with pytest.raises(Unavailable) as info:
        kv.get("k")
    assert info.value.attempts > 1


def test_a_slow_attempt_is_cut_by_attempt_timeout_and_retried(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.put("k", b"v", None)
    fake.fail("Get", Fault(delay=1.0))
    kv = make_client(fake, retry=fast_retry(attempt_timeout=0.2))
    assert kv.get("k") == b"v"
    assert fake.count("Get") == 2


def test_a_call_slower_than_its_deadline_raises_deadline_exceeded(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.fail("Get", Fault(delay=1.0))
    with pytest.raises(DeadlineExceeded):
        make_client(fake).get("k", timeout=0.2)


def test_items_retries_until_the_first_item(fake: FakeNode, make_client: MakeClient) -> None:
    fake.put("a", b"1", None)
    fake.put("b", b"2", None)
    fake.fail("GetKeysValues", UNAVAILABLE, times=2)
    assert list(make_client(fake).items()) == [("a", b"1"), ("b", b"2")]
    assert fake.count("GetKeysValues") == 3


def test_items_follows_the_leader(
    fake_pair: tuple[FakeNode, FakeNode], make_client: MakeClient
) -> None:
    follower, leader = fake_pair
    leader.put("a", b"1", None)
    follower.fail("GetKeysValues", Fault(leader=leader))
    assert list(make_client(follower).items()) == [("a", b"1")]


def test_a_stream_that_breaks_midway_raises_and_is_not_restarted(
    fake: FakeNode, make_client: MakeClient
) -> None:
    for key in "abcde":
        fake.put(key, b"v", None)
    fake.fail("GetKeysValues", Fault(grpc.StatusCode.UNAVAILABLE, "dying", after_items=2))
    items = make_client(fake).items()
    assert next(items) == ("a", b"v")
    assert next(items) == ("b", b"v")
    with pytest.raises(Unavailable):
        next(items)
    assert fake.count("GetKeysValues") == 1


def test_items_that_do_not_start_in_time_raise_deadline_exceeded(
    fake: FakeNode, make_client: MakeClient
) -> None:
    fake.put("a", b"1", None)
    fake.fail("GetKeysValues", Fault(delay=1.0))
    with pytest.raises(DeadlineExceeded):
        list(make_client(fake).items(timeout=0.2))


def test_clients_are_context_managers_reusing_one_connection(fake: FakeNode) -> None:
    with Client(fake.rpc_addr, retry=fast_retry()) as kv:
        for i in range(10):
            kv.put(f"k{i}", b"v")
        assert len(kv._channels) == 1
    with HttpClient(fake.http_addr, retry=fast_retry()) as http:
        for i in range(10):
            http.get(f"k{i}")
        pool = http._http._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1
