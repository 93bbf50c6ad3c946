"""The KVService protocol and its implementations."""

from lrukv_server.service.base import Consistency, Health, KVService, ServerInfo

__all__ = ["Consistency", "Health", "KVService", "ServerInfo"]
