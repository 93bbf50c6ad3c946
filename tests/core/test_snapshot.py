"""Snapshots: exact round trips, a stable format across processes, and damaged
or mismatched snapshots refused without touching the store."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest

from lrukv import (
    CorruptSnapshot,
    ShardedMap,
    SnapshotError,
    SnapshotMismatch,
    UnsupportedSnapshotVersion,
)
from lrukv import snapshot as snapshot_format


def filled(shards: int = 3, items: int = 4, **kwargs: object) -> ShardedMap:
    m = ShardedMap(shards, items, clock=lambda: 1_000.0, **kwargs)  # type: ignore[arg-type]
    for i in range(20):
        m.put(f"key-{i}", f"value-{i}".encode(), ttl=50 if i % 3 == 0 else None)
    m.get("key-19")
    m.get("key-12")
    return m


def test_round_trip_keeps_items_recency_and_expiry() -> None:
    original = filled()
    copy = ShardedMap.from_snapshot(original.snapshot(), clock=lambda: 1_000.0)
    copy._check()
    assert list(copy.items()) == list(original.items())
    for key in original:
        assert copy.expires_at(key) == original.expires_at(key)
    # Recency survives: the next eviction in every shard picks the same victim.
    for i in range(20, 40):
        original.put(f"key-{i}", b"n")
        copy.put(f"key-{i}", b"n")
    assert list(copy.items()) == list(original.items())


def test_restore_discards_previous_state() -> None:
    source = filled()
    target = ShardedMap(3, 4, clock=lambda: 1_000.0)
    target.put("stale", b"old")
    target.restore(source.snapshot())
    assert "stale" not in target
    assert sorted(target.keys()) == sorted(source.keys())
    target._check()


def test_snapshot_bytes_are_identical_across_processes_and_hash_seeds() -> None:
    """Replicas must agree on shards; Python's salted str hash would not."""
    program = (
        "import sys; from lrukv import ShardedMap\n"
        "m = ShardedMap(7, 5, clock=lambda: 1.0)\n"
        "for i in range(60): m.put(f'k{i}', b'v')\n"
        "sys.stdout.buffer.write(m.snapshot())\n"
    )
    blobs = {
        subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(blobs) == 1


def test_empty_map_round_trips() -> None:
    blob = ShardedMap(2, 2).snapshot()
    assert len(ShardedMap.from_snapshot(blob)) == 0


def flip_bit(blob: bytes, position: int) -> bytes:
    damaged = bytearray(blob)
    damaged[position] ^= 0x10
    return bytes(damaged)


@pytest.mark.parametrize("where", [0, 12, 40, -10, -1])
def test_bit_flip_anywhere_is_a_clear_corrupt_snapshot(where: int) -> None:
    blob = filled().snapshot()
    with pytest.raises(CorruptSnapshot):
        ShardedMap.from_snapshot(flip_bit(blob, where))


@pytest.mark.parametrize("keep", [0, 10, 39, 100])
def test_truncated_snapshot_is_corrupt(keep: int) -> None:
    blob = filled().snapshot()
    with pytest.raises(CorruptSnapshot):
        ShardedMap.from_snapshot(blob[:keep])


def test_future_version_is_refused_by_name() -> None:
    blob = bytearray(filled().snapshot()[:-4])
    blob[8:10] = (99).to_bytes(2, "little")
    blob += zlib.crc32(bytes(blob)).to_bytes(4, "little")
    with pytest.raises(UnsupportedSnapshotVersion, match="99"):
        ShardedMap.from_snapshot(bytes(blob))


def test_damaged_snapshot_leaves_the_store_untouched() -> None:
    target = filled()
    before = list(target.items())
    with pytest.raises(SnapshotError):
        target.restore(flip_bit(filled().snapshot(), 50))
    assert list(target.items()) == before


def test_strict_restore_refuses_other_geometry() -> None:
    blob = filled(shards=3, items=4).snapshot()
    target = ShardedMap(4, 4)
    target.put("mine", b"v")
    with pytest.raises(SnapshotMismatch, match=r"\(3, 4, None\)"):
        target.restore(blob)
    assert target.get("mine") == b"v"


def test_lenient_restore_refits_into_a_smaller_store() -> None:
    source = filled(shards=3, items=4)
    target = ShardedMap(2, 2, clock=lambda: 1_000.0)
    target.restore(source.snapshot(), strict=False)
    target._check()
    assert len(target) == 4
    assert set(target.keys()) <= set(source.keys())


def test_forged_snapshot_with_a_key_in_the_wrong_shard_is_refused() -> None:
    data = snapshot_format.SnapshotData(
        shards=2,
        items_per_shard=4,
        max_bytes=None,
        entries=((), (("k0", b"v", None),))
        if zlib.crc32(b"k0") % 2 == 0
        else ((("k0", b"v", None),), ()),
    )
    with pytest.raises(SnapshotMismatch, match="wrong shard"):
        ShardedMap(2, 4).restore(snapshot_format.encode(data))


def test_forged_snapshot_with_an_invalid_key_is_refused() -> None:
    data = snapshot_format.SnapshotData(1, 4, None, ((("bad\nkey", b"v", None),),))
    target = ShardedMap(1, 4)
    with pytest.raises(ValueError):
        target.restore(snapshot_format.encode(data))
    assert len(target) == 0
