"""``lrukv mget``, ``mput``, ``export``, ``import`` and ``bench --batch/--pipeline``
through Typer's CliRunner against the fake node, over both transports."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest

from tests.client.fakes import FakeNode, Fault
from tests.client.test_cli_runner import lrukv


def test_mput_then_mget(fake: FakeNode, transport: str) -> None:
    stored = lrukv(fake, transport, "mput", "a=1", "b=x=y", "c=")
    assert stored.exit_code == 0, stored.output
    assert fake.data == {"a": b"1", "b": b"x=y", "c": b""}
    got = lrukv(fake, transport, "mget", "a", "nope", "b", "c")
    assert got.exit_code == 1  # a key was absent
    assert got.stdout.splitlines() == ["a\t1", "b\tx=y", "c\t"]
    assert "not found: nope" in got.stderr
    assert lrukv(fake, transport, "mget", "a", "b").exit_code == 0


def test_mget_json_names_every_key(fake: FakeNode, transport: str) -> None:
    fake.data.update({"t": b"text", "bin": b"\xff\x00"})
    result = lrukv(fake, transport, "--json", "mget", "t", "bin", "nope")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [
        {"key": "t", "found": True, "value": "text", "encoding": "utf-8"},
        {"key": "bin", "found": True, "value": "/wA=", "encoding": "base64"},
        {"key": "nope", "found": False},
    ]


def test_mput_reads_stdin_and_reports_refused_pairs(fake: FakeNode, transport: str) -> None:
    fake.max_value_bytes = 3
    result = lrukv(fake, transport, "mput", input=b"a=1\nbig=12345\n\nb=2\n")
    assert result.exit_code == 2
    assert fake.data == {"a": b"1", "b": b"2"}
    assert "'big'" in result.stderr and result.stdout.startswith("OK 2 stored")
    assert lrukv(fake, transport, "mput", "novalue").exit_code == 2


def test_export_writes_exact_bytes_as_ndjson(
    fake: FakeNode, transport: str, tmp_path: Path
) -> None:
    fake.data.update({"bin": bytes(range(256)), "empty": b"", "caf\u00e9": "\u2603".encode()})
    out = tmp_path / "dump.ndjson"
    result = lrukv(fake, transport, "export", str(out))
    assert result.exit_code == 0, result.output
    assert "exported 3 items" in result.stderr
    rows = {row["key"]: base64.b64decode(row["value"]) for row in map(json.loads, out.open())}
    assert rows == fake.data
    to_stdout = lrukv(fake, transport, "export", "-")
    assert len(to_stdout.stdout.splitlines()) == 3
    batched = lrukv(fake, transport, "export", "--batched", "-")
    assert sorted(batched.stdout.splitlines()) == sorted(to_stdout.stdout.splitlines())
    assert fake.count("GetMany") == 1 and fake.count("GetKeys") == 1


def test_import_stores_and_names_refused_lines(
    fake: FakeNode, transport: str, tmp_path: Path
) -> None:
    dump = tmp_path / "in.ndjson"
    dump.write_text(
        "\n".join(
            [
                json.dumps({"key": "a", "value": "AP8="}),
                "{broken",
                json.dumps({"key": "ctl\u0001", "value": ""}),
                json.dumps({"key": "t", "value": "dg==", "ttl": 60}),
            ]
        )
    )
    result = lrukv(fake, transport, "import", str(dump))
    assert result.exit_code == 2
    assert "line 2: not JSON" in result.stderr and "line 3:" in result.stderr
    assert "2 lines of" in result.stderr
    assert fake.data == {"a": b"\x00\xff", "t": b"v"}
    assert fake.ttls["t"] == 60


def test_import_keeps_the_order_of_a_key_given_twice(fake: FakeNode, tmp_path: Path) -> None:
    # Chunks of 1000 go four at a time; the second "k" is in a later chunk.
    lines = [json.dumps({"key": "k", "value": "Zmlyc3Q="})]
    lines += [json.dumps({"key": f"f{i}", "value": ""}) for i in range(2500)]
    lines += [json.dumps({"key": "k", "value": "bGFzdA=="})]
    dump = tmp_path / "twice.ndjson"
    dump.write_text("\n".join(lines) + "\n")
    assert lrukv(fake, "grpc", "import", str(dump)).exit_code == 0
    assert fake.data["k"] == b"last" and len(fake.data) == 2501


def test_import_of_a_missing_file_is_a_usage_error(fake: FakeNode, tmp_path: Path) -> None:
    result = lrukv(fake, "grpc", "import", str(tmp_path / "nope.ndjson"))
    assert result.exit_code == 2 and "cannot read" in result.stderr


@pytest.mark.parametrize("mode", [["--batch", "8"], ["--pipeline", "8"]])
def test_bench_in_batches_and_pipelines_still_checks_values(
    fake: FakeNode, transport: str, mode: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "result.json"
    args = ["bench", "--ops", "120", "-c", "2", "--keyspace", "30", "--private-ratio", "0.5"]
    result = lrukv(
        fake, transport, *args, "--mix", "get=5,put=3,delete=1,keys=1", *mode, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["correctness"]["checked_reads"] > 0 and data["correctness"]["errors"] == 0
    assert data["ops"]["errors"] == 0
    if mode[0] == "--batch":
        assert data["ops"]["completed"] > 120  # counts are per key: 8 per batch
        assert max(fake.batch_sizes) == 8
    # A server that corrupts private values is caught in every mode.
    fake.tamper = lambda key, value: b"corrupted" if ":p" in key else value
    bad = lrukv(fake, transport, *args, "--mix", "get=1,put=1", *mode, "-o", str(out))
    assert bad.exit_code == 5, bad.output
    assert json.loads(out.read_text())["correctness"]["wrong_value"] > 0


def test_bench_batches_count_a_failed_batch_per_key(fake: FakeNode, tmp_path: Path) -> None:
    fake.fail("PutMany", Fault(grpc.StatusCode.PERMISSION_DENIED, "read-only"), times=1000)
    out = tmp_path / "result.json"
    args = ["bench", "--ops", "40", "-c", "1", "--mix", "put=1", "--no-preload", "--batch", "5"]
    result = lrukv(fake, "grpc", *args, "-o", str(out))
    assert result.exit_code == 6, result.output
    data = json.loads(out.read_text())
    assert data["errors"] == {"PermissionDenied": 200}


def test_bench_refuses_batch_and_pipeline_together(fake: FakeNode) -> None:
    result = lrukv(fake, "grpc", "bench", "--ops", "1", "--batch", "2", "--pipeline", "2")
    assert result.exit_code == 2
