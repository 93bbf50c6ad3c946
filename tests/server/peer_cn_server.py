"""``lrukv-server`` with one extra WSGI route, ``GET /test/peer-cn``, that answers
what the app sees of the client's certificate: ``{"present": bool, "peer_cn": str|null}``.

    python -m tests.server.peer_cn_server [lrukv-server flags]

The same process as the ``lrukv-server`` script; the route is added through the
Agent's transport options (WSGI middleware), as authorization plugs in.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from lrukv_server.agent import Agent
from lrukv_server.cli import main
from lrukv_server.tls import PEER_CN_ENVIRON
from lrukv_server.transport import TransportOptions

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def echo_peer_cn(app: App) -> App:
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/test/peer-cn":
            return app(environ, start_response)
        body = json.dumps(
            {"present": PEER_CN_ENVIRON in environ, "peer_cn": environ.get(PEER_CN_ENVIRON)}
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return middleware


_options = Agent._transport_options


def _with_echo(agent: Agent) -> TransportOptions:
    options = _options(agent)
    return dataclasses.replace(options, wsgi_middleware=(*options.wsgi_middleware, echo_peer_cn))


if __name__ == "__main__":
    Agent._transport_options = _with_echo  # type: ignore[method-assign,assignment]
    raise SystemExit(main(sys.argv[1:]))
