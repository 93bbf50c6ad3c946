"""ServerConfig: every setting of ``lrukv-server``, from flags, environment and a TOML file.

Each setting is one row of :data:`SETTINGS`, which drives all three sources,
so a setting cannot exist in one and be missing from another:

* a command-line flag (``--items-per-shard``; the original Go spellings such as
  ``--itemPerShard`` are aliases),
* an environment variable ``LRUKV_<NAME>`` named after the first long flag
  (``LRUKV_ITEMS_PER_SHARD``),
* a key of the optional TOML file given by ``--config`` / ``LRUKV_CONFIG``,
  in the section of the dataclass it configures (``[store] items_per_shard``).

Precedence: flags beat environment, which beats the file, which beats the
defaults. The values are then composed into frozen dataclasses (one per
concern) and validated; a :class:`ConfigError` names the source of a bad value.
docs/configuration.md is the user's view of this table.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lrukv import StoreConfig, __version__
from lrukv.errors import InvalidConfig
from lrukv_server.txlog.config import Backend, FsyncPolicy, TxLogConfig

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "BatchConfig",
    "SETTINGS",
    "ConfigError",
    "GrpcConfig",
    "HttpConfig",
    "LogMode",
    "LoggingConfig",
    "ObservabilityConfig",
    "ServerConfig",
    "Setting",
    "build_parser",
    "load_config",
]

DEFAULT_MAX_VALUE_BYTES = 1 << 20  # 1 MiB
MAX_MAX_VALUE_BYTES = 1 << 30  # gRPC message lengths are 32-bit; stay well inside
ENV_PREFIX = "LRUKV_"
CONFIG_ENV = "LRUKV_CONFIG"


class ConfigError(ValueError):
    """A setting is malformed or out of range; the message names where it came from."""


class LogMode(enum.Enum):
    """``prod``: JSON lines at INFO, no access log. ``development``: readable lines
    at INFO with an access log. ``debug``: readable lines at DEBUG with an access log."""

    PROD = "prod"
    DEVELOPMENT = "development"
    DEBUG = "debug"

    @classmethod
    def parse(cls, text: str) -> LogMode:
        name = text.strip().lower()
        aliases = {"production": "prod", "dev": "development"}
        try:
            return cls(aliases.get(name, name))
        except ValueError:
            raise ValueError(f"unknown log mode {text!r}; use prod, development or debug") from None


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP API: gunicorn with one gthread worker of ``threads`` threads."""

    port: int = 8080
    threads: int = 8

    def validate(self) -> HttpConfig:
        _check_port("http.port", self.port)
        _check_int_range("http.threads", self.threads, 1, 1024)
        return self


