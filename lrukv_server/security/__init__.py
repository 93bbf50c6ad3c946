"""Authorization: roles from a policy file, checked by both transports.

* ``policy``     the TOML policy: subjects, their roles, SHA-256 hashes of bearer tokens
* ``authz``      the role each gRPC method and HTTP route needs; the one decision
* ``grpc_auth``  the gRPC ServerInterceptor
* ``wsgi``       the WSGI middleware
* ``__main__``   ``python -m lrukv_server.security``: make a token, hash one, check a file

The Agent adds the interceptor and the middleware to the transport options when
``--auth-policy`` is given (:func:`transport_guards`). docs/authorization.md is the
user's view.
"""

from __future__ import annotations

import grpc

from lrukv_server.security.authz import Authorizer
from lrukv_server.security.grpc_auth import AuthInterceptor
from lrukv_server.security.policy import Policy, PolicyError, Role, hash_token, load_policy
from lrukv_server.security.wsgi import auth_middleware
from lrukv_server.transport import WsgiMiddleware

__all__ = [
    "AuthInterceptor",
    "Authorizer",
    "Policy",
    "PolicyError",
    "Role",
    "hash_token",
    "load_policy",
    "transport_guards",
]


def transport_guards(policy: Policy) -> tuple[grpc.ServerInterceptor, WsgiMiddleware]:  # type: ignore[type-arg]
    """The gRPC interceptor and the WSGI middleware enforcing *policy* (one
    Authorizer shared by both, so both transports decide alike)."""
    authorizer = Authorizer(policy)
    return AuthInterceptor(authorizer), auth_middleware(authorizer)
