"""The error table: one answer per error, the same over both transports."""

from __future__ import annotations

import inspect

import grpc
import pytest

import lrukv.errors
import lrukv_server.errors
from lrukv_server.api.status import INTERNAL, INTERNAL_MESSAGE, TABLE, message_of, status_of
from lrukv_server.errors import NotLeader
from tests.server.faults import FAULTS, SECRET, Fault


def test_every_row_has_a_fault_that_exercises_it() -> None:
    # The table walks (in process and over the real server) iterate FAULTS; a
    # row without a fault would silently go untested.
    exercised = {fault.error for fault in FAULTS}
    missing = [row.error.__name__ for row in TABLE if row.error not in exercised]
    assert not missing, f"add a Fault to tests/server/faults.py for: {missing}"
    assert Exception in exercised, "INTERNAL needs a fault too"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.key)
def test_fault_expectations_agree_with_the_table(fault: Fault) -> None:
    exc = fault.make()
    row = status_of(exc)
    assert row.grpc_code.name == fault.grpc_code
    assert row.http_status(exc) == fault.http_status
    assert row.code == fault.code


def _request_errors() -> list[type[BaseException]]:
    """Every error class a request can raise: the core's (but snapshot errors, which
    only restore raises) and the service layer's."""
    classes: list[type[BaseException]] = []
    for module in (lrukv.errors, lrukv_server.errors):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, Exception) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, lrukv.errors.SnapshotError) or cls in (
                lrukv.errors.LrukvError,
                lrukv_server.errors.ServiceError,
            ):
                continue
            classes.append(cls)
    return classes


@pytest.mark.parametrize("cls", _request_errors(), ids=lambda c: c.__name__)
def test_no_request_error_is_answered_as_a_server_bug(cls: type[BaseException]) -> None:
    assert any(issubclass(cls, row.error) for row in TABLE), (
        f"{cls.__name__} would be answered 500/INTERNAL: give it a row"
    )


def test_missing_key_is_404_never_500() -> None:
    row = status_of(lrukv.errors.KeyNotFound("k"))
    assert (row.http, row.grpc_code) == (404, grpc.StatusCode.NOT_FOUND)


def test_most_specific_row_wins() -> None:
    assert status_of(lrukv.errors.InvalidKey("x")).code == "invalid_key"
    assert status_of(lrukv_server.errors.LogUnavailable("x")).code == "log_unavailable"

    class NewKindOfBadKey(lrukv.errors.InvalidKey):
        pass

    assert status_of(NewKindOfBadKey("x")).code == "invalid_key"


def test_not_leader_redirects_only_when_the_leader_is_known() -> None:
    row = status_of(NotLeader("r:1", "h:2"))
    assert row.http_status(NotLeader("r:1", "h:2")) == 307
    assert row.http_status(NotLeader("r:1", None)) == 503
    assert row.http_status(NotLeader()) == 503


def test_internal_errors_do_not_leak_their_text() -> None:
    exc = RuntimeError(f"failed at {SECRET}")
    row = status_of(exc)
    assert row is INTERNAL
    assert message_of(exc, row) == INTERNAL_MESSAGE
    assert SECRET not in message_of(exc, row)


def test_client_errors_carry_their_own_message() -> None:
    exc = lrukv.errors.InvalidKey("key is 2000 bytes; the limit is 1024")
    assert message_of(exc, status_of(exc)) == "key is 2000 bytes; the limit is 1024"
