"""Both clients (and the asyncio one) against the REAL ``lrukv-server`` process.

One server is shared by the tests of this module that only read and write their
own keys; tests that stop or restart a server start their own. Every process is
stopped by its PID at teardown (tests/harness.py), also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrukv_client import (
    AbstractBackoff,
    AsyncClient,
    Client,
    ConstantBackoff,
    HttpClient,
    InvalidArgument,
    KeyNotFound,
    Retry,
    ServerInfo,
    StoreStats,
    Unavailable,
    ValueTooLarge,
)
from tests.client.conftest import AnyClient
from tests.client.fakes import FakeNode, Fault
from tests.harness import ServerProcess, start_server

MAX_VALUE = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("shared-server"), "--max-value-bytes", str(MAX_VALUE)
    )
    try:
        yield process
    finally:
        with contextlib.suppress(TimeoutError):
            process.stop(timeout=20)


def open_client(transport: str, server: ServerProcess, **kwargs: object) -> AnyClient:
    if transport == "grpc":
        return Client(server.rpc_addr, **kwargs)  # type: ignore[arg-type]
    return HttpClient(server.http_addr, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def kv(transport: str, server: ServerProcess) -> Iterator[AnyClient]:
    with open_client(transport, server, timeout=10.0) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    """Keys of one test, so tests sharing the server do not see each other's."""
    return f"t{uuid.uuid4().hex[:8]}/"


KEYS = [
    "key-a",
    "a/b/c",
    "util/keys",
    "util",
    "..",
    ".",
    "with space",
    "percent%2F?x=1#frag",
    "caf\u00e9 \u2603",
    "x" * 1000,
]


@pytest.mark.parametrize("key", KEYS)
def test_any_valid_key_round_trips(kv: AnyClient, prefix: str, key: str) -> None:
    # The prefix makes "." and ".." non-dot keys; test those bare too.
    for name in (prefix + key, key):
        kv.put(name, b"v:" + name.encode())
        assert kv.get(name) == b"v:" + name.encode()
        assert kv.delete(name) is True


def test_both_transports_see_one_store(server: ServerProcess, prefix: str) -> None:
    binary = bytes(range(256)) * 16
    with Client(server.rpc_addr) as grpc_kv, HttpClient(server.http_addr) as http_kv:
        grpc_kv.put(prefix + "g", binary)
        http_kv.put(prefix + "h", "written over HTTP \u2603")
        assert http_kv.get(prefix + "g") == binary
        assert grpc_kv.get(prefix + "h") == "written over HTTP \u2603".encode()


def test_missing_keys_and_deletes(kv: AnyClient, prefix: str) -> None:
    with pytest.raises(KeyNotFound) as info:
        kv.get(prefix + "nope")
    assert info.value.key == prefix + "nope"
    assert info.value.error_code == "key_not_found"
    kv.put(prefix + "k", b"v")
    assert kv.delete(prefix + "k") is True
    assert kv.delete(prefix + "k") is False