@dataclass(frozen=True, slots=True)
class GrpcConfig:
    """The gRPC API: a grpcio server with a pool of ``workers`` threads.

    A ``GetKeysValues`` stream holds a worker until it ends, so at most
    ``max_streams`` run at once (0: half the workers, at least 1), and a stream
    whose client takes no message for ``stream_send_timeout`` seconds is cancelled.
    """

    port: int = 50051
    workers: int = 16
    max_streams: int = 0
    stream_send_timeout: float = 30.0

    def validate(self) -> GrpcConfig:
        _check_port("grpc.port", self.port)
        _check_int_range("grpc.workers", self.workers, 1, 1024)
        _check_int_range("grpc.max_streams", self.max_streams, 0, 1024)
        timeout = self.stream_send_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= 3600
        ):
            raise ConfigError(
                f"grpc.stream_send_timeout must be seconds in (0, 3600], not {timeout!r}"
            )
        return self

    @property
    def stream_slots(self) -> int:
        """How many streams may run at once (``max_streams``, or its default)."""
        return self.max_streams or max(1, self.workers // 2)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Limits of one batch request (GetMany, PutMany, DeleteMany, POST /v1/util/batch).

    ``max_entries`` keys or operations; ``max_bytes`` bytes of the request (the
    gRPC message, the HTTP body), and of the values a read batch
    answers. A request over either is refused whole with ``batch_too_large``.
    """

    max_entries: int = 10_000
    max_bytes: int = 4 << 20

    def validate(self) -> BatchConfig:
        _check_int_range("batch.max_entries", self.max_entries, 1, 1_000_000)
        _check_int_range("batch.max_bytes", self.max_bytes, 1024, MAX_MAX_VALUE_BYTES)
        return self


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    mode: LogMode = LogMode.PROD

    def validate(self) -> LoggingConfig:
        if not isinstance(self.mode, LogMode):
            raise ConfigError(f"logging.mode must be a LogMode, not {self.mode!r}")
        return self


@dataclass(frozen=True, slots=True)
class ObservabilityConfig:
    """Prometheus metrics and OpenTelemetry tracing. Accepted and validated; not
    implemented in this version (the server says so at start when one is on)."""

    metrics: bool = False
    tracing: bool = False
    jaeger: str = ""  # the trace collector's endpoint

    def validate(self) -> ObservabilityConfig:
        for name in ("metrics", "tracing"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"observability.{name} must be a bool")
        if self.jaeger and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$|^[\w.-]+:\d+$", self.jaeger):
            raise ConfigError(
                f"jaeger endpoint {self.jaeger!r} is neither a URL (http://host:14268/...) "
                "nor host:port"
            )
        return self

    @property
    def not_implemented(self) -> list[str]:
        """The features switched on that this version does not provide."""
        return [name for name in ("metrics", "tracing") if getattr(self, name)]


DEV_CLUSTER_SECRET = "lrukv-dev-cluster-secret-not-for-production"
"""The cluster secret of ``--dev`` without one: anyone can read it here."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Raft membership of this node. Without ``raft_addr`` the node is a single
    node; with it, ``peers`` bootstrap a new cluster or ``join`` names a member
    of a running one (its Raft address), and ``secret`` authenticates and
    encrypts peer traffic (mandatory unless ``dev``)."""

    raft_addr: str = ""
    peers: tuple[str, ...] = ()
    join: str = ""
    secret: str = field(default="", repr=False)
    dev: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.raft_addr)

    @property
    def effective_secret(self) -> str:
        """The secret to use: the given one, or the well-known dev secret."""
        return self.secret or (DEV_CLUSTER_SECRET if self.dev else "")

    def validate(self) -> ClusterConfig:
        if not self.raft_addr:
            if self.peers or self.join:
                raise ConfigError("--peers and --join need --raft-addr (this node's Raft address)")
            return self
        if self.peers and self.join:
            raise ConfigError(
                "give --peers (bootstrap a new cluster) or --join (join one), not both"
            )
        if not self.secret and not self.dev:
            raise ConfigError(
                "a cluster needs --cluster-secret (or LRUKV_CLUSTER_SECRET): it authenticates "
                "and encrypts Raft traffic; --dev runs without one, insecurely"
            )
        return self


def _default_store() -> StoreConfig:
    return StoreConfig(max_value_bytes=DEFAULT_MAX_VALUE_BYTES)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``lrukv-server`` runs with. ``validate()`` returns self or raises ConfigError.

    ``txlog`` is built from the ``-d`` value (off | file | file:/path |
    postgresql://DSN) and ``--txlog-fsync`` by the transaction log package's
    own parser (``TxLogConfig.from_flag``).
    """

    store: StoreConfig = field(default_factory=_default_store)
    http: HttpConfig = field(default_factory=HttpConfig)
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    txlog: TxLogConfig = field(default_factory=TxLogConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    host: str = "127.0.0.1"
    data_dir: str = "lrukv-data"
    node_id: str = "node-1"
    drain_timeout: float = 10.0

    def validate(self) -> ServerConfig:
        try:
            self.store.validate()
        except InvalidConfig as exc:
            raise ConfigError(f"store: {exc}") from None
        if self.store.max_value_bytes is None or not (
            1 <= self.store.max_value_bytes <= MAX_MAX_VALUE_BYTES
        ):
            raise ConfigError(
                f"store.max_value_bytes must be between 1 and {MAX_MAX_VALUE_BYTES}, "
                f"not {self.store.max_value_bytes!r}"
            )
        _check_int_range("store.max_key_bytes", self.store.max_key_bytes, 1, 65536)
        self.http.validate()
        self.grpc.validate()
        self.batch.validate()
        self.logging.validate()
        self.observability.validate()
        if self.http.port and self.http.port == self.grpc.port:
            raise ConfigError(f"the HTTP and gRPC ports are both {self.http.port}")
        _check_host(self.host)
        if not isinstance(self.data_dir, str) or not self.data_dir:
            raise ConfigError("data_dir must be a non-empty path")
        if not isinstance(self.node_id, str) or not re.fullmatch(
            r"[A-Za-z0-9._-]{1,64}", self.node_id
        ):
            raise ConfigError(
                f"node_id must be 1-64 letters, digits, '.', '_' or '-', not {self.node_id!r}"
            )
        if (
            isinstance(self.drain_timeout, bool)
            or not isinstance(self.drain_timeout, int | float)
            or not math.isfinite(self.drain_timeout)
            or not 0 < self.drain_timeout <= 600
        ):
            raise ConfigError(
                f"drain_timeout must be seconds in (0, 600], not {self.drain_timeout!r}"
            )
        try:
            self.txlog.validate()
        except ValueError as exc:
            raise ConfigError(f"txlog: {exc}") from None
        self.cluster.validate()
        if self.cluster.enabled and self.txlog.backend is not Backend.OFF:
            raise ConfigError(
                "-d (the transaction log) is for a single node; in a cluster (--raft-addr) "
                "Raft's journal under --data-dir keeps the data"
            )
        return self

    @property
    def max_value_bytes(self) -> int:
        """The value size limit (always set for a server; see validate)."""
        assert self.store.max_value_bytes is not None
        return self.store.max_value_bytes


# --------------------------------------------------------------------- parsing


def _check_port(name: str, port: object) -> None:
    _check_int_range(name, port, 0, 65535)


def _check_int_range(name: str, number: object, low: int, high: int) -> None:
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ConfigError(f"{name} must be an int between {low} and {high}, not {number!r}")


def _check_host(host: object) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigError("host must be a non-empty address")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
            raise ConfigError(f"host {host!r} is neither an IP address nor a host name") from None


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes, with an optional binary unit: ``1048576``, ``1MiB``, ``512K``, ``2G``.

    >>> parse_size("1MiB"), parse_size("512k"), parse_size("100")
    (1048576, 524288, 100)
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 1048576, 512KiB, 1MiB)")
    unit = (match.group(2) or "").upper()[:1]
    return int(match.group(1)) * _UNITS[unit]


def parse_optional_size(text: str) -> int | None:
    """A size where 0 or ``none`` means no limit."""
    if text.strip().lower() in {"none", "off", "0", ""}:
        return None
    return parse_size(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def parse_seconds(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


def parse_addr_list(text: str) -> tuple[str, ...]:
    """``host:port,host:port`` (spaces ignored, empty parts dropped)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_str(text: str) -> str:
    return text.strip()


def parse_fsync(text: str) -> str:
    """An fsync policy, checked here so a bad one is blamed on its own setting
    (not on -d); TxLogConfig.from_flag turns the text into the policy."""
    FsyncPolicy.parse(text)
    return text.strip()


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it lives in the config, and how each source spells it.

    ``section``/``key`` place it in the TOML file (``section`` "" is the top level)
    and name the config field it sets; ``flags`` are its command-line spellings
    (the first long one names the environment variable); ``parse`` turns flag and
    environment text into the value; ``toml_types`` are the TOML types accepted
    as they are (anything else is parsed as text by ``parse``).
    """

    section: str
    key: str
    flags: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str
    toml_types: tuple[type, ...]
    metavar: str | None = None
    is_flag: bool = False  # a switch: ``-m`` alone means true

    @property
    def dest(self) -> str:
        return f"{self.section}__{self.key}" if self.section else self.key

    @property
    def env(self) -> str:
        long = next(flag for flag in self.flags if flag.startswith("--"))
        return ENV_PREFIX + long[2:].replace("-", "_").upper()

    @property
    def toml_name(self) -> str:
        return f"[{self.section}] {self.key}" if self.section else self.key


SETTINGS: tuple[Setting, ...] = (
    Setting("store", "shards", ("-s", "--shards"), parse_int,
            "number of shards (default 10)", (int,), "N"),
    Setting("store", "items_per_shard", ("-i", "--items-per-shard", "--itemPerShard"), parse_int,
            "items each shard holds before evicting its least recently used (default 100)",
            (int,), "N"),
    Setting("store", "max_key_bytes", ("--max-key-bytes",), parse_size,
            "longest key accepted, in UTF-8 bytes (default 1024)", (int,), "BYTES"),
    Setting("store", "max_value_bytes", ("--max-value-bytes",), parse_size,
            "largest value accepted (default 1MiB); larger gets 413 / RESOURCE_EXHAUSTED",
            (int,), "BYTES"),
    Setting("store", "max_bytes", ("--max-bytes",), parse_optional_size,
            "byte budget of keys plus values, split evenly across shards (default 0: none)",
            (int,), "BYTES"),
    Setting("batch", "max_entries", ("--max-batch-entries",), parse_int,
            "most keys or operations in one batch request (default 10000)", (int,), "N"),
    Setting("batch", "max_bytes", ("--max-batch-bytes",), parse_size,
            "largest batch request (gRPC message or HTTP body) and read-batch answer "
            "(default 4MiB)", (int,), "BYTES"),
    Setting("txlog", "db_logger", ("-d", "--db-logger", "--dbLogger"), parse_str,
            "transaction log: off | file | file:/path | postgresql://DSN (default off); "
            "'postgres' takes the DSN from LRUKV_PG_DSN", (str,), "LOG"),
    Setting("txlog", "fsync", ("--txlog-fsync",), parse_fsync,
            "file log fsync policy: always | interval[:ms] | never (default always)",
            (str,), "POLICY"),
    Setting("observability", "metrics", ("-m", "--metrics", "--isMetrics"), parse_bool,
            "Prometheus metrics (not implemented in this version)", (bool,), "BOOL",
            is_flag=True),
    Setting("observability", "tracing", ("-t", "--tracing", "--isTracing"), parse_bool,
            "OpenTelemetry tracing (not implemented in this version)", (bool,), "BOOL",
            is_flag=True),
    Setting("observability", "jaeger", ("-j", "--jaeger"), parse_str,
            "trace collector endpoint, used with --tracing", (str,), "URL"),
    Setting("logging", "mode", ("-l", "--log-mode", "--loggerMode"), LogMode.parse,
            "prod | development | debug (default prod)", (str,), "MODE"),
    Setting("", "host", ("--host",), parse_str,
            "address both APIs bind to (default 127.0.0.1; 0.0.0.0 for every interface)",
            (str,), "ADDR"),
    Setting("http", "port", ("--http-port",), parse_int,
            "HTTP port (default 8080; 0 picks a free one)", (int,), "PORT"),
    Setting("http", "threads", ("--http-threads",), parse_int,
            "threads of the one gunicorn worker (default 8)", (int,), "N"),
    Setting("grpc", "port", ("--grpc-port",), parse_int,
            "gRPC port (default 50051; 0 picks a free one)", (int,), "PORT"),
    Setting("grpc", "workers", ("--grpc-workers",), parse_int,
            "threads serving gRPC calls (default 16)", (int,), "N"),
    Setting("grpc", "max_streams", ("--grpc-max-streams",), parse_int,
            "GetKeysValues and Pipeline streams served at once; more get RESOURCE_EXHAUSTED "
            "(default 0: half of --grpc-workers)", (int,), "N"),
    Setting("grpc", "stream_send_timeout", ("--grpc-stream-send-timeout",), parse_seconds,
            "cancel a GetKeysValues stream whose client takes no message for this long "
            "(default 30)", (int, float), "SECONDS"),
    Setting("", "data_dir", ("--data-dir",), parse_str,
            "directory for the transaction log file (default ./lrukv-data)", (str,), "DIR"),
    Setting("", "node_id", ("--node-id",), parse_str,
            "this node's id (default node-1)", (str,), "ID"),
    Setting("cluster", "raft_addr", ("--raft-addr",), parse_str,
            "this node's Raft address HOST:PORT; without it the node runs alone", (str,),
            "HOST:PORT"),
    Setting("cluster", "peers", ("--peers",), parse_addr_list,
            "the other members' Raft addresses, to bootstrap a new cluster", (str,),
            "HOST:PORT,..."),
    Setting("cluster", "join", ("--join",), parse_str,
            "the Raft address of any member of a running cluster to join", (str,), "HOST:PORT"),
    Setting("cluster", "secret", ("--cluster-secret",), parse_str,
            "shared secret that authenticates and encrypts Raft traffic (16+ characters)",
            (str,), "SECRET"),
    Setting("cluster", "dev", ("--dev",), parse_bool,
            "development cluster: allow running without a cluster secret (insecure)",
            (bool,), "BOOL", is_flag=True),
    Setting("", "drain_timeout", ("--drain-timeout",), parse_seconds,
            "seconds a shutdown waits for in-flight requests (default 10)", (int, float),
            "SECONDS"),
)  # fmt: skip


# ---------------------------------------------------------------- the sources


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """*parse*, with its ValueError's text shown by argparse (instead of "invalid value")."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The ``lrukv-server`` argument parser. Defaults are suppressed so that
    load_config can tell a flag given from one left out."""
    parser = argparse.ArgumentParser(
        prog="lrukv-server",
        description="Serve an lrukv store over HTTP and gRPC (one node).",
        epilog=(
            "Every option can also be set with the environment variable shown, or in the "
            "TOML file given by --config; flags beat the environment, which beats the file. "
            "SIGTERM or SIGINT stop the server gracefully."
        ),
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config", metavar="FILE.toml", help=f"read settings from a TOML file [{CONFIG_ENV}]"
    )
    for setting in SETTINGS:
        kwargs: dict[str, Any] = {
            "dest": setting.dest,
            "help": f"{setting.help} [{setting.env}]",
            "type": _argparse_type(setting.parse),
            "metavar": setting.metavar,
        }
        if setting.is_flag:
            # Go-style switches: `-m` alone means true; `--metrics=false` is accepted too.
            kwargs.update(nargs="?", const=True)
        parser.add_argument(*setting.flags, **kwargs)
    parser.add_argument("--version", action="version", version=f"lrukv-server {__version__}")
    return parser


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    known = {(s.section, s.key) for s in SETTINGS}
    sections = {s.section for s in SETTINGS if s.section}
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if name in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{name}] must be a table")
            for key, inner in value.items():
                if (name, key) not in known:
                    raise ConfigError(f"{path}: unknown setting [{name}] {key}")
                flat[f"{name}__{key}"] = inner
        elif ("", name) in known:
            flat[name] = value
        else:
            raise ConfigError(f"{path}: unknown setting {name}")
    return flat


def _from_toml(setting: Setting, value: Any, path: str) -> Any:
    where = f"{path}: {setting.toml_name}"
    if isinstance(value, str):
        return _parse_or_raise(setting, value, where)
    if isinstance(value, bool) != (bool in setting.toml_types) or not isinstance(
        value, setting.toml_types
    ):
        expected = " or ".join(kind.__name__ for kind in setting.toml_types)
        raise ConfigError(f"{where}: expected {expected}, not {value!r}")
    if setting.parse is parse_optional_size and value == 0:
        return None
    return value


def _parse_or_raise(setting: Setting, text: str, where: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> ServerConfig:
    """Build and validate the config from *argv* (default ``sys.argv[1:]``), *env*
    (default ``os.environ``) and the TOML file they name. Raises ConfigError;
    argparse itself exits with status 2 on an unknown flag or a bad flag value."""
    environ = os.environ if env is None else env
    args = vars(build_parser().parse_args(argv))
    config_path = args.get("config") or environ.get(CONFIG_ENV) or None
    from_file = _read_toml(config_path) if config_path else {}

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.dest in args:
            values[setting.dest] = args[setting.dest]
        elif setting.env in environ:
            values[setting.dest] = _parse_or_raise(
                setting, environ[setting.env], f"{setting.env}={environ[setting.env]!r}"
            )
        elif setting.dest in from_file:
            values[setting.dest] = _from_toml(setting, from_file[setting.dest], str(config_path))
    return compose(values, environ)


def compose(values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Turn ``{dest: value}`` (see Setting.dest) into a validated ServerConfig.
    *env* is where the transaction log finds ``LRUKV_PG_DSN`` (default os.environ)."""
    values = dict(values)
    db_logger = values.pop("txlog__db_logger", None)
    fsync = values.pop("txlog__fsync", None)
    try:
        txlog = TxLogConfig.from_flag(db_logger, env=env, fsync=fsync)
    except ValueError as exc:
        raise ConfigError(f"transaction log (-d {db_logger or 'off'}): {exc}") from None
    values["txlog"] = txlog
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for dest, value in values.items():
        section, _, key = dest.rpartition("__")
        if section:
            sections.setdefault(section, {})[key] = value
        else:
            top[key] = value
    base = ServerConfig()
    parts: dict[str, Any] = dict(top)
    for section, fields in sections.items():
        parts[section] = replace(getattr(base, section), **fields)
    return replace(base, **parts).validate()


def resolve_data_dir(config: ServerConfig) -> Path:
    """The data directory as an absolute path (not created here)."""
    return Path(config.data_dir).expanduser().resolve()
