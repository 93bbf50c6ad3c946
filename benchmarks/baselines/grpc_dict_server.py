"""The bare grpcio baseline: lrukv.v1.KV Put and Get over a plain dict.

    python benchmarks/baselines/grpc_dict_server.py --port 50052 --workers 16

The generated servicer with grpcio's default handlers, a thread pool of the
same size as lrukv-server's, and a dict: what any grpcio service costs per
call. lrukv-server's gRPC API is measured against it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc


class DictKV(kv_pb2_grpc.KVServicer):
    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}

    def Put(self, request: kv_pb2.PutRequest, context: grpc.ServicerContext) -> kv_pb2.PutResponse:
        self.store[request.key] = request.value
        return kv_pb2.PutResponse()

    def Get(self, request: kv_pb2.GetRequest, context: grpc.ServicerContext) -> kv_pb2.GetResponse:
        value = self.store.get(request.key)
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return kv_pb2.GetResponse(value=value)

    # The rest of the service, so the servicer is complete; the benchmark calls Put and Get.
    def Delete(
        self, request: kv_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> kv_pb2.DeleteResponse:
        return kv_pb2.DeleteResponse(existed=self.store.pop(request.key, None) is not None)

    def GetKeys(
        self, request: kv_pb2.GetKeysRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetKeysResponse:
        return kv_pb2.GetKeysResponse(keys=list(self.store))

    def GetKeysValues(
        self, request: kv_pb2.GetKeysValuesRequest, context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.KeyValue]:
        for key, value in list(self.store.items()):
            yield kv_pb2.KeyValue(key=key, value=value)

    def GetServers(
        self, request: kv_pb2.GetServersRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetServersResponse:
        return kv_pb2.GetServersResponse()

    def Stats(
        self, request: kv_pb2.StatsRequest, context: grpc.ServicerContext
    ) -> kv_pb2.StatsResponse:
        return kv_pb2.StatsResponse(size=len(self.store))

    def AddMember(
        self, request: kv_pb2.AddMemberRequest, context: grpc.ServicerContext
    ) -> kv_pb2.AddMemberResponse:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the baseline is not in a cluster")

    def RemoveMember(
        self, request: kv_pb2.RemoveMemberRequest, context: grpc.ServicerContext
    ) -> kv_pb2.RemoveMemberResponse:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the baseline is not in a cluster")

    def Ttl(self, request: kv_pb2.TtlRequest, context: grpc.ServicerContext) -> kv_pb2.TtlResponse:
        if request.key not in self.store:
            context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return kv_pb2.TtlResponse()

    def GetMany(
        self, request: kv_pb2.GetManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetManyResponse:
        response = kv_pb2.GetManyResponse()
        for key in request.keys:
            value = self.store.get(key)
            if value is None:
                response.results.add(key=key)
            else:
                response.results.add(key=key, found=True, value=value)
        return response

    def PutMany(
        self, request: kv_pb2.PutManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.PutManyResponse:
        response = kv_pb2.PutManyResponse()
        for entry in request.entries:
            self.store[entry.key] = entry.value
            response.results.add(key=entry.key)
        return response

    def DeleteMany(
        self, request: kv_pb2.DeleteManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.DeleteManyResponse:
        response = kv_pb2.DeleteManyResponse()
        for key in request.keys:
            response.results.add(key=key, existed=self.store.pop(key, None) is not None)
        return response

    def Pipeline(
        self, request_iterator: Iterator[kv_pb2.PipelineRequest], context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.PipelineResponse]:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the baseline has no pipeline")
        yield kv_pb2.PipelineResponse()  # unreachable: makes this a generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    kv_pb2_grpc.add_KVServicer_to_server(DictKV(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
