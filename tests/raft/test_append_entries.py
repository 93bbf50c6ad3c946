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


@pytest.fixture
def sent(follower: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the follower answers (its peer is not listening; the answers are caught here)."""
    messages: list[dict[str, Any]] = []
    transport = follower._SyncObj__transport
    monkeypatch.setattr(transport, "send", lambda node, message: messages.append(message))
    return messages


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
    follower: Any, sent: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    _append(follower, 1, (1, 0), [(i, 1) for i in range(2, 12)], commit=11)
    assert _applied(follower) == 11
    with caplog.at_level(logging.CRITICAL):
        _append(follower, 1, (5, 1), [(6, 1), (7, 1)], commit=11)  # sent again, arriving late
        _append(follower, 1, (5, 1), [], commit=11)  # a heartbeat from behind
    assert _log(follower) == [(1, 0), *((i, 1) for i in range(2, 12))]
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert follower._SyncObj__raftCommitIndex == 11
    # the leader's own term: all of it is the leader's, and acknowledged as such
    assert [m["next_node_idx"] for m in sent if m["type"] == "next_node_idx"][-2:] == [12, 12]


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


def test_a_new_leaders_heartbeat_keeps_an_older_tail_but_neither_commits_nor_acks_it(
    follower: Any, sent: list[dict[str, Any]]
) -> None:
    _append(follower, 1, (1, 0), [(2, 1), (3, 1), (4, 1)], commit=2)
    assert _applied(follower) == 2
    sent.clear()
    # the new leader's log after 2 is unknown here: 3 and 4 may not be its entries
    _append(follower, 2, (2, 1), [], commit=4)
    assert _log(follower) == [(1, 0), (2, 1), (3, 1), (4, 1)]
    assert _applied(follower) == 2
    assert [m["next_node_idx"] for m in sent if m["type"] == "next_node_idx"] == [3]
    # its entry 3 conflicts: from there the log is the leader's
    _append(follower, 2, (2, 1), [(3, 2)], commit=3)
    assert _log(follower) == [(1, 0), (2, 1), (3, 2)]
    assert _applied(follower) == 3


def test_a_repeated_batch_of_an_older_term_keeps_the_rest_and_acks_only_itself(
    follower: Any, sent: list[dict[str, Any]]
) -> None:
    _append(follower, 1, (1, 0), [(i, 1) for i in range(2, 12)], commit=11)
    assert _applied(follower) == 11
    sent.clear()
    # a new leader catching this follower up re-sends part of term 1
    _append(follower, 2, (5, 1), [(6, 1), (7, 1)], commit=11)
    assert _log(follower) == [(1, 0), *((i, 1) for i in range(2, 12))]
    assert [m["next_node_idx"] for m in sent if m["type"] == "next_node_idx"] == [8]
