"""An SDK client that writes through a pipeline forever, until it is killed.

    python -m tests.client.sdk_pipeline_client grpc|http ADDRESS PREFIX

It prints ``streaming`` once its first write is acknowledged, then keeps the
pipeline full (gRPC: one Pipeline stream; HTTP: batch after batch) so that a
SIGKILL cuts it mid-stream, as a crashed client would.
"""

from __future__ import annotations

import itertools
import sys

from lrukv_client import Client, HttpClient


def main(transport: str, address: str, prefix: str) -> None:
    kv = Client(address) if transport == "grpc" else HttpClient(address)
    with kv, kv.pipeline(window=64) as pipeline:
        first = pipeline.put(f"{prefix}first", b"v" * 100)
        first.result(timeout=30)
        print("streaming", flush=True)
        for number in itertools.count():
            pipeline.put(f"{prefix}{number % 5000}", b"x" * 1000)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
