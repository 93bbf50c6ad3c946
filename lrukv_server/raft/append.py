"""SyncObj whose followers never drop log entries the leader already sent.

PySyncObj 0.3.17's follower, given an ``append_entries`` whose ``prevLogIdx``
matches, deletes every entry after ``prevLogIdx`` and appends the message's
entries. Raft (Figure 2) deletes only from the first entry that *conflicts*
(same index, other term). The difference bites when a message arrives that
repeats entries the follower already has (a heartbeat or a batch the leader
re-sent after rewinding ``nextIndex``, which it does on every "reset" answer):
the follower drops its newer entries, committed and applied ones included,
while the leader still counts them in its ``matchIndex``. If the leader dies
before it sends them again, an entry acknowledged to a client may survive on
no majority. It showed as ``CRITICAL truncating already-applied log entries``
in a linearizability run (tests/replication/test_linearizability.py), even
with no fault at all.

The fix trims each such message before PySyncObj sees it: entries the log
already has (same index and term) are skipped, and ``prevLogIdx`` moves past
them; with nothing left to append, it also moves past the log's entries of the
leader's own term, which by the Log Matching property are the leader's. What
remains is what PySyncObj should do: append new entries, and truncate only
at a real conflict, or an older term's tail the leader has not vouched for
(PySyncObj's commit index rule, ``min(leaderCommit, last index)``, relies on
that tail being gone).
"""

from __future__ import annotations

from typing import Any

from pysyncobj import SyncObj as _PySyncObj

__all__ = ["SyncObj", "trim_append_entries"]

Entry = tuple[bytes, int, int]  # (command, index, term), as PySyncObj keeps them


def trim_append_entries(message: dict[str, Any], ours: list[Entry]) -> dict[str, Any]:
    """*message* without the entries *ours* already has.

    *ours* is this log from ``message["prevLogIdx"]`` on (PySyncObj's
    ``__getEntries(prevLogIdx)``). Returns *message* itself when nothing
    changes, else a trimmed copy.
    """
    if (
        message.get("type") != "append_entries"
        or "prevLogIdx" not in message
        or "transmission" in message  # one large entry in parts: left to PySyncObj
        or not ours
        or ours[0][1] != message["prevLogIdx"]
        or ours[0][2] != message["prevLogTerm"]  # no match: PySyncObj asks for a rewind
    ):
        return message
    entries: list[Entry] = list(message.get("entries") or ())
    at = 0  # ours[at] is the entry at the (moving) prevLogIdx
    # (index, term) compared field by field: the wire may turn tuples into lists
    while (
        at < len(entries)
        and at + 1 < len(ours)
        and ours[at + 1][1] == entries[at][1]
        and ours[at + 1][2] == entries[at][2]
    ):
        at += 1
    entries = entries[at:]
    if not entries:
        term = message["term"]
        while at + 1 < len(ours) and ours[at + 1][2] == term:
            at += 1
    if at == 0:
        return message
    trimmed = dict(message)
    trimmed["prevLogIdx"], trimmed["prevLogTerm"] = ours[at][1], ours[at][2]
    trimmed["entries"] = entries
    return trimmed


class SyncObj(_PySyncObj):  # type: ignore[misc]  # PySyncObj is untyped
    """PySyncObj's SyncObj with :func:`trim_append_entries` in front of its
    message handler (the name-mangled method its transport calls)."""

    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "append_entries" and "prevLogIdx" in message:
            ours = self._SyncObj__getEntries(message["prevLogIdx"])
            message = trim_append_entries(message, ours)
        super()._SyncObj__onMessageReceived(node, message)
