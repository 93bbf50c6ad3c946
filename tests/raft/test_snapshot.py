"""The snapshot envelope: round trip, and a file that is not whole never reaches the FSM."""

from __future__ import annotations

from pathlib import Path

import pytest
from pysyncobj.node import TCPNode

from lrukv_server.raft import snapshot
from lrukv_server.raft.snapshot import SnapshotError, SnapshotMeta, decode, encode

META = SnapshotMeta((b"\x00cmd", 42, 3), (b"\x01", 41, 3), ("127.0.0.1:7001", "127.0.0.1:7000"))


class RecordingFSM:
    def __init__(self, state: bytes = b"") -> None:
        self.state = state
        self.restored: list[bytes] = []

    def snapshot(self) -> bytes:
        return self.state

    def restore(self, data: bytes) -> None:
        self.restored.append(data)


def test_a_snapshot_round_trips_its_raft_metadata_and_state() -> None:
    assert decode(encode(META, b"state bytes")) == (META, b"state bytes")
    assert decode(encode(META, b"")) == (META, b"")


def test_every_truncation_and_every_flipped_byte_is_refused() -> None:
    data = encode(META, b"some state")
    for cut in range(len(data)):
        with pytest.raises(SnapshotError):
            decode(data[:cut])
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x40
        with pytest.raises(SnapshotError):
            decode(bytes(damaged))


def test_an_unknown_format_version_is_refused_by_name() -> None:
    data = bytearray(encode(META, b""))
    data[8] = 99
    with pytest.raises(SnapshotError, match="format version 99"):
        decode(bytes(data))


def test_the_hooks_carry_pysyncobj_data_through_and_restore_the_fsm(tmp_path: Path) -> None:
    fsm = RecordingFSM(b"the state")
    serialize, deserialize = snapshot.hooks(fsm)
    path = str(tmp_path / "raft.snapshot")
    cluster = {TCPNode("127.0.0.1:7000"), TCPNode("127.0.0.1:7001")}
    serialize(path, (META.last, META.prev, cluster))
    assert deserialize(path) == (META.last, META.prev, cluster)
    assert fsm.restored == [b"the state"]
    # PySyncObj compares these with its journal's entries: same types, same values.
    last, _, members = deserialize(path)
    assert type(last) is tuple and type(last[0]) is bytes
    assert all(isinstance(m, TCPNode) for m in members)


def test_a_damaged_file_is_refused_before_the_fsm_is_touched(tmp_path: Path) -> None:
    fsm = RecordingFSM(b"the state")
    serialize, deserialize = snapshot.hooks(fsm)
    path = tmp_path / "raft.snapshot"
    serialize(str(path), (META.last, META.prev, set()))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SnapshotError):
        deserialize(str(path))
    assert fsm.restored == []
