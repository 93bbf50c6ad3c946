"""A follower keeps the entries it already has when an append_entries message
repeats them (PySyncObj truncated everything after ``prevLogIdx``, including
committed, applied entries: a leader that died then could take acknowledged
writes with it).

The follower is a real PySyncObj node on loopback whose peer never answers;
messages are handed to its message handler as its transport would.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pysyncobj import SyncObjConf

from lrukv_server.raft.append import SyncObj

NOOP = b"\x01"  # PySyncObj's no-op command: applying it touches no state machine


def _free_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def follower() -> Iterator[Any]:
    conf = SyncObjConf(
        autoTick=False,
        raftMinTimeout=60,
        raftMaxTimeout=61,
        connectionTimeout=61,
        leaderFallbackTimeout=61,
    )
    node = SyncObj(_free_addr(), [_free_addr()], conf)
    try:
        yield node
    finally:
        node.destroy()


def _leader(follower: Any) -> Any:
    return next(iter(follower._SyncObj__otherNodes))


def _append(
    follower: Any,
    term: int,
    prev: tuple[int, int],
    entries: list[tuple[int, int]],
    *,
    commit: int,
) -> None:
    """The leader of *term* sends *entries* ((index, term) pairs) after *prev*."""
    message = {
        "type": "append_entries",
        "term": term,
        "commit_index": commit,
        "prevLogIdx": prev[0],
        "prevLogTerm": prev[1],
        "entries": [(NOOP, idx, t) for idx, t in entries],
    }
    follower._SyncObj__onMessageReceived(_leader(follower), message)


def _log(follower: Any) -> list[tuple[int, int]]:
    return [(idx, term) for _, idx, term in follower._SyncObj__raftLog]


def _applied(follower: Any) -> int:
    follower.doTick(0)
    return int(follower.raftLastApplied)


def test_a_repeated_message_does_not_truncate_applied_entries(
    follower: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _append(follower, 1, (1, 0), [(i, 1) for i in range(2, 12)], commit=11)
    assert _applied(follower) == 11
    with caplog.at_level(logging.CRITICAL):
        _append(follower, 1, (5, 1), [(6, 1), (7, 1)], commit=11)  # sent again, arriving late
        _append(follower, 1, (5, 1), [], commit=11)  # a heartbeat from behind
    assert _log(follower) == [(1, 0), *((i, 1) for i in range(2, 12))]
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert follower._SyncObj__raftCommitIndex == 11


def test_new_entries_after_known_ones_are_appended(follower: Any) -> None:
    _append(follower, 1, (1, 0), [(2, 1), (3, 1)], commit=3)
    _append(follower, 1, (1, 0), [(2, 1), (3, 1), (4, 1), (5, 1)], commit=5)
    assert _log(follower) == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]
    assert _applied(follower) == 5


def test_entries_of_an_older_term_that_conflict_are_still_replaced(follower: Any) -> None:
    _append(follower, 1, (1, 0), [(2, 1), (3, 1), (4, 1)], commit=2)
    # a new leader (term 2) never had 3 and 4: its entry 3 replaces them
    _append(follower, 2, (2, 1), [(3, 2)], commit=3)
    assert _log(follower) == [(1, 0), (2, 1), (3, 2)]


def test_a_heartbeat_of_a_new_leader_drops_an_older_terms_tail(follower: Any) -> None:
    _append(follower, 1, (1, 0), [(2, 1), (3, 1), (4, 1)], commit=2)
    _append(follower, 2, (2, 1), [], commit=2)  # its log after 2 is unknown: not term 1's
    assert _log(follower) == [(1, 0), (2, 1)]
