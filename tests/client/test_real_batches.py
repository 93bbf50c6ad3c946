"""Batches, pipelines, and export/import against the REAL ``lrukv-server``, over
both transports.

Written against the batch contract (proto GetMany/PutMany/DeleteMany/Pipeline,
``POST /v1/util/batch``); a server without it (UNIMPLEMENTED over gRPC, 404 over
HTTP) skips these tests instead of failing them, so they start to run as soon
as the server side is merged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrukv_client import (
    BatchTooLarge,
    Client,
    HttpClient,
    InvalidArgument,
    KeyNotFound,
    ServerError,
    ValueTooLarge,
)
from tests.client.conftest import AnyClient
from tests.harness import REPO_ROOT, ServerProcess, start_server

MAX_VALUE = 4096
MAX_BATCH = 50
LRUKV = str(Path(sys.executable).parent / "lrukv")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(
        tmp_path_factory.mktemp("batch-server"),
        "--max-value-bytes", str(MAX_VALUE),
        "--max-batch-entries", str(MAX_BATCH),
        "--shards", "8", "--items-per-shard", "20000",
    )  # fmt: skip
    try:
        yield process
    finally:
        with contextlib.suppress(TimeoutError):
            process.stop(timeout=20)


def open_client(transport: str, server: ServerProcess, **kwargs: object) -> AnyClient:
    if transport == "grpc":
        return Client(server.rpc_addr, timeout=15.0, **kwargs)  # type: ignore[arg-type]
    return HttpClient(server.http_addr, timeout=15.0, **kwargs)  # type: ignore[arg-type]


def _skip_without_batches(kv: AnyClient) -> None:
    try:
        kv.get_many(["probe"])
    except ServerError as err:
        if err.code in ("UNIMPLEMENTED", 404, 405):
            pytest.skip(f"this server has no batch API yet ({err.code})")
        raise


@pytest.fixture
def kv(transport: str, server: ServerProcess) -> Iterator[AnyClient]:
    with open_client(transport, server) as client:
        _skip_without_batches(client)
        yield client


@pytest.fixture
def prefix() -> str:
    return f"b{uuid.uuid4().hex[:8]}/"


def test_a_batch_mixed_with_bad_keys_and_oversized_values(kv: AnyClient, prefix: str) -> None:
    items = [
        (prefix + "ok", b"fine"),
        ("bad\x01key", b"v"),
        (prefix + "big", b"x" * (MAX_VALUE + 1)),
        ("k" * 1025, b"v"),
        (prefix + "max", b"y" * MAX_VALUE),
    ]
    results = kv.put_many(items)
    assert [r.ok for r in results] == [True, False, False, False, True]
    codes = [r.error.error_code if r.error else None for r in results]
    assert codes == [None, "invalid_key", "value_too_large", "invalid_key", None]
    assert isinstance(results[2].error, ValueTooLarge)
    assert kv.get_many([prefix + "ok", prefix + "big", prefix + "max"]) == {
        prefix + "ok": b"fine",
        prefix + "max": b"y" * MAX_VALUE,
    }
    got = kv.get_many_results([prefix + "ok", "bad\x01key"])
    assert got[0].value == b"fine"
    assert isinstance(got[1].error, InvalidArgument) and got[1].error.error_code == "invalid_key"


def test_empty_batches(kv: AnyClient) -> None:
    assert kv.put_many([]) == []
    assert kv.get_many([]) == {}
    assert kv.delete_many([], atomic=True) == []


def test_duplicate_keys_in_one_batch(kv: AnyClient, prefix: str) -> None:
    results = kv.put_many([(prefix + "k", b"first"), (prefix + "k", b"second")])
    assert [r.ok for r in results] == [True, True]
    assert kv.get(prefix + "k") == b"second"
    assert [r.existed for r in kv.delete_many([prefix + "k", prefix + "k"])] == [True, False]


def test_inputs_over_the_servers_limit_are_split(transport: str, server: ServerProcess) -> None:
    # The client's chunks (200) are above the server's --max-batch-entries (50): the
    # first request is refused whole (batch_too_large) and the client halves.
    prefix = f"split-{transport}/"
    with open_client(transport, server, batch_size=200) as kv:
        _skip_without_batches(kv)
        items = {f"{prefix}{i:04}": i.to_bytes(2, "big") for i in range(333)}
        results = kv.put_many(items)
        assert all(r.ok for r in results) and len(results) == 333
        assert kv.get_many(items) == items
        deleted = kv.delete_many(items)
        assert all(r.existed for r in deleted)


def test_atomic_batches_are_all_or_nothing(kv: AnyClient, prefix: str) -> None:
    with pytest.raises(ValueTooLarge):
        kv.put_many({prefix + "a": b"1", prefix + "b": b"x" * (MAX_VALUE + 1)}, atomic=True)
    assert kv.get_many([prefix + "a", prefix + "b"]) == {}
    with pytest.raises(BatchTooLarge) as info:
        kv.put_many({f"{prefix}{i}": b"v" for i in range(MAX_BATCH + 1)}, atomic=True)
    assert info.value.error_code == "batch_too_large"
    assert kv.get_many([f"{prefix}{i}" for i in range(MAX_BATCH + 1)]) == {}
    kv.put_many({prefix + "a": b"1", prefix + "b": b"2"}, atomic=True)
    assert len(kv.get_many([prefix + "a", prefix + "b"])) == 2


def test_a_pipeline_against_the_real_server(kv: AnyClient, prefix: str) -> None:
    with kv.pipeline(window=16) as p:
        puts = [p.put(f"{prefix}{i}", bytes([i % 256]) * 10) for i in range(300)]
        reads = [p.get(f"{prefix}{i}") for i in range(0, 300, 7)]
        missing = p.get(prefix + "absent")
        refused = p.put("bad\x01", b"v")
        too_big = p.put(prefix + "big", b"x" * (MAX_VALUE + 1))
        removed = p.delete(f"{prefix}0")
    assert [f.result() for f in puts] == [None] * 300
    assert [f.result() for f in reads] == [bytes([i % 256]) * 10 for i in range(0, 300, 7)]
    with pytest.raises(KeyNotFound):
        missing.result()
    assert isinstance(refused.exception(), InvalidArgument)
    assert isinstance(too_big.exception(), ValueTooLarge)
    assert removed.result() is True


@pytest.mark.parametrize("how", ["grpc", "http"])
def test_a_pipeline_whose_client_vanishes_mid_stream(
    how: str, server: ServerProcess, prefix: str
) -> None:
    address = server.rpc_addr if how == "grpc" else server.http_addr
    with open_client(how, server) as probe:
        _skip_without_batches(probe)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.client.sdk_pipeline_client", how, address, prefix],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"streaming", child.stderr
        os.kill(child.pid, signal.SIGKILL)  # no cancel, no close: the connection just dies
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # The server goes on serving both transports, pipelines included.
    for transport in ("grpc", "http"):
        with open_client(transport, server) as kv:
            assert kv.get(prefix + "first") == b"v" * 100
            kv.put(prefix + "after", transport.encode())
            with kv.pipeline() as p:
                again = p.get(prefix + "after")
            assert again.result() == transport.encode()


def test_the_asyncio_client_batches_against_the_real_server(
    server: ServerProcess, prefix: str
) -> None:
    import asyncio

    from lrukv_client import AsyncClient

    async def scenario() -> None:
        async with AsyncClient(server.rpc_addr, batch_size=200) as kv:
            try:
                await kv.get_many(["probe"])
            except ServerError as err:
                pytest.skip(f"no batch API ({err.code})")
            items = {f"{prefix}{i}": bytes([i]) for i in range(120)}
            assert all(r.ok for r in await kv.put_many(items))
            assert await kv.get_many(items) == items
            async with kv.pipeline(window=8) as p:
                futures = [await p.get(key) for key in list(items)[:30]]
            assert [f.result() for f in futures] == list(items.values())[:30]

    asyncio.run(scenario())


# -- export / import -------------------------------------------------------------------------


def _cli(
    server_address: str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    return subprocess.run(
        [LRUKV, "-s", server_address, "--timeout", "30", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def _address(transport: str, server: ServerProcess) -> str:
    return server.rpc_addr if transport == "grpc" else server.http_url


def _digest(kv: AnyClient) -> str:
    with kv.items() as stream:
        pairs = sorted(stream)
    hasher = hashlib.sha256()
    for key, value in pairs:
        hasher.update(json.dumps([key, value.hex()]).encode())
    return hasher.hexdigest()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_export_then_import_round_trips_every_byte(transport: str, tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    source = start_server(tmp_path / "source")
    target = start_server(tmp_path / "target")
    try:
        with open_client(transport, source) as kv:
            _skip_without_batches(kv)
            kv.delete("probe")
            items = {f"byte-{b:03}": bytes([b]) for b in range(256)}
            items["all-bytes"] = bytes(range(256))
            items["empty"] = b""
            items["caf\u00e9 \u2603 \U0001f600"] = "unicode value \u2603".encode()
            items['quote"back\\slash/slash'] = b"\r\n\t\x00"
            assert all(r.ok for r in kv.put_many(items))
            source_digest = _digest(kv)
        dump = tmp_path / "store.ndjson"
        exported = _cli(_address(transport, source), "export", str(dump))
        assert exported.returncode == 0, exported.stderr
        assert f"exported {len(items)} items".encode() in exported.stderr
        lines = dump.read_bytes().splitlines()
        assert len(lines) == len(items)
        imported = _cli(_address(transport, target), "import", str(dump))
        assert imported.returncode == 0, imported.stderr
        with open_client(transport, target) as kv:
            assert _digest(kv) == source_digest
            assert kv.get_many(items) == items
    finally:
        for process in (source, target):
            with contextlib.suppress(TimeoutError):
                process.stop(timeout=20)


def test_import_reports_refused_lines_with_their_numbers(
    server: ServerProcess, prefix: str
) -> None:
    good = json.dumps({"key": prefix + "good", "value": "AP8="})
    lines = [
        good,
        "not json",
        json.dumps({"key": "bad\u0001key", "value": "AA=="}),
        "",
        json.dumps({"key": prefix + "big", "value": "eHh4" * (MAX_VALUE // 3 + 1)}),
        json.dumps({"key": prefix + "novalue"}),
        json.dumps({"key": prefix + "last", "value": ""}),
    ]
    result = _cli(server.rpc_addr, "import", "-", stdin="\n".join(lines).encode())
    assert result.returncode == 2
    stderr = result.stderr.decode()
    for number in (2, 3, 5, 6):
        assert f"line {number}:" in stderr, stderr
    assert "line 1:" not in stderr and "line 7:" not in stderr
    assert "imported 2 items" in stderr
    with Client(server.rpc_addr) as kv:
        assert kv.get_many([prefix + "good", prefix + "last"]) == {
            prefix + "good": b"\x00\xff",
            prefix + "last": b"",
        }


def test_mget_and_mput_from_the_command_line(server: ServerProcess, prefix: str) -> None:
    stored = _cli(server.http_url, "mput", f"{prefix}a=1", f"{prefix}b=two words")
    assert stored.returncode == 0, stored.stderr
    got = _cli(server.rpc_addr, "mget", f"{prefix}a", f"{prefix}missing", f"{prefix}b")
    assert got.returncode == 1
    assert got.stdout.decode().splitlines() == [f"{prefix}a\t1", f"{prefix}b\ttwo words"]
    assert f"not found: {prefix}missing" in got.stderr.decode()
    piped = _cli(server.rpc_addr, "mput", stdin=f"{prefix}c=from stdin\n".encode())
    assert piped.returncode == 0, piped.stderr
    refused = _cli(server.rpc_addr, "mput", f"{prefix}ok=1", "bad\x01=2")
    assert refused.returncode == 2 and b"control character" in refused.stderr
    with Client(server.rpc_addr) as kv:
        assert kv.get(prefix + "c") == b"from stdin"
        assert kv.get(prefix + "ok") == b"1"
