"""Joining a running cluster through one member, over PySyncObj's utility channel.

The utility channel is the same authenticated, encrypted port the peers use,
so a node with the wrong secret gets no answer (the member drops the
connection) and cannot join.
"""

from __future__ import annotations

from typing import Any

from pysyncobj.utility import TcpUtility, UtilityException

from lrukv_server.errors import Unavailable

__all__ = ["cluster_members", "request_add"]


def _execute(addr: str, password: str, command: list[Any], timeout: float) -> Any:
    utility = TcpUtility(password, timeout)
    try:
        return utility.executeCommand(addr, command)
    except UtilityException as exc:
        raise Unavailable(
            f"no answer from Raft member {addr} ({exc or 'connection dropped'}); "
            "is it running, and is the cluster secret the same?"
        ) from None


def cluster_members(join_addr: str, password: str, timeout: float) -> list[str]:
    """The Raft addresses of every member, as *join_addr* knows them (itself included)."""
    status = _execute(join_addr, password, ["status"], timeout)
    if not isinstance(status, dict) or "self" not in status:
        raise Unavailable(f"Raft member {join_addr} sent no status: {status!r}")
    prefix = "partner_node_status_server_"
    members = {str(status["self"])}
    members.update(key[len(prefix) :] for key in status if key.startswith(prefix))
    return sorted(members)


def request_add(join_addr: str, self_addr: str, password: str, timeout: float) -> None:
    """Ask *join_addr* to add *self_addr* to the cluster; return once the change
    is committed (a follower forwards it to the leader)."""
    answer = _execute(join_addr, password, ["add", self_addr], timeout)
    if not (isinstance(answer, str) and answer.startswith("SUCCESS")):
        raise Unavailable(f"Raft member {join_addr} did not add {self_addr}: {answer!r}")
