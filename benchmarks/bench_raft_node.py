"""How fast does RaftNode commit, and how long does a leader failover take?

    .venv/bin/python benchmarks/bench_raft_node.py            # ~1 min; writes results/raft-node.*
    .venv/bin/python benchmarks/bench_raft_node.py --smoke    # seconds; writes to a temp dir

Three real node processes on 127.0.0.1 (tests/cluster/node_proc.py: a RaftNode
over a test state machine, file journal, encrypted peer traffic, the default
RaftConfig). The load runs inside a node's own process (its ``bench``
request), so it measures RaftNode.propose -> commit -> apply -> Future, not a
client protocol.

  throughput  closed loop: N proposals of 100 bytes kept in flight for
              ``--seconds``; proposals/s and p50/p99/max latency, at the
              leader and (forwarded by PySyncObj) at a follower.
  overhead    in this process, a one-node cluster: CPU microseconds per
              proposal (256 in flight) through RaftNode.propose and through
              PySyncObj's own replicated call with a callback, same config,
              interleaved runs, median; what the wrapper costs.
  failover    ``--kills`` times: SIGKILL the leader, then propose at the
              survivors in turn (0.2 s deadlines) until one is acknowledged;
              the time from the kill to that acknowledgement, and to the
              survivors agreeing on a new leader. The killed node is
              restarted and caught up before the next round.

Afterwards the replicas' digests must agree, and every node's log is searched
for PySyncObj's "truncating already-applied log entries" (see DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.cluster: the node process and its harness

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated  # noqa: E402

from lrukv_server.raft import RaftConfig, RaftNode, snapshot  # noqa: E402
from tests.cluster.harness import Cluster, Node, free_ports, wait_for  # noqa: E402
from tests.cluster.list_fsm import ListFSM  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TRUNCATION = "truncating already-applied log entries"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def truncations(cluster: Cluster) -> int:
    return sum(n.log().count(TRUNCATION) for n in cluster.all)


def throughput(cluster: Cluster, node: Node, seconds: float, in_flight: int) -> dict[str, Any]:
    before = truncations(cluster)
    reply = node.call("bench", wait=seconds + 60, seconds=seconds, in_flight=in_flight, size=100)
    lat = sorted(reply["latencies_ms"])
    return {
        "in_flight": in_flight,
        "proposals_per_s": reply["done"] / reply["seconds"],
        "failures": reply["failures"],
        "truncation_lines": truncations(cluster) - before,
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1] if lat else float("nan"),
    }


class _RawLog(SyncObjConsumer):  # type: ignore[misc]
    def __init__(self, fsm: ListFSM) -> None:
        super().__init__()
        self.fsm = fsm
        self.index = 0

    @replicated  # type: ignore[untyped-decorator]
    def command(self, data: bytes) -> object:
        self.index += 1
        return self.fsm.apply(data, self.index)


def cpu_per_proposal(propose: Callable[[Callable[..., None]], None], count: int) -> float:
    """CPU microseconds of this process per proposal, 256 in flight."""
    slots = threading.BoundedSemaphore(256)
    finished = threading.Event()
    done = [0]

    def on_done(*_: object) -> None:
        done[0] += 1
        slots.release()
        if done[0] == count:
            finished.set()

    started = time.process_time()
    for _ in range(count):
        slots.acquire()
        propose(on_done)
    if not finished.wait(120):
        raise RuntimeError("proposals did not finish")
    return (time.process_time() - started) / count * 1e6


def overhead(workdir: Path, count: int, repeats: int) -> dict[str, float]:
    payload = b"x" * 100
    port_node, port_raw = free_ports(2)
    node = RaftNode(
        RaftConfig(
            self_addr=f"127.0.0.1:{port_node}", secret="b" * 16, data_dir=str(workdir / "node")
        ),
        ListFSM(),
    )
    raw_conf = RaftConfig(
        self_addr=f"127.0.0.1:{port_raw}", secret="b" * 16, data_dir=str(workdir / "raw")
    ).validate()
    os.makedirs(raw_conf.data_dir)
    raw_fsm = ListFSM()
    kwargs = raw_conf.syncobj_conf_kwargs(*snapshot.hooks(raw_fsm))
    kwargs["autoTick"] = True  # PySyncObj as it comes: its own tick thread
    raw_log = _RawLog(raw_fsm)
    raw = SyncObj(raw_conf.self_addr, [], SyncObjConf(**kwargs), consumers=[raw_log])
    try:
        wait_for("both to lead", lambda: node.is_leader and raw._isLeader(), 30)
        node_us, raw_us = [], []
        for _ in range(repeats):
            node_us.append(
                cpu_per_proposal(lambda cb: node.propose(payload, 10).add_done_callback(cb), count)
            )
            raw_us.append(cpu_per_proposal(lambda cb: raw_log.command(payload, callback=cb), count))
    finally:
        node.close()
        raw.destroy()
    return {
        "raftnode_cpu_us": statistics.median(node_us),
        "pysyncobj_cpu_us": statistics.median(raw_us),
    }


def failover(cluster: Cluster, round_no: int) -> dict[str, float]:
    old = cluster.wait_leader()
    survivors = [n for n in cluster.nodes if n is not old]
    old.kill()
    killed = time.monotonic()

    def accepted() -> Node | None:
        for node in survivors:
            if node.call("propose", value=f"failover-{round_no}", timeout=0.2)["ok"]:
                return node
        return None

    wait_for("a write after the leader was killed", accepted, 30, every=0.0)
    write_s = time.monotonic() - killed
    cluster.wait_leader(among=survivors)
    leader_s = time.monotonic() - killed
    cluster.start(old)
    wait_for("the old leader to catch up", lambda: same_state(cluster.nodes), 60)
    return {"first_write_s": write_s, "agreed_leader_s": leader_s}


def same_state(nodes: list[Node]) -> bool:
    states = [(s["count"], s["digest"]) for s in (n.state() for n in nodes)]
    return len(set(states)) == 1


def summary(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "raft-node.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# RaftNode: commit throughput, latency and failover",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}; load average at start {results['loadavg']}",
        "",
        "Three node processes on 127.0.0.1, default RaftConfig (batch period 10 ms, tick 5 ms,",
        "elections 0.3-0.9 s, file journal, encrypted peers), 100-byte commands, closed loop.",
        "",
        "| where | in flight | proposals/s | p50 ms | p99 ms | max ms | failed | truncations |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in results["throughput"]:
        failed = ", ".join(f"{n} {name}" for name, n in row["failures"].items())
        lines.append(
            f"| {row['where']} | {row['in_flight']} | {row['proposals_per_s']:,.0f} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['max_ms']:.1f} | "
            f"{failed or 0} | {row['truncation_lines']} |"
        )
    oh = results["overhead"]
    lines += [
        "",
        "Overhead of the wrapper (one-node cluster in one process, 256 in flight, CPU per",
        f"proposal, median of interleaved runs): RaftNode.propose {oh['raftnode_cpu_us']:.0f} us,",
        f"PySyncObj's replicated call with a callback {oh['pysyncobj_cpu_us']:.0f} us "
        f"(ratio {oh['raftnode_cpu_us'] / oh['pysyncobj_cpu_us']:.2f}).",
    ]
    fo = results["failover"]
    lines += [
        "",
        f"Failover, {fo['kills']} leader kills (SIGKILL), seconds from the kill:",
        "",
        "| | min | median | max |",
        "|---|---:|---:|---:|",
    ]
    for name in ("first_write_s", "agreed_leader_s"):
        s = fo[name]
        lines.append(f"| {name} | {s['min']:.2f} | {s['median']:.2f} | {s['max']:.2f} |")
    lines += [
        "",
        f"Replicas agree at the end: {results['replicas_agree']}.  ",
        f'"{TRUNCATION}" in the node logs: {results["truncation_lines"]} line(s) in all',
        "(per load level in the table; PySyncObj logs it when a stale reply moves the leader's",
        "next index for a follower back; the replicas' digests are compared above).",
        "",
    ]
    (out_dir / "raft-node.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, temp output")
    parser.add_argument("--seconds", type=float, default=None, help="per throughput run")
    parser.add_argument("--kills", type=int, default=None)
    args = parser.parse_args()
    smoke = args.smoke
    seconds = args.seconds or (0.5 if smoke else 5.0)
    kills = args.kills or (1 if smoke else 6)
    flights = [1, 64] if smoke else [1, 16, 64, 256, 1024]
    out_dir = Path(tempfile.mkdtemp(prefix="lrukv-bench-")) if smoke else RESULTS
    workdir = Path(tempfile.mkdtemp(prefix="lrukv-raft-bench-"))
    command = " ".join(["python", "benchmarks/bench_raft_node.py", *sys.argv[1:]])
    results: dict[str, Any] = {
        "command": command,
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    results["overhead"] = overhead(workdir, 2_000 if smoke else 20_000, 1 if smoke else 3)
    print(json.dumps(results["overhead"]), flush=True)
    cluster = Cluster(workdir)
    try:
        leader = cluster.wait_leader()
        leader.call("bench", wait=60, seconds=min(seconds, 1.0), in_flight=64, size=100)  # warm up
        rows = []
        for in_flight in flights:
            row = {"where": "leader", **throughput(cluster, leader, seconds, in_flight)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        follower = next(n for n in cluster.nodes if n is not leader)
        for in_flight in (1, flights[-1]):
            row = {
                "where": "follower (forwarded)",
                **throughput(cluster, follower, seconds, in_flight),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        results["throughput"] = rows

        rounds = []
        for i in range(kills):
            rounds.append(failover(cluster, i))
            print(json.dumps(rounds[-1]), flush=True)
        results["failover"] = {
            "kills": kills,
            "first_write_s": summary([r["first_write_s"] for r in rounds]),
            "agreed_leader_s": summary([r["agreed_leader_s"] for r in rounds]),
            "rounds": rounds,
        }
        results["replicas_agree"] = same_state(cluster.nodes)
        results["truncation_lines"] = truncations(cluster)
    finally:
        cluster.close()
    write_results(out_dir, results)
    print(f"results in {out_dir}/raft-node.md", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    if smoke:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0 if results["replicas_agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
