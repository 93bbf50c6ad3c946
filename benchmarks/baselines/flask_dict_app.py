"""The bare Flask baseline: GET and PUT of /v1/<key> over a plain dict.

    gunicorn --chdir benchmarks/baselines -w 1 -k gthread --threads 8 \
        -b 127.0.0.1:8081 flask_dict_app:app

No LRU, no validation, no error table, no service layer: what any Flask app on
the same gunicorn setup costs per request. lrukv-server's HTTP API is measured
against it.
"""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)
store: dict[str, bytes] = {}


@app.get("/v1/<path:key>")
def get_value(key: str) -> Response:
    value = store.get(key)
    if value is None:
        return Response(b"", 404)
    return Response(value, 200, mimetype="application/octet-stream")


@app.put("/v1/<path:key>")
def put_value(key: str) -> Response:
    store[key] = request.get_data()
    return Response(b"", 201)
