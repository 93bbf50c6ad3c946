"""The store as a replicated state machine: commands, their codec, and StoreFSM.

One write path: a single node applies commands to its StoreFSM directly (and
its transaction log records them); a cluster proposes the same encoded
commands through Raft and every replica's StoreFSM applies them in log order.
"""

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
from lrukv_server.fsm.state_machine import ConfigMismatch, StoreFSM

__all__ = [
    "Batch",
    "Command",
    "CommandDecodeError",
    "Config",
    "ConfigMismatch",
    "Delete",
    "Forget",
    "Member",
    "Noop",
    "Purge",
    "Put",
    "StoreFSM",
    "Touch",
]
