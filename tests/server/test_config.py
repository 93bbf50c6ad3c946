"""Server settings: flags beat LRUKV_* environment, which beats the TOML file, which
beats the defaults; the original Go flag spellings still work; bad values are
refused with a message that names where they came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lrukv_server.config import (
    DEFAULT_MAX_VALUE_BYTES,
    SETTINGS,
    ConfigError,
    LogMode,
    ServerConfig,
    load_config,
)
from lrukv_server.txlog import Backend, FsyncPolicy

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_are_the_original_single_node() -> None:
    config = load_config([], env={})
    assert (config.store.shards, config.store.items_per_shard) == (10, 100)
    assert (config.http.port, config.grpc.port) == (8080, 50051)
    assert config.host == "127.0.0.1"  # never every interface by accident
    assert config.txlog.backend is Backend.OFF
    assert config.logging.mode is LogMode.PROD
    assert not config.observability.metrics and not config.observability.tracing
    assert config.store.max_value_bytes == DEFAULT_MAX_VALUE_BYTES == 1 << 20
    assert config.store.max_key_bytes == 1024


def test_short_flags_and_original_long_spellings() -> None:
    argv = ["-s", "3", "--itemPerShard", "7", "--dbLogger", "file", "--isMetrics", "--isTracing",
            "--loggerMode", "debug", "-j", "http://jaeger:14268/api/traces"]  # fmt: skip
    config = load_config(argv, env={})
    assert (config.store.shards, config.store.items_per_shard) == (3, 7)
    assert config.txlog.backend is Backend.FILE
    assert config.observability.metrics and config.observability.tracing
    assert config.logging.mode is LogMode.DEBUG
    assert config.observability.jaeger == "http://jaeger:14268/api/traces"
    modern = load_config(
        ["--shards", "3", "-i", "7", "-d", "file", "-m", "-t", "-l", "debug"], env={}
    )
    assert modern == load_config(argv[:-2], env={})


def test_boolean_flags_accept_an_explicit_value() -> None:
    assert load_config(["--metrics=false"], env={}).observability.metrics is False
    assert load_config(["-m", "true"], env={}).observability.metrics is True


def test_flags_beat_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "lrukv.toml"
    toml.write_text(
        'host = "127.0.0.2"\nnode_id = "from-file"\n'
        "[store]\nshards = 2\nitems_per_shard = 20\nmax_value_bytes = 4096\n"
        "[http]\nport = 9001\n[grpc]\nport = 9002\n"
    )
    env = {"LRUKV_CONFIG": str(toml), "LRUKV_SHARDS": "4", "LRUKV_HTTP_PORT": "9101"}
    config = load_config(["--shards", "6"], env=env)
    assert config.store.shards == 6  # flag over env over file
    assert config.http.port == 9101  # env over file
    assert config.store.items_per_shard == 20  # file over default
    assert config.grpc.port == 9002
    assert config.host == "127.0.0.2"
    assert config.node_id == "from-file"
    assert config.store.max_value_bytes == 4096
    assert config.store.max_key_bytes == 1024  # default


def test_config_flag_beats_config_env(tmp_path: Path) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text("[store]\nshards = 2\n")
    second.write_text("[store]\nshards = 3\n")
    config = load_config(["--config", str(second)], env={"LRUKV_CONFIG": str(first)})
    assert config.store.shards == 3


def test_sizes_accept_binary_units() -> None:
    config = load_config(["--max-value-bytes", "2MiB", "--max-bytes", "64M"], env={})
    assert config.store.max_value_bytes == 2 << 20
    assert config.store.max_bytes == 64 << 20
    assert load_config(["--max-bytes", "0"], env={}).store.max_bytes is None


def test_transaction_log_settings_reach_its_config(tmp_path: Path) -> None:
    config = load_config(["-d", "file:/var/lib/x.log", "--txlog-fsync", "interval:50"], env={})
    assert config.txlog.path == "/var/lib/x.log"
    assert config.txlog.fsync is FsyncPolicy.INTERVAL
    assert config.txlog.fsync_interval_ms == 50
    pg = load_config(["-d", "postgres"], env={"LRUKV_PG_DSN": "postgresql://db/lrukv"})
    assert (pg.txlog.backend, pg.txlog.dsn) == (Backend.POSTGRES, "postgresql://db/lrukv")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--shards", "0"], {}, "shards must be a positive int"),
        ([], {"LRUKV_SHARDS": "ten"}, "LRUKV_SHARDS='ten': 'ten' is not an integer"),
        ([], {"LRUKV_METRICS": "maybe"}, "LRUKV_METRICS='maybe': 'maybe' is not a boolean"),
        (["--http-port", "70000"], {}, "http.port must be an int between 0 and 65535"),
        (["--http-port", "9000", "--grpc-port", "9000"], {}, "both 9000"),
        (["--host", "not a host"], {}, "neither an IP address nor a host name"),
        (["--node-id", "a/b"], {}, "node_id must be"),
        (["--drain-timeout", "0"], {}, "drain_timeout must be"),
        (["--max-value-bytes", "2G"], {}, "max_value_bytes must be between"),
        (["-d", "mysql://x"], {}, "unknown transaction log"),
        (["-d", "postgres"], {}, "LRUKV_PG_DSN is not set"),
        (["-j", "not a url"], {}, "jaeger endpoint"),
        ([], {"LRUKV_LOG_MODE": "loud"}, "unknown log mode 'loud'"),
    ],
)
def test_bad_values_are_refused_naming_their_source(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(argv, env=env)


def test_unknown_flags_are_refused_and_abbreviations_are_not_guessed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["--no-such-flag"], ["--item", "3"], ["--shards", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            load_config(argv, env={})
        assert exit_info.value.code == 2
    assert "unrecognized arguments: --item" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[store]\nshard = 3\n", "unknown setting [store] shard"),
        ("colour = 1\n", "unknown setting colour"),
        ("[store]\nshards = 'many'\n", "[store] shards: 'many' is not an integer"),
        ("[store]\nshards = true\n", "[store] shards: expected int"),
        ("[observability]\nmetrics = 1\n", "metrics: expected bool"),
        ("[store\n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(document)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(["--config", str(path)], env={})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(["--config", str(tmp_path / "nope.toml")], env={})


def test_every_setting_has_a_distinct_flag_environment_variable_and_toml_key() -> None:
    envs = [s.env for s in SETTINGS]
    flags = [f for s in SETTINGS for f in s.flags]
    assert len(set(envs)) == len(envs)
    assert len(set(flags)) == len(flags)
    assert all(env.startswith("LRUKV_") for env in envs)


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    for setting in SETTINGS:
        for name in (*setting.flags, setting.env, setting.key):
            assert name in text, f"docs/configuration.md does not mention {name}"


def test_config_objects_are_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(AttributeError):
        config.host = "0.0.0.0"  # type: ignore[misc]


def test_the_documented_toml_example_is_valid(tmp_path: Path) -> None:
    text = DOCS.read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "lrukv.toml"
    path.write_text(example)
    config = load_config(["--config", str(path)], env={})
    assert config.data_dir == "/var/lib/lrukv"
    assert config.store.max_value_bytes == 1 << 20
    assert config.store.max_bytes is None
    assert config.txlog.backend is Backend.FILE


def test_a_cluster_needs_a_secret_unless_dev() -> None:
    with pytest.raises(ConfigError, match="--cluster-secret"):
        load_config(["--raft-addr", "127.0.0.1:7000", "--peers", "127.0.0.1:7001"], env={})
    dev = load_config(["--raft-addr", "127.0.0.1:7000", "--dev"], env={})
    assert dev.cluster.enabled and dev.cluster.effective_secret
    secret = "s" * 20
    by_env = load_config(
        ["--raft-addr", "127.0.0.1:7000", "--peers", "127.0.0.1:7001, 127.0.0.1:7002"],
        env={"LRUKV_CLUSTER_SECRET": secret},
    )
    assert by_env.cluster.secret == secret
    assert by_env.cluster.peers == ("127.0.0.1:7001", "127.0.0.1:7002")
    assert secret not in repr(by_env)  # never printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peers", "127.0.0.1:7001"], "need --raft-addr"),
        (
            ["--raft-addr", "h:1", "--peers", "h:2", "--join", "h:3", "--dev"],
            "not both",
        ),
        (["--raft-addr", "127.0.0.1:7000", "--dev", "-d", "file"], "transaction log"),
    ],
)
def test_cluster_flags_that_cannot_work_together_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(argv, env={})
