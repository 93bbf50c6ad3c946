"""The correctness check of a load run: a client's own keys read back what it wrote.

Each client owns a few private keys no one else writes. For each, the model
keeps the set of values the key may hold now: after an acknowledged put, just
that value; after a failed put (it may or may not have been applied), the old
possibilities plus the new value; ``None`` stands for "absent". Every read of a
private key is checked against that set:

* a value in the set: correct (and the set shrinks to it);
* absent although the set says present: **evicted** — with a small server
  capacity the LRU may drop any key; counted apart, never an error;
* an older value this client wrote to the key before: **stale_value**, an error
  unless the run reads with ``consistency=stale`` (then counted as ``stale_read``);
* a value present after an acknowledged delete: **resurrected**, an error;
* anything else: **wrong_value**, an error.

Private values carry a header (client, key, sequence number), so a wrong value
can be told from a stale one and every error sample says what was read.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ERROR_KINDS", "PrivateKeys"]

ERROR_KINDS = ("wrong_value", "stale_value", "resurrected")
_HEADER = re.compile(rb"^lrukv-bench w(\d+) k(\d+) s(\d+)\|")
_MAX_SAMPLES = 10


@dataclass
class _KeyState:
    possible: set[bytes | None] = field(default_factory=lambda: {None})
    latest_acked_seq: int = -1


class PrivateKeys:
    """The private keys of one client (one thread) and what each may hold."""

    def __init__(self, prefix: str, worker: int, count: int, value_size: int, *, stale_ok: bool):
        self.worker = worker
        self.names = [f"{prefix}w{worker}:p{index}" for index in range(count)]
        self._states = [_KeyState() for _ in range(count)]
        self._value_size = value_size
        self._stale_ok = stale_ok
        self._seq = 0
        self.counts: Counter[str] = Counter()
        self.samples: list[str] = []

    def next_value(self, index: int) -> bytes:
        """A fresh, recognisable value for private key ``index``."""
        self._seq += 1
        header = f"lrukv-bench w{self.worker} k{index} s{self._seq}|".encode()
        return header + b"." * max(0, self._value_size - len(header))

    # -- what the client did ------------------------------------------------------------

    def put_done(self, index: int, value: bytes) -> None:
        state = self._states[index]
        state.possible = {value}
        state.latest_acked_seq = _seq_of(value)

    def put_failed(self, index: int, value: bytes) -> None:
        self._states[index].possible.add(value)

    def delete_done(self, index: int) -> None:
        self._states[index].possible = {None}

    def delete_failed(self, index: int) -> None:
        self._states[index].possible.add(None)

    def read(self, index: int, value: bytes | None) -> str:
        """Check a read (``None``: not found); return the verdict counted."""
        state = self._states[index]
        self.counts["checked_reads"] += 1
        if value in state.possible:
            verdict = "ok"
        elif value is None:
            verdict = "evicted"
        elif self._is_older_write(index, value, state):
            verdict = "stale_read" if self._stale_ok else "stale_value"
        elif state.possible == {None}:
            verdict = "resurrected"
        else:
            verdict = "wrong_value"
        self.counts[verdict] += 1
        if verdict in ERROR_KINDS and len(self.samples) < _MAX_SAMPLES:
            expected = sorted(_show(v) for v in state.possible)
            self.samples.append(
                f"{verdict}: {self.names[index]} read {_show(value)}, expected one of {expected}"
            )
        if verdict != "stale_read":
            # The key now holds what was read (a stale read says nothing about the leader).
            state.possible = {value}
        return verdict

    def _is_older_write(self, index: int, value: bytes, state: _KeyState) -> bool:
        match = _HEADER.match(value)
        if match is None:
            return False
        worker, key, seq = (int(group) for group in match.groups())
        return worker == self.worker and key == index and seq < state.latest_acked_seq


def _seq_of(value: bytes) -> int:
    match = _HEADER.match(value)
    return int(match.group(3)) if match else -1


def _show(value: bytes | None) -> str:
    if value is None:
        return "<absent>"
    head = value[:48]
    return repr(head) + ("..." if len(value) > len(head) else "")
