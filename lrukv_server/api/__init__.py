"""The transports over the KVService protocol, and the one error table they share.

* ``status``       every error -> gRPC code, HTTP status and ``code`` (THE table)
* ``grpc_server``  lrukv.v1.KV, grpc.health.v1 and reflection on grpcio
* ``http_app``     the Flask app (served by gunicorn, see ``lrukv_server.gunicorn_app``)
* ``openapi.json`` the HTTP API's OpenAPI document (docs/openapi.json links to it)
"""