@pytest.mark.parametrize(
    ("key", "code"),
    [("bad\x01key", "invalid_key"), ("k" * 1025, "invalid_key"), ("bad\x7fdel", "invalid_key")],
)
def test_the_server_refuses_bad_keys_precisely(kv: AnyClient, key: str, code: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        kv.put(key, b"v")
    assert info.value.error_code == code


def test_a_value_above_the_limit_is_value_too_large(kv: AnyClient, prefix: str) -> None:
    kv.put(prefix + "max", b"x" * MAX_VALUE)
    with pytest.raises(ValueTooLarge) as info:
        kv.put(prefix + "big", b"x" * (MAX_VALUE + 1))
    assert info.value.error_code == "value_too_large"


def test_every_consistency_level_is_accepted(kv: AnyClient, prefix: str) -> None:
    kv.put(prefix + "k", b"v")
    for level in ("stale", "default", "linearizable"):
        assert kv.get(prefix + "k", consistency=level) == b"v"
        assert prefix + "k" in kv.keys(consistency=level)


def test_a_ttl_makes_the_key_expire(kv: AnyClient, prefix: str) -> None:
    kv.put(prefix + "short", b"v", ttl=0.2)
    kv.put(prefix + "long", b"v", ttl=3600)
    expired = threading.Event()
    # Poll (bounded) rather than sleep a guessed time: expiry is the server's clock.
    for _ in range(100):
        try:
            kv.get(prefix + "short")
        except KeyNotFound:
            expired.set()
            break
        threading.Event().wait(0.05)
    assert expired.is_set()
    assert kv.get(prefix + "long") == b"v"


def test_keys_and_items_list_what_was_written(kv: AnyClient, prefix: str) -> None:
    written = {f"{prefix}{i:03}": f"value {i}".encode() * (i % 7) for i in range(300)}
    for key, value in written.items():
        kv.put(key, value)
    assert set(written) <= set(kv.keys())
    with kv.items() as stream:
        mine = {key: value for key, value in stream if key.startswith(prefix)}
    assert mine == written


def test_abandoning_a_stream_leaves_the_server_serving(kv: AnyClient, prefix: str) -> None:
    for i in range(600):  # more than one NDJSON batch / several messages
        kv.put(f"{prefix}{i:03}", b"x" * 100)
    for _ in range(5):
        stream = kv.items()
        next(stream)
        stream.close()
    kv.put(prefix + "after", b"still writable")
    assert kv.get(prefix + "after") == b"still writable"


def test_servers_reports_the_single_node_as_leader(kv: AnyClient, server: ServerProcess) -> None:
    nodes = kv.servers()
    assert len(nodes) == 1
    node = nodes[0]
    assert isinstance(node, ServerInfo)
    assert (node.rpc_addr, node.http_addr, node.is_leader) == (
        server.rpc_addr,
        server.http_addr,
        True,
    )


def test_one_client_is_shared_by_many_threads(kv: AnyClient, prefix: str) -> None:
    failures: list[BaseException] = []

    def writer(thread: int) -> None:
        try:
            for i in range(40):
                kv.put(f"{prefix}{thread}-{i}", f"{thread}:{i}".encode())
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all(kv.get(f"{prefix}{n}-39") == f"{n}:39".encode() for n in range(8))


def test_a_fake_follower_redirects_to_the_real_leader(
    transport: str, server: ServerProcess, prefix: str
) -> None:
    # lrukv has no replication yet, so the follower is a fake that answers like a
    # real follower would (NotLeader + the leader's addresses); the leader is real.
    with FakeNode("follower") as follower:
        follower.leader = None
        follower.fail("Put", Fault(leader=server))
        follower.fail("Get", Fault(leader=server))
        with open_client(transport, follower) as kv:  # type: ignore[arg-type]
            kv.put(prefix + "k", b"via the leader")
            assert kv.server == (server.rpc_addr if transport == "grpc" else server.http_addr)
            assert kv.get(prefix + "k") == b"via the leader"
        assert follower.data == {}
        assert follower.calls == ["Put"]  # after the redirect the client stays with the leader


def test_the_asyncio_client_against_the_real_server(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.rpc_addr) as kv:
            await kv.put(prefix + "a", b"\x00async")
            assert await kv.get(prefix + "a") == b"\x00async"
            pairs = [pair async for pair in kv.items() if pair[0].startswith(prefix)]
            assert pairs == [(prefix + "a", b"\x00async")]
            assert await kv.delete(prefix + "a") is True
            with pytest.raises(KeyNotFound):
                await kv.get(prefix + "a")

    asyncio.run(scenario())


# -- servers that stop -------------------------------------------------------------------


def test_a_stopped_server_is_unavailable_within_the_deadline(
    transport: str, tmp_path: Path
) -> None:
    process = start_server(tmp_path)
    try:
        with open_client(transport, process, retry=Retry(ConstantBackoff(0.1), deadline=1.0)) as kv:
            kv.put("k", b"v")
            assert process.stop() == 0
            with pytest.raises(Unavailable) as info:
                kv.get("k")
            assert info.value.attempts > 1
    finally:
        if process.alive():
            process.kill()


class SignallingBackoff(AbstractBackoff):
    """A constant backoff that announces the first retry, so a test can restart
    the server while a call is known to be retrying."""

    def __init__(self) -> None:
        self.retrying = threading.Event()
        self.calls = 0

    def compute(self, failures: int) -> float:
        self.calls += 1
        self.retrying.set()
        return 0.1


def test_a_call_retries_until_a_restarted_server_answers(transport: str, tmp_path: Path) -> None:
    process = start_server(tmp_path, "--db-logger", "file")
    restarted: ServerProcess | None = None
    try:
        backoff = SignallingBackoff()
        with open_client(transport, process, retry=Retry(backoff, deadline=60.0)) as kv:
            kv.put("k", b"durable")
            assert process.stop() == 0
            outcome: list[object] = []
            caller = threading.Thread(target=lambda: outcome.append(_get_or_error(kv, "k")))
            caller.start()
            assert backoff.retrying.wait(30)
            restarted = start_server(
                tmp_path,
                "--db-logger", "file",
                "--http-port", str(process.http_port),
                "--grpc-port", str(process.rpc_port),
                data_dir=process.data_dir,
            )  # fmt: skip
            caller.join(60)
            assert outcome == [b"durable"]
            assert backoff.calls >= 1
    finally:
        for proc in (process, restarted):
            if proc is not None and proc.alive():
                with contextlib.suppress(TimeoutError):
                    proc.stop(timeout=20)


def _get_or_error(kv: AnyClient, key: str) -> object:
    try:
        return kv.get(key)
    except Exception as exc:
        return exc


# -- stats, ttl, exists ------------------------------------------------------------------


def test_stats_report_size_capacity_limits_and_counters(kv: AnyClient, prefix: str) -> None:
    before = kv.stats()
    assert isinstance(before, StoreStats)
    assert (before.capacity, before.shards, before.items_per_shard) == (1000, 10, 100)
    assert before.max_value_bytes == MAX_VALUE
    assert before.max_key_bytes == 1024
    assert before.max_bytes is None
    kv.put(prefix + "k", b"value")
    kv.get(prefix + "k")
    with pytest.raises(KeyNotFound):
        kv.get(prefix + "absent")
    after = kv.stats()
    assert after.size >= 1
    assert after.bytes >= len(prefix + "k") + len(b"value")
    assert after.hits >= before.hits + 1
    assert after.misses >= before.misses + 1
    assert set(after.evictions) == {"capacity", "bytes", "expired"}


def test_ttl_and_exists(kv: AnyClient, prefix: str) -> None:
    kv.put(prefix + "forever", b"v")
    kv.put(prefix + "soon", b"v", ttl=100)
    assert kv.ttl(prefix + "forever") is None
    remaining = kv.ttl(prefix + "soon")
    assert remaining is not None and 0 < remaining <= 100
    assert kv.exists(prefix + "soon") is True
    assert kv.exists(prefix + "absent") is False
    with pytest.raises(KeyNotFound):
        kv.ttl(prefix + "absent")
    with pytest.raises(InvalidArgument):
        kv.ttl("bad\x01key")


def test_ttl_and_exists_do_not_count_as_a_use(transport: str, tmp_path: Path) -> None:
    # One shard of two items: asking about "old" must not save it from eviction.
    # With a transaction log, so the service reads through the logged store too.
    process = start_server(
        tmp_path, "--shards", "1", "--items-per-shard", "2", "--db-logger", "file"
    )
    try:
        with open_client(transport, process) as kv:
            kv.put("old", b"1")
            kv.put("new", b"2")
            hits = kv.stats().hits
            assert kv.exists("old") and kv.ttl("old") is None
            kv.put("newest", b"3")
            assert kv.exists("old") is False
            stats = kv.stats()
            assert stats.hits == hits
            assert stats.evictions["capacity"] == 1
    finally:
        process.stop()


def test_the_asyncio_client_has_stats_ttl_and_exists(server: ServerProcess, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.rpc_addr) as kv:
            await kv.put(prefix + "a", b"x", ttl=50)
            assert (await kv.stats()).capacity == 1000
            remaining = await kv.ttl(prefix + "a")
            assert remaining is not None and 0 < remaining <= 50
            assert await kv.exists(prefix + "a") is True
            assert await kv.exists(prefix + "b") is False

    asyncio.run(scenario())
