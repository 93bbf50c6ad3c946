"""Observability: Prometheus metrics and OpenTelemetry tracing, as hooks the Agent
wires in (gRPC interceptors, WSGI middleware, scrape-time collectors). Nothing
outside this package imports prometheus_client or OpenTelemetry."""
