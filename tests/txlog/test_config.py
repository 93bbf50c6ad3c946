"""TxLogConfig: the -d/--dbLogger flag, fsync policies and table names."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrukv_server.txlog import Backend, FsyncPolicy, TxLogConfig, open_log
from lrukv_server.txlog.pg_names import redact_dsn, table_name


@pytest.mark.parametrize("flag", [None, "", "off", "false", "OFF"])
def test_the_log_is_off_by_default(flag: str | None, tmp_path: Path) -> None:
    config = TxLogConfig.from_flag(flag, env={})
    assert config.backend is Backend.OFF
    assert open_log(config, tmp_path, "n") is None


def test_file_logs_live_under_the_data_directory_unless_absolute(tmp_path: Path) -> None:
    assert TxLogConfig.from_flag("file").file_path(tmp_path) == str(tmp_path / "txlog.log")
    assert TxLogConfig.from_flag("file:sub/my.log").file_path(tmp_path) == str(
        tmp_path / "sub" / "my.log"
    )
    assert TxLogConfig.from_flag("file:/var/x.log").file_path(tmp_path) == "/var/x.log"
    assert TxLogConfig.from_flag("file:///var/x.log").path == "/var/x.log"


def test_a_dsn_comes_from_the_flag_or_from_the_environment() -> None:
    flag = TxLogConfig.from_flag("postgresql://u@h/db", env={})
    assert (flag.backend, flag.dsn) == (Backend.POSTGRES, "postgresql://u@h/db")
    env = {"LRUKV_PG_DSN": "postgresql://e@h/db"}
    for value in ("postgres", "true", "on"):
        assert TxLogConfig.from_flag(value, env=env).dsn == "postgresql://e@h/db"
    with pytest.raises(ValueError, match="LRUKV_PG_DSN is not set"):
        TxLogConfig.from_flag("postgres", env={})


@pytest.mark.parametrize(
    ("text", "policy", "interval"),
    [("always", FsyncPolicy.ALWAYS, 100), ("never", FsyncPolicy.NEVER, 100),
     ("interval", FsyncPolicy.INTERVAL, 100), ("interval:25", FsyncPolicy.INTERVAL, 25)],
)  # fmt: skip
def test_fsync_policies_parse(text: str, policy: FsyncPolicy, interval: int) -> None:
    config = TxLogConfig.from_flag("file", fsync=text)
    assert (config.fsync, config.fsync_interval_ms) == (policy, interval)


@pytest.mark.parametrize(
    ("flag", "fsync", "message"),
    [("mysql://x", None, "unknown transaction log"), ("file:", None, "needs a path"),
     ("file", "sometimes", "invalid fsync policy"), ("file", "always:5", "only the interval"),
     ("file", "interval:0", "positive"), ("file", "interval:x", "whole number of milliseconds")],
)  # fmt: skip
def test_bad_settings_say_what_is_wrong(flag: str, fsync: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TxLogConfig.from_flag(flag, fsync=fsync, env={})


def test_validate_checks_numbers_and_the_dsn() -> None:
    with pytest.raises(ValueError, match="pg_queue_size"):
        TxLogConfig(pg_queue_size=0).validate()
    with pytest.raises(ValueError, match="pg_sync_timeout_s"):
        TxLogConfig(pg_sync_timeout_s=float("inf")).validate()
    with pytest.raises(ValueError, match="needs a DSN"):
        TxLogConfig(backend=Backend.POSTGRES).validate()
    assert TxLogConfig(compact_after_events=None).validate().compact_after_events is None


def test_descriptions_never_show_a_password() -> None:
    config = TxLogConfig.from_flag("postgresql://app:hunter2@db:5432/kv")
    assert "hunter2" not in config.describe()
    assert redact_dsn("postgresql://app:hunter2@db/kv") == "postgresql://app:***@db/kv"
    assert "fsync=interval:50ms" in TxLogConfig.from_flag("file", fsync="interval:50").describe()


def test_table_names_are_safe_distinct_and_short() -> None:
    ids = ["node1", "Node1", "node-1", "node_1", "n" * 200, "n" * 199 + "m", 'x"; DROP TABLE y']
    names = [table_name(node) for node in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert len(name) + len("_snapshot") <= 63
        assert name.replace("_", "").isalnum()
        assert name == name.lower()
    assert table_name("node1") == "lrukv_txlog_node1"
