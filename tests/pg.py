"""PostgreSQL for tests: fixtures any test package can import.

Use them by importing into the package's ``conftest.py``::

    from tests.pg import pg_dsn, pg_node, pg_throwaway  # noqa: F401

``pg_dsn`` (session) picks the database:

1. ``LRUKV_TEST_PG_DSN`` when set (CI sets it to the machine's server);
2. otherwise a throwaway cluster made with ``initdb``/``pg_ctl`` in a temp dir on
   a free loopback port, stopped at the end of the session (``pg_ctl stop``,
   then by its PID if it is still alive);
3. otherwise the test is skipped, with the reason.

With ``LRUKV_TEST_REQUIRE_PG=1`` (set by ``.ci/run``) a skip is a failure.

``pg_node`` gives each test its own node id, hence its own tables, and drops
them afterwards. ``pg_throwaway`` is a cluster of the test's own, for tests that
stop the server: never stop a shared one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

__all__ = [
    "DSN_ENV",
    "REQUIRE_ENV",
    "ThrowawayCluster",
    "drop_node_tables",
    "pg_dsn",
    "pg_node",
    "pg_throwaway",
    "pg_unavailable",
    "wait_until",
]

DSN_ENV = "LRUKV_TEST_PG_DSN"
REQUIRE_ENV = "LRUKV_TEST_REQUIRE_PG"
_START_TIMEOUT_S = 60


def pg_unavailable(reason: str) -> NoReturn:
    """Skip with *reason*, or fail when PostgreSQL tests are required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayCluster:
    """A PostgreSQL cluster of our own in a temp dir, on 127.0.0.1 and a free port.

    PostgreSQL refuses to run as root, so when the tests run as root the
    cluster's files belong to, and its processes run as, the ``postgres`` user.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl are not on PATH")
        self._initdb, self._pg_ctl = initdb, pg_ctl
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no postgres user") from None
            self._user = "postgres"
        self.root = tempfile.mkdtemp(prefix="lrukv-pg-")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self._run([self._initdb, "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync"])  # fmt: skip

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv,
            check=False,
            user=self._user,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip() or result.stdout}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([self._pg_ctl, "-D", self.data, "-l", os.path.join(self.root, "log"), "-w",
                   "-t", str(_START_TIMEOUT_S), "-o", options, "start"])  # fmt: skip

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as file:
                return int(file.readline())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server: ``pg_ctl stop -m fast``, then SIGKILL by PID if needed."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run([self._pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            os.kill(pid, signal.SIGKILL)  # pg_ctl could not stop it

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _check_reachable(dsn: str) -> None:
    try:
        import psycopg
    except ImportError:
        pg_unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pg_unavailable(f"cannot connect to {dsn}: {str(exc).strip().splitlines()[0]}")


@contextlib.contextmanager
def _started_cluster() -> Iterator[ThrowawayCluster]:
    try:
        cluster = ThrowawayCluster()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pg_unavailable(f"no {DSN_ENV} and no throwaway cluster: {exc}")
    try:
        try:
            cluster.start()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            pg_unavailable(f"the throwaway cluster did not start: {exc}")
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A DSN of a reachable PostgreSQL (see the module docstring for which)."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    if dsn:
        _check_reachable(dsn)
        yield dsn
        return
    with _started_cluster() as cluster:
        _check_reachable(cluster.dsn)
        yield cluster.dsn


@pytest.fixture
def pg_throwaway() -> Iterator[ThrowawayCluster]:
    """A running cluster of this test's own, which the test may stop and start."""
    with _started_cluster() as cluster:
        yield cluster


def drop_node_tables(dsn: str, node_id: str) -> None:
    """Drop the transaction log tables of *node_id*."""
    import psycopg
    from psycopg import sql

    from lrukv_server.txlog.pg_names import table_name

    table = table_name(node_id)
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        for name in (table, f"{table}_snapshot"):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def pg_node(pg_dsn: str) -> Iterator[str]:
    """A node id no other test uses; its tables are dropped after the test."""
    node = f"test-{uuid.uuid4().hex[:12]}"
    yield node
    drop_node_tables(pg_dsn, node)


def wait_until(condition: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll *condition* until true; fail the test (not a timing assert: a hang
    guard) if it never becomes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
