"""A gRPC client that starts GetKeysValues, reads one item, says so, and waits to be killed.

    python -m tests.server.stream_client HOST:PORT

Used to disconnect a client the hard way (SIGKILL: no cancel, no goodbye,
the TCP connection just dies) in the middle of a stream.
"""

from __future__ import annotations

import sys
import time

import grpc

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc


def main(target: str) -> None:
    channel = grpc.insecure_channel(target)
    stream = kv_pb2_grpc.KVStub(channel).GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=60)
    next(iter(stream))
    print("reading", flush=True)
    time.sleep(60)  # stop reading; the test kills this process long before


if __name__ == "__main__":
    main(sys.argv[1])
