"""A gRPC client that opens a Pipeline of gets, reads one answer, says so, and
waits to be killed.

    python -m tests.server.pipeline_client HOST:PORT KEY

Used to make a pipeline's client vanish the hard way (SIGKILL: no cancel, the
TCP connection just dies) while the server has answers it cannot send.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import grpc

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc


def requests(key: str) -> Iterator[kv_pb2.PipelineRequest]:
    for number in range(100_000):
        yield kv_pb2.PipelineRequest(id=number, get=kv_pb2.GetRequest(key=key))


def main(target: str, key: str) -> None:
    channel = grpc.insecure_channel(target)
    answers = kv_pb2_grpc.KVStub(channel).Pipeline(requests(key), timeout=60)
    next(iter(answers))
    print("reading", flush=True)
    time.sleep(60)  # stop reading; the test kills this process long before


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
