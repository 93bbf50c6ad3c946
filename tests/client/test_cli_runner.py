"""The ``lrukv`` CLI through Typer's CliRunner, against the fake node: output
formats, exit codes, and one-line errors, over both transports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from lrukv_client.cli import app
from tests.client.fakes import FakeNode, Fault

runner = CliRunner()


def lrukv(
    node: FakeNode, transport: str, *args: str, input: bytes | None = None, timeout: str = "2"
) -> Result:
    server = node.rpc_addr if transport == "grpc" else f"http://{node.http_addr}"
    return runner.invoke(
        app,
        ["--server", server, "--timeout", timeout, *args],
        input=input,
        env={"LRUKV_SERVER": None, "LRUKV_TRANSPORT": None, "LRUKV_DEBUG": None},
    )


def assert_one_error_line(result: Result, *words: str) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lrukv: error: "), lines[0]
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


def test_put_and_get_round_trip_binary_values(fake: FakeNode, transport: str) -> None:
    assert lrukv(fake, transport, "put", "k", "Hello, key-value store!").stdout == "OK\n"
    result = lrukv(fake, transport, "get", "k")
    assert result.exit_code == 0
    assert result.stdout_bytes == b"Hello, key-value store!"  # no newline added to a pipe
    binary = bytes(range(256))
    assert lrukv(fake, transport, "put", "bin", "-", input=binary).exit_code == 0
    assert lrukv(fake, transport, "get", "bin").stdout_bytes == binary
    assert fake.data["bin"] == binary


def test_put_reads_a_file_and_sets_a_ttl(fake: FakeNode, transport: str, tmp_path: Path) -> None:
    path = tmp_path / "value.bin"
    path.write_bytes(b"\x00from a file\xff")
    assert lrukv(fake, transport, "put", "f", "--file", str(path), "--ttl", "30").exit_code == 0
    assert fake.data["f"] == b"\x00from a file\xff"
    assert fake.ttls["f"] == 30.0


def test_get_can_write_the_value_to_a_file(fake: FakeNode, tmp_path: Path) -> None:
    fake.put("k", b"\x01\x02", None)
    out = tmp_path / "out.bin"
    result = lrukv(fake, "grpc", "get", "k", "--output", str(out))
    assert result.exit_code == 0
    assert result.stdout_bytes == b""
    assert out.read_bytes() == b"\x01\x02"


def test_json_output(fake: FakeNode, transport: str) -> None:
    fake.put("text", "caf\u00e9".encode(), None)
    fake.put("bin", b"\xff\x00", None)
    got = json.loads(lrukv(fake, transport, "--json", "get", "text").stdout)
    assert got == {"key": "text", "value": "caf\u00e9", "encoding": "utf-8"}
    got = json.loads(lrukv(fake, transport, "--json", "get", "bin").stdout)
    assert got == {"key": "bin", "value": "/wA=", "encoding": "base64"}
    assert json.loads(lrukv(fake, transport, "--json", "keys").stdout) == ["bin", "text"]
    lines = lrukv(fake, transport, "--json", "items").stdout.splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["bin", "text"]
    put = json.loads(lrukv(fake, transport, "--json", "put", "n", "abc").stdout)
    assert put == {"key": "n", "stored": True, "bytes": 3}
    deleted = json.loads(lrukv(fake, transport, "--json", "delete", "n").stdout)
    assert deleted == {"key": "n", "existed": True}
    servers = json.loads(lrukv(fake, transport, "--json", "servers").stdout)
    assert servers == [
        {"id": "fake-1", "rpc_addr": fake.rpc_addr, "http_addr": fake.http_addr, "is_leader": True}
    ]


@pytest.mark.parametrize(
    ("readable", "original"), [("keys", "getkeys"), ("items", "getkeysvalues")]
)
def test_the_originals_command_names_are_aliases(
    fake: FakeNode, readable: str, original: str
) -> None:
    fake.put("a", b"1", None)
    fake.put("b", b"\x00", None)
    first = lrukv(fake, "grpc", readable)
    assert first.exit_code == 0
    assert first.stdout == lrukv(fake, "grpc", original).stdout


def test_text_listings(fake: FakeNode) -> None:
    fake.put("a", b"plain text", None)
    fake.put("b", b"\x00\x01", None)
    assert lrukv(fake, "grpc", "keys").stdout == "a\nb\n"
    assert lrukv(fake, "grpc", "items").stdout == "a\tplain text\nb\tbase64:AAE=\n"
    assert lrukv(fake, "grpc", "items", "--limit", "1").stdout == "a\tplain text\n"
    table = lrukv(fake, "grpc", "servers").stdout.splitlines()
    assert table[0].split() == ["ID", "GRPC", "HTTP", "ROLE"]
    assert table[1].split() == ["fake-1", fake.rpc_addr, fake.http_addr, "leader"]


def test_a_missing_key_exits_1_with_one_line(fake: FakeNode, transport: str) -> None:
    result = lrukv(fake, transport, "get", "nope")
    assert result.exit_code == 1
    assert result.stdout_bytes == b""
    assert_one_error_line(result, "key not found", "nope")


def test_delete_of_an_absent_key_succeeds_unless_it_must_exist(fake: FakeNode) -> None:
    result = lrukv(fake, "grpc", "delete", "nope")
    assert (result.exit_code, result.stdout) == (0, "absent\n")
    assert lrukv(fake, "grpc", "delete", "nope", "--must-exist").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["put", "k"],  # no value
        ["put", "k", "v", "--file", __file__],  # both
        ["get"],
        ["frobnicate"],
        ["--transport", "carrier-pigeon", "get", "k"],
        ["get", "k", "--consistency", "eventual"],
        ["--timeout", "-1", "get", "k"],
    ],
)
def test_usage_errors_exit_2(fake: FakeNode, args: list[str]) -> None:
    result = lrukv(fake, "grpc", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert fake.calls == []


def test_arguments_the_server_refuses_exit_2(fake: FakeNode, transport: str) -> None:
    fake.fail("Put", Fault(grpc.StatusCode.INVALID_ARGUMENT, "key contains control character"))
    result = lrukv(fake, transport, "put", "k", "v")
    assert result.exit_code == 2
    assert_one_error_line(result, "control character")
    fake.fail("Put", Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "value is too large"))
    assert lrukv(fake, transport, "put", "k", "v").exit_code == 2


def test_denied_exits_3(fake: FakeNode, transport: str) -> None:
    fake.fail("Get", Fault(grpc.StatusCode.PERMISSION_DENIED, "not for you"))
    result = lrukv(fake, transport, "get", "k")
    assert result.exit_code == 3
    assert_one_error_line(result, "permission denied", "not for you")


def test_an_unreachable_server_exits_3_with_one_line(fake: FakeNode, transport: str) -> None:
    fake.stop()
    result = lrukv(fake, transport, "get", "k", timeout="0.5")
    assert result.exit_code == 3
    assert_one_error_line(result, "unavailable")


def test_an_internal_server_error_exits_4(fake: FakeNode, transport: str) -> None:
    fake.fail("Get", Fault(grpc.StatusCode.INTERNAL, "boom"))
    result = lrukv(fake, transport, "get", "k")
    assert result.exit_code == 4
    assert_one_error_line(result, "boom")


def test_the_server_comes_from_the_environment(fake: FakeNode) -> None:
    fake.put("k", b"v", None)
    result = runner.invoke(app, ["get", "k"], env={"LRUKV_SERVER": fake.rpc_addr})
    assert result.stdout_bytes == b"v"
    result = runner.invoke(
        app, ["get", "k"], env={"LRUKV_SERVER": fake.http_addr, "LRUKV_TRANSPORT": "http"}
    )
    assert result.stdout_bytes == b"v"


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0
    assert "_LRUKV_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _lrukv_completion lrukv" in result.stdout


def test_bench_against_the_fake_writes_its_json(fake: FakeNode, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = lrukv(
        fake, "grpc", "bench", "--ops", "300", "-c", "3", "--keyspace", "20",
        "--mix", "get=5,put=3,delete=1,keys=1", "--private-ratio", "0.5", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["ops"] == {"completed": 300, "errors": 0, "total": 300}
    assert set(data["by_op"]) == {"get", "put", "delete", "keys"}
    assert data["correctness"]["checked_reads"] > 0
    assert data["correctness"]["errors"] == 0
    assert data["passed"] is True
    assert "correctness PASSED" in result.stdout


def test_bench_exits_5_when_reads_return_wrong_values(fake: FakeNode, tmp_path: Path) -> None:
    # The fake corrupts the values of the bench's private keys.
    fake.tamper = lambda key, value: b"corrupted" if ":p" in key else value
    out = tmp_path / "result.json"
    result = lrukv(
        fake, "grpc", "bench", "--ops", "400", "-c", "2", "--private-ratio", "0.5",
        "--mix", "get=1,put=1", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 5, result.output
    data = json.loads(out.read_text())
    assert data["correctness"]["wrong_value"] > 0
    assert "corrupted" in data["correctness"]["samples"][0]
    assert data["passed"] is False
    assert "correctness FAILED" in result.stdout


def test_bench_counts_failed_operations_by_kind_and_exits_6(fake: FakeNode, tmp_path: Path) -> None:
    fake.fail("Put", Fault(grpc.StatusCode.PERMISSION_DENIED, "read-only"), times=1000)
    out = tmp_path / "result.json"
    args = ["bench", "--ops", "200", "-c", "2", "--mix", "get=1,put=1", "--no-preload"]
    result = lrukv(fake, "grpc", *args, "-o", str(out))
    assert result.exit_code == 6, result.output
    data = json.loads(out.read_text())
    assert data["errors"] == {"PermissionDenied": data["by_op"]["put"]["error"]}
    assert data["by_op"]["put"]["ok"] == 0
    assert "read-only" in data["error_samples"][0]
    assert lrukv(fake, "grpc", *args, "-o", str(out), "--allow-errors").exit_code == 0


def test_bench_refuses_an_unreachable_server_up_front(fake: FakeNode, tmp_path: Path) -> None:
    fake.stop()
    out = tmp_path / "result.json"
    result = lrukv(fake, "grpc", "bench", "--ops", "10", "-o", str(out), timeout="0.5")
    assert result.exit_code == 3
    assert_one_error_line(result, "unavailable")
    assert not out.exists()


# -- messages (issue 8, item 16) ----------------------------------------------------------


def test_put_without_a_value_says_what_is_missing(fake: FakeNode) -> None:
    result = lrukv(fake, "grpc", "put", "k")
    assert result.exit_code == 2
    assert "nothing to store" in result.stderr
    assert "'-'" in result.stderr and "--file" in result.stderr
    assert "not both" not in result.stderr
    both = lrukv(fake, "grpc", "put", "k", "v", "--file", __file__)
    assert both.exit_code == 2 and "not both" in both.stderr


@pytest.mark.parametrize(
    ("args", "stored", "ttl"),
    [
        (["put", "counter", "-5"], b"-5", None),
        (["put", "counter", "-0.5", "--ttl", "9"], b"-0.5", 9.0),
        (["put", "--ttl", "9", "counter", "-1e3"], b"-1e3", 9.0),
        (["put", "counter", "--", "-x"], b"-x", None),
    ],
)
def test_a_negative_number_is_a_value(
    fake: FakeNode, args: list[str], stored: bytes, ttl: float | None
) -> None:
    result = lrukv(fake, "grpc", *args)
    assert result.exit_code == 0, result.output
    assert fake.data["counter"] == stored
    assert fake.ttls["counter"] == ttl


def test_an_unknown_option_after_put_is_still_an_error(fake: FakeNode) -> None:
    result = lrukv(fake, "grpc", "put", "k", "-5", "--tll", "3")
    assert result.exit_code == 2
    assert "--tll" in result.stderr
    assert fake.calls == []


def test_bare_lrukv_prints_help_and_succeeds() -> None:
    result = runner.invoke(app, [], env={"LRUKV_SERVER": None})
    assert result.exit_code == 0, result.output
    assert "Usage: lrukv" in result.stdout
    assert "bench" in result.stdout and "stats" in result.stdout


def test_the_progress_bar_shows_zero_errors_uncoloured(fake: FakeNode, tmp_path: Path) -> None:
    server = fake.rpc_addr
    args = ["-s", server, "bench", "--ops", "50", "--keyspace", "10", "--progress", "-o", "-"]
    colour = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": None, "COLUMNS": "200"}
    result = runner.invoke(app, args, env={"LRUKV_SERVER": None, **colour})
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.stderr  # colours are on
    assert "0 errors" in result.stderr
    assert "\x1b[31m0 errors" not in result.stderr
    fake.fail("Put", Fault(grpc.StatusCode.PERMISSION_DENIED, "read-only"), times=1000)
    failing = [*args[:3], "--ops", "50", "--mix", "put=1", "--no-preload", "--progress", "-o", "-"]
    result = runner.invoke(app, failing, env={"LRUKV_SERVER": None, **colour})
    assert result.exit_code == 6, result.output
    assert "\x1b[31m50 errors" in result.stderr


def test_the_bench_result_names_the_server_and_transport(fake: FakeNode, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    for transport, address in (("grpc", fake.rpc_addr), ("http", f"http://{fake.http_addr}")):
        result = lrukv(fake, transport, "bench", "--ops", "20", "--keyspace", "5", "-o", str(out))
        assert result.exit_code == 0, result.output
        config = json.loads(out.read_text())["config"]
        assert (config["server"], config["transport"]) == (address, transport)
    result = lrukv(fake, "grpc", "bench", "--ops", "20", "--keyspace", "5", "-o", "-")
    assert "over grpc" in result.stdout


# -- bench --output (item 11) -------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing/run.json", "is-a-folder", "read-only/run.json"])
def test_an_unwritable_output_is_refused_before_the_load(
    fake: FakeNode, tmp_path: Path, where: str
) -> None:
    (tmp_path / "is-a-folder").mkdir()
    (tmp_path / "read-only").mkdir(mode=0o500)
    out = tmp_path / where
    result = lrukv(fake, "grpc", "bench", "--ops", "20", "-o", str(out))
    if where.startswith("read-only") and os.access(tmp_path / "read-only", os.W_OK):
        pytest.skip("running as root: permissions do not stop writes")
    assert result.exit_code == 2, result.output
    assert_one_error_line(result, "--output")
    assert fake.calls == []  # no load ran
    assert not (tmp_path / "missing").exists()  # no folder was created


def test_a_late_write_failure_keeps_the_summary(fake: FakeNode) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    result = lrukv(fake, "grpc", "bench", "--ops", "30", "--keyspace", "5", "-o", "/dev/full")
    assert result.exit_code == 2, result.output
    assert "throughput:" in result.stdout and "correctness PASSED" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("lrukv: error:")]
    assert errors == ["lrukv: error: cannot write --output /dev/full: No space left on device"]


# -- bench and the server's own keys (item 10) ---------------------------------------------


def test_bench_refuses_to_evict_the_servers_keys(fake: FakeNode, tmp_path: Path) -> None:
    fake.capacity = 100
    for i in range(30):
        fake.put(f"user:{i}", b"mine", None)
    out = tmp_path / "result.json"
    result = lrukv(fake, "grpc", "bench", "--ops", "50", "--keyspace", "80", "-o", str(out))
    assert result.exit_code == 2, result.output
    assert_one_error_line(result, "30 keys", "room for 100", "evict", "--allow-evictions")
    assert fake.count("Put") == 0
    assert not out.exists()
    allowed = lrukv(
        fake, "grpc", "bench", "--ops", "50", "--keyspace", "80", "--allow-evictions", "-o", "-"
    )
    assert allowed.exit_code == 0, allowed.output


def test_bench_uses_its_prefix_and_cleans_up_unless_kept(fake: FakeNode) -> None:
    fake.put("user:1", b"mine", None)
    args = ["bench", "--ops", "200", "--keyspace", "20", "--private-ratio", "0.5", "-o", "-"]
    result = lrukv(fake, "grpc", *args, "--prefix", "load/")
    assert result.exit_code == 0, result.output
    assert fake.count("Put") > 0
    assert list(fake.data) == ["user:1"]  # every key the run wrote is gone
    assert "deleted" in result.stdout
    kept = lrukv(fake, "grpc", *args, "--prefix", "load/", "--keep")
    assert kept.exit_code == 0, kept.output
    left = set(fake.data) - {"user:1"}
    assert left and all(key.startswith("load/") for key in left)
    assert fake.data["user:1"] == b"mine"
