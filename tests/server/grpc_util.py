"""Helpers for speaking gRPC to a server in tests."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from lrukv_proto import ERROR_CODE_METADATA
from lrukv_proto.v1 import kv_pb2_grpc

__all__ = ["error_code", "raw_call", "stub", "trailing"]


def stub(channel: grpc.Channel) -> kv_pb2_grpc.KVStub:
    return kv_pb2_grpc.KVStub(channel)


def raw_call(channel: grpc.Channel, method: str) -> Callable[..., bytes]:
    """A unary call of ``lrukv.v1.KV/<method>`` that sends and returns raw bytes,
    to send what no protobuf library would produce."""
    return channel.unary_unary(
        f"/lrukv.v1.KV/{method}",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )


def trailing(error: grpc.RpcError) -> dict[str, str]:
    """The call's trailing metadata (text values only)."""
    metadata = error.trailing_metadata()
    text: dict[str, str] = {}
    for item in metadata or ():
        if isinstance(item.value, str):
            text[item.key] = item.value
    return text


def error_code(error: grpc.RpcError) -> str | None:
    return trailing(error).get(ERROR_CODE_METADATA)
