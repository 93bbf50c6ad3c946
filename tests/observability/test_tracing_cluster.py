"""Tracing in a real three-node cluster: a write through a follower, traced from the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from lrukv_client import Client
from tests.observability.otlp_receiver import otlp_receiver
from tests.replication.cluster import Cluster

pytestmark = pytest.mark.slow


def test_a_write_through_a_follower_is_traced_to_its_commit(tmp_path: Path) -> None:
    tracer = TracerProvider().get_tracer("the-application")
    with otlp_receiver() as receiver:
        cluster = Cluster(tmp_path, size=3, extra_args=("-t", "-j", receiver.endpoint))
        try:
            cluster.start_all()
            leader = cluster.wait_for_leader(timeout=30)
            follower = next(node for node in cluster.nodes if node is not leader)
            with (
                tracer.start_as_current_span("caller") as caller,
                Client(follower.up.rpc_addr, timeout=10) as kv,
            ):
                kv.put("k", b"v")
        finally:
            cluster.stop_all()  # each node flushes its spans as it stops
        spans = list(receiver.spans)

    trace_id = format(caller.get_span_context().trace_id, "032x")
    mine = {span.name: span for span in spans if span.trace_id == trace_id}
    assert set(mine) == {"lrukv.v1.KV/Put", "kv.put", "raft.propose", "raft.apply"}, spans
    assert {span.node_id for span in mine.values()} == {follower.name}
    call, put, propose, apply = (
        mine[name] for name in ("lrukv.v1.KV/Put", "kv.put", "raft.propose", "raft.apply")
    )
    assert call.parent_span_id == format(caller.get_span_context().span_id, "016x")
    assert put.parent_span_id == call.span_id
    assert propose.parent_span_id == put.span_id
    assert apply.parent_span_id == propose.span_id
    # PySyncObj carried the entry to the leader: the span says so, and where.
    assert propose.attributes["lrukv.raft.forwarded"] is True
    assert propose.attributes["lrukv.raft.leader"] == leader.raft_addr
    assert isinstance(apply.attributes["lrukv.raft.index"], int)
