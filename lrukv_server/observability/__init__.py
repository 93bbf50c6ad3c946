"""Observability: request ids, logging, tracing and metrics, wired by the Agent.

Each module here is a leaf: it wraps a transport (a WSGI middleware, a gRPC
interceptor handed over in :class:`lrukv_server.transport.TransportOptions`) or
the KVService, and nothing outside this package imports a telemetry library.
"""
