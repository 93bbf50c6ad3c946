"""RaftConfig: bad settings are refused by name; the PySyncObj settings are the safe ones."""

from __future__ import annotations

import pytest

from lrukv_server.raft.config import RaftConfig, derive_password

SECRET = "a-cluster-secret-of-some-length"


def conf(**overrides: object) -> RaftConfig:
    fields: dict[str, object] = {"self_addr": "127.0.0.1:7000", "secret": SECRET}
    fields.update(overrides)
    return RaftConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"self_addr": "localhost"}, "self_addr 'localhost' must be HOST:PORT"),
        ({"self_addr": "0.0.0.0:7000"}, "not a wildcard"),
        ({"self_addr": "127.0.0.1:0"}, "port must be 1-65535"),
        ({"peers": ("127.0.0.1:7000",)}, "must not contain self_addr"),
        ({"peers": ("127.0.0.1:7001", "127.0.0.1:7001")}, "duplicates"),
        ({"peers": ["127.0.0.1:7001"]}, "peers must be a tuple"),
        ({"peers": ("127.0.0.1:7001",), "join_addr": "127.0.0.1:7002"}, "not both"),
        ({"join_addr": "127.0.0.1:7000"}, "join_addr must be another member"),
        ({"secret": "short"}, "secret must be at least 16 characters"),
        ({"data_dir": ""}, "data_dir must be a non-empty path"),
        ({"tick_period": 0}, "tick_period must be a positive number"),
        ({"election_timeout_min": 0.02}, "more than 3 x append_entries_period"),
        ({"election_timeout_max": 0.3}, "election_timeout_max must be more than"),
        ({"connection_timeout": 0.5}, "connection_timeout must be at least"),
        ({"leader_fallback_timeout": 0.5}, "leader_fallback_timeout must be at least"),
        ({"snapshot_min_entries": 1}, "snapshot_min_entries must be an int >= 2"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conf(**overrides).validate()


def test_pysyncobj_binds_only_the_node_address_never_forks_and_never_sees_the_raw_secret() -> None:
    config = conf(data_dir="/var/lib/lrukv").validate()
    kwargs = config.syncobj_conf_kwargs(serializer=lambda f, d: None, deserializer=lambda f: None)
    assert kwargs["bindAddress"] == "127.0.0.1:7000"
    assert kwargs["useFork"] is False
    assert kwargs["password"] == derive_password(SECRET)
    assert SECRET not in kwargs["password"]
    assert kwargs["journalFile"] == "/var/lib/lrukv/raft.journal"
    assert kwargs["fullDumpFile"] == "/var/lib/lrukv/raft.snapshot"
    assert kwargs["appendEntriesUseBatch"] is True
    assert (kwargs["appendEntriesPeriod"], kwargs["autoTickPeriod"]) == (0.01, 0.005)
    assert (kwargs["raftMinTimeout"], kwargs["raftMaxTimeout"]) == (0.3, 0.9)
    assert kwargs["connectionRetryTime"] == 0.25
    assert SECRET not in repr(config)


def test_each_secret_gets_its_own_password() -> None:
    assert derive_password(SECRET) == derive_password(SECRET)
    assert derive_password(SECRET) != derive_password(SECRET + "x")
