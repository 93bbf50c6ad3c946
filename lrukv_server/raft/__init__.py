"""Raft replication: a log of opaque commands applied by a state machine.

This package knows PySyncObj and nothing of lrukv's store: the store's FSM
adapter implements :class:`StateMachine` and the service proposes commands
through :class:`RaftNode`. docs/replication.md describes the contract.
"""

from lrukv_server.raft.config import RaftConfig
from lrukv_server.raft.node import Member, RaftNode, RaftStatus, Role, StateMachine

__all__ = ["Member", "RaftConfig", "RaftNode", "RaftStatus", "Role", "StateMachine"]
