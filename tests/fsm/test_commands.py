"""The command codec: every command round-trips, anything else is refused cleanly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrukv_server.fsm import commands
from lrukv_server.fsm.commands import (
    Batch,
    Command,
    CommandDecodeError,
    Config,
    Delete,
    Forget,
    Member,
    Noop,
    Purge,
    Put,
    Touch,
)

keys = st.text(min_size=1, max_size=40)
expiry = st.none() | st.floats(min_value=0, max_value=4e9, allow_nan=False)
simple = st.one_of(
    st.builds(Put, keys, st.binary(max_size=64), expiry),
    st.builds(Delete, keys),
    st.builds(Touch, st.lists(keys, max_size=5).map(tuple)),
    st.builds(
        Config,
        st.integers(1, 2**32 - 1),
        st.integers(1, 2**32 - 1),
        st.none() | st.integers(1, 2**63),
    ),
    st.just(Purge()),
    st.just(Noop()),
    st.builds(Member, keys, keys, keys, keys),
    st.builds(Forget, keys),
)
any_command = simple | st.builds(Batch, st.lists(simple, max_size=5).map(tuple))


@given(any_command, st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_every_command_round_trips_with_its_time(command: Command, time: float) -> None:
    envelope = commands.decode(commands.encode(command, time=time))
    assert envelope == (time, command)


@given(any_command)
def test_every_truncation_is_refused_never_misread(command: Command) -> None:
    data = commands.encode(command, time=1.0)
    for cut in range(len(data)):
        with pytest.raises(CommandDecodeError):
            commands.decode(data[:cut])
    with pytest.raises(CommandDecodeError):
        commands.decode(data + b"\x00")


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_command_decode_error(data: bytes) -> None:
    with contextlib.suppress(CommandDecodeError):
        commands.decode(data)


def test_an_unknown_version_says_to_upgrade() -> None:
    data = bytearray(commands.encode(Noop(), time=0.0))
    data[0] = 2
    with pytest.raises(CommandDecodeError, match=r"version 2 is not supported.*upgrade"):
        commands.decode(bytes(data))


def test_opcodes_are_fixed_numbers() -> None:
    # These are on disk and on the wire: renumbering one breaks every log.
    assert commands.encode(Put("k", b"v"), time=0.0)[9] == 1
    assert commands.encode(Delete("k"), time=0.0)[9] == 2
    assert commands.encode(Touch(()), time=0.0)[9] == 3
    assert commands.encode(Config(1, 1), time=0.0)[9] == 4


def test_what_the_format_cannot_carry_is_refused_at_encode() -> None:
    with pytest.raises(ValueError, match="cannot contain a batch"):
        commands.encode(Batch((Batch(()),)), time=0.0)
    with pytest.raises(ValueError, match="finite"):
        commands.encode(Noop(), time=float("nan"))
    with pytest.raises(ValueError, match=r"at most 65535"):
        commands.encode(Delete("k" * 70_000), time=0.0)
