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

The fix rewrites such a message before PySyncObj sees it
(:func:`trim_append_entries`): entries the log already has (same index and
term) are skipped. If nothing new is left, the message is pointed at the end
of the log, so PySyncObj truncates nothing, and two things keep that honest:

* the entries after what the message vouched for may be an older term's and
  differ from the leader's, so the commit index it carries is capped at the
  vouched index (PySyncObj commits ``min(leaderCommit, last index)``), and
  the success answer names the vouched index, not the log's end (the leader
  counts it in ``matchIndex``);
* the log's entries of the leader's own term are vouched for anyway: by the
  Log Matching property they are the leader's.

New entries after a real conflict are left as they were: PySyncObj truncates
at the conflict and appends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pysyncobj import SyncObj as _PySyncObj

__all__ = ["SyncObj", "Trimmed", "trim_append_entries"]

Entry = tuple[bytes, int, int]  # (command, index, term), as PySyncObj keeps them


@dataclass(frozen=True, slots=True)
class Trimmed:
    """A rewritten message, and the highest index it vouches for (None: all of it)."""

    message: dict[str, Any]
    vouched: int | None = None


def trim_append_entries(message: dict[str, Any], ours: list[Entry]) -> Trimmed:
    """*message* without the entries *ours* already has.

    *ours* is this log from ``message["prevLogIdx"]`` on (PySyncObj's
    ``__getEntries(prevLogIdx)``). The message comes back unchanged unless it
    is an ``append_entries`` whose ``prevLogIdx`` matches *ours*.
    """
    if (
        message.get("type") != "append_entries"
        or "prevLogIdx" not in message
        or "transmission" in message  # one large entry in parts: left to PySyncObj
        or not ours
        or ours[0][1] != message["prevLogIdx"]
        or ours[0][2] != message["prevLogTerm"]  # no match: PySyncObj asks for a rewind
    ):
        return Trimmed(message)
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
    rest = entries[at:]
    if rest or at + 1 == len(ours):  # new entries (after a conflict, if any), or at our end
        if at == 0:
            return Trimmed(message)
        trimmed = dict(message, prevLogIdx=ours[at][1], prevLogTerm=ours[at][2], entries=rest)
        return Trimmed(trimmed)
    # Nothing new, and the log goes on: keep it all, vouch only for what is known.
    term = message["term"]
    while at + 1 < len(ours) and ours[at + 1][2] == term:
        at += 1
    vouched = ours[at][1]
    last = ours[-1]
    trimmed = dict(
        message,
        prevLogIdx=last[1],
        prevLogTerm=last[2],
        entries=[],
        commit_index=min(message["commit_index"], vouched),
    )
    return Trimmed(trimmed, vouched if vouched != last[1] else None)


class SyncObj(_PySyncObj):  # type: ignore[misc]  # PySyncObj is untyped
    """PySyncObj's SyncObj with :func:`trim_append_entries` in front of its
    message handler, and the answer to a trimmed message capped at what the
    message vouched for (both are the name-mangled methods PySyncObj calls)."""

    _vouched: int | None = None

    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "append_entries" and "prevLogIdx" in message:
            trimmed = trim_append_entries(message, self._SyncObj__getEntries(message["prevLogIdx"]))
            message = trimmed.message
            self._vouched = trimmed.vouched
        try:
            super()._SyncObj__onMessageReceived(node, message)
        finally:
            self._vouched = None

    def _SyncObj__sendNextNodeIdx(
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: int | None = None,  # PySyncObj's name
        success: bool = False,
    ) -> None:
        if self._vouched is not None and success and nextNodeIdx is not None:
            nextNodeIdx = min(nextNodeIdx, self._vouched + 1)
        super()._SyncObj__sendNextNodeIdx(node, reset, nextNodeIdx, success)
