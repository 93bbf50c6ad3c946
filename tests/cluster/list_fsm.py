"""A test-only state machine: an append-only list of byte strings with a running
digest, so two replicas that applied the same entries in the same order have
the same ``(count, digest)``, and any divergence shows."""

from __future__ import annotations

import hashlib
import json
import struct


class ListFSM:
    """``apply`` appends and returns the new length; ``restores`` records the
    index of every snapshot loaded (not part of the state)."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.digest = hashlib.sha256().digest()
        self.last_index = 0
        self.restores: list[int] = []

    def apply(self, command: bytes, index: int) -> object:
        if index <= self.last_index:
            raise AssertionError(f"index {index} after {self.last_index}: applied out of order")
        if command == b"boom":  # deterministic failure, for the "apply raised" path
            raise ValueError("boom")
        self.items.append(command)
        self.digest = hashlib.sha256(self.digest + command).digest()
        self.last_index = index
        return len(self.items)

    def snapshot(self) -> bytes:
        head = json.dumps({"last_index": self.last_index, "digest": self.digest.hex()}).encode()
        parts = [struct.pack("<I", len(head)), head]
        for item in self.items:
            parts += [struct.pack("<I", len(item)), item]
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        (length,) = struct.unpack_from("<I", data, 0)
        head = json.loads(data[4 : 4 + length])
        pos = 4 + length
        items = []
        while pos < len(data):
            (size,) = struct.unpack_from("<I", data, pos)
            items.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        self.items = items
        self.digest = bytes.fromhex(head["digest"])
        self.last_index = head["last_index"]
        self.restores.append(self.last_index)

    def summary(self) -> dict[str, object]:
        return {
            "count": len(self.items),
            "digest": self.digest.hex(),
            "last_index": self.last_index,
            "restores": list(self.restores),
        }
