"""Who may call what: the role each gRPC method and each HTTP route needs, and the
one decision both transports make (:meth:`Authorizer.check`).

Roles are ordered, ``reader`` < ``writer`` < ``admin``:

==========================================  ===========================================
needs                                       gRPC (``/lrukv.v1.KV/...``) and HTTP
==========================================  ===========================================
nothing (open)                              grpc.health.v1, server reflection;
                                            ``/healthz``, ``/readyz``, ``/openapi.json``,
                                            ``OPTIONS`` on any ``/v1/`` route
reader                                      Get, GetKeys, GetKeysValues, GetServers,
                                            Stats, Ttl, GetMany; ``GET``/``HEAD`` of
                                            ``/v1/<key>`` and of every ``/v1/util/`` read
writer                                      Put, Delete, PutMany, DeleteMany, Pipeline;
                                            ``PUT``/``DELETE /v1/<key>``,
                                            ``POST /v1/util/batch``
admin                                       AddMember, RemoveMember (and snapshots,
                                            when they get a method or route)
==========================================  ===========================================

Deny by default: a gRPC method the server serves but :data:`GRPC_METHOD_ROLES`
does not list, and an HTTP request no row of :data:`HTTP_UTIL_ROLES` /
:func:`http_requirement` matches, are refused to everyone (403 /
PERMISSION_DENIED, "no authorization rule"), so a new method or route is
unreachable until someone decides who may call it. A gRPC method the server
does not serve at all still gets UNIMPLEMENTED (there is nothing to protect).

Batches: a batch that contains a write needs writer, one of reads only needs
reader. gRPC has separate methods for that (GetMany reader; PutMany, DeleteMany
and the mixed Pipeline writer). ``POST /v1/util/batch`` is writer in the table;
a rule can be a function of the WSGI environ instead of a role (see
:data:`HttpRule`), which is how a body-aware rule would plug in.

Subjects (:class:`Credentials`): a verified client certificate's CN wins; with
no client certificate, an ``Authorization: Bearer <token>`` is accepted (over
plain text as over TLS: whether the token may travel in clear is the
operator's choice of ``--tls``). No credentials at all, a malformed header or
an unknown token is :class:`~lrukv_server.errors.Unauthenticated` (401); a
subject without a role, or with too weak a role, is
:class:`~lrukv_server.errors.PermissionDenied` (403). Messages name the
subject and the role needed, never the token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lrukv_server.errors import PermissionDenied, Unauthenticated
from lrukv_server.security.policy import Policy, Role

__all__ = [
    "GRPC_METHOD_ROLES",
    "HTTP_OPEN_PATHS",
    "HTTP_UTIL_ROLES",
    "OPEN",
    "Authorizer",
    "Credentials",
    "HttpRule",
    "Requirement",
    "grpc_requirement",
    "http_requirement",
    "parse_authorization",
]

log = logging.getLogger(__name__)


class _Open:
    """The requirement of calls anyone may make (health, reflection)."""

    _instance: _Open | None = None

    def __new__(cls) -> _Open:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OPEN"


OPEN: Final = _Open()
"""No credentials needed."""

Requirement = Role | _Open
"""What a call needs: a role (or a higher one), or OPEN."""

_KV = "/lrukv.v1.KV/"

GRPC_METHOD_ROLES: dict[str, Requirement] = {
    # reads
    _KV + "Get": Role.READER,
    _KV + "GetKeys": Role.READER,
    _KV + "GetKeysValues": Role.READER,
    _KV + "GetServers": Role.READER,
    _KV + "Stats": Role.READER,
    _KV + "Ttl": Role.READER,
    _KV + "GetMany": Role.READER,
    # writes (a Pipeline may hold writes, so it needs writer whatever it holds)
    _KV + "Put": Role.WRITER,
    _KV + "Delete": Role.WRITER,
    _KV + "PutMany": Role.WRITER,
    _KV + "DeleteMany": Role.WRITER,
    _KV + "Pipeline": Role.WRITER,
    # cluster administration
    _KV + "AddMember": Role.ADMIN,
    _KV + "RemoveMember": Role.ADMIN,
    # what probes and tools use, open like /healthz
    "/grpc.health.v1.Health/Check": OPEN,
    "/grpc.health.v1.Health/Watch": OPEN,
    "/grpc.health.v1.Health/List": OPEN,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": OPEN,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": OPEN,
}
"""Full gRPC method name -> requirement. A served method missing here is refused."""

HttpRule = Requirement | Callable[[Mapping[str, Any]], Requirement]
"""A requirement, or a function of the WSGI environ that returns one (for a route
whose requirement depends on the request, like a batch that may hold writes)."""

HTTP_OPEN_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/openapi.json"})
"""Paths anyone may request, with any method (the app answers 405 to a wrong one)."""

HTTP_UTIL_ROLES: dict[tuple[str, str], HttpRule] = {
    ("GET", "keys"): Role.READER,
    ("GET", "items"): Role.READER,
    ("GET", "servers"): Role.READER,
    ("GET", "cluster"): Role.READER,
    ("GET", "stats"): Role.READER,
    ("GET", "ttl/"): Role.READER,  # a name ending in "/" is a prefix: ttl/<key>
    ("POST", "batch"): Role.WRITER,
}
"""``(method, name after /v1/util/)`` -> rule. HEAD is looked up as GET and OPTIONS
is open. Extend this table for new utility routes; an unlisted one is refused."""

_KEY_ROLES: dict[str, Requirement] = {
    "GET": Role.READER,
    "HEAD": Role.READER,
    "PUT": Role.WRITER,
    "DELETE": Role.WRITER,
    "OPTIONS": OPEN,
}


def grpc_requirement(method: str) -> Requirement | None:
    """What the gRPC *method* (``/package.Service/Method``) needs; None if unlisted.

    >>> grpc_requirement("/lrukv.v1.KV/Put")
    <Role.WRITER: 2>
    >>> grpc_requirement("/lrukv.v1.KV/Snapshot") is None
    True
    """
    return GRPC_METHOD_ROLES.get(method)


def http_requirement(method: str, path: str, environ: Mapping[str, Any]) -> Requirement | None:
    """What an HTTP request needs; None when no rule matches (refused).

    *path* is the request target as sent, still percent-encoded, without the
    query (the app routes on the same text; see lrukv_server.api.http_app).

    >>> http_requirement("PUT", "/v1/key-a", {})
    <Role.WRITER: 2>
    >>> http_requirement("GET", "/v1/util/ttl/key-a", {})
    <Role.READER: 1>
    >>> http_requirement("POST", "/v1/key-a", {}) is None
    True
    """
    if path in HTTP_OPEN_PATHS:
        return OPEN
    if not path.startswith("/v1/"):
        return None
    rest = path[len("/v1/") :]
    if not rest.startswith("util/"):
        return _KEY_ROLES.get(method)
    if method == "OPTIONS":
        return OPEN
    name = rest[len("util/") :]
    lookup = "GET" if method == "HEAD" else method
    rule = HTTP_UTIL_ROLES.get((lookup, name))
    if rule is None:
        for (rule_method, rule_name), prefix_rule in HTTP_UTIL_ROLES.items():
            if rule_method == lookup and rule_name.endswith("/") and name.startswith(rule_name):
                rule = prefix_rule
                break
    if rule is None or isinstance(rule, Role | _Open):
        return rule
    return rule(environ)


# RFC 6750 b64token, then optional padding.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


def parse_authorization(header: str | None) -> tuple[str | None, str | None]:
    """``(token, problem)`` from an Authorization header value: the bearer token,
    or a description of why the header is unusable; ``(None, None)`` for none.

    >>> parse_authorization("Bearer abc.DEF-123")
    ('abc.DEF-123', None)
    >>> parse_authorization("Basic dXNlcjpwdw==")[1]
    "the Authorization header must be 'Bearer <token>'"
    """
    if header is None or not header.strip():
        return None, None
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        return None, "the Authorization header must be 'Bearer <token>'"
    return match.group(1), None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a call presented: a verified client certificate's CN, a bearer token,
    or a problem with its Authorization header."""

    cert_cn: str | None = None
    token: str | None = None
    problem: str | None = None

    @property
    def empty(self) -> bool:
        return self.cert_cn is None and self.token is None and self.problem is None


class Authorizer:
    """The decision of both transports over one :class:`Policy`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def subject_of(self, credentials: Credentials, call: str) -> str:
        """The subject making *call* (for messages), or raise Unauthenticated."""
        if credentials.cert_cn is not None:
            return credentials.cert_cn  # a verified certificate wins over any token
        if credentials.problem is not None:
            raise Unauthenticated(f"{credentials.problem}; {call} was not run")
        if credentials.token is None:
            raise Unauthenticated(
                f"{call} needs credentials: a client certificate, or an "
                "'Authorization: Bearer <token>' header (lrukv --token)"
            )
        subject = self.policy.subject_for_token(credentials.token)
        if subject is None:
            raise Unauthenticated(
                f"the bearer token is not known to this server; {call} was not run"
            )
        return subject

    def check(
        self, credentials: Credentials, required: Requirement | None, call: str
    ) -> str | None:
        """Allow the call, returning the subject (None for an open call that
        presented nothing), or raise Unauthenticated / PermissionDenied.

        *required* None means no rule matched *call*: refused to everyone once the
        caller is authenticated (deny by default). *call* names it in messages
        (``"Put"``, ``"PUT /v1/key-a"``).
        """
        if isinstance(required, _Open):
            return None
        subject = self.subject_of(credentials, call)
        if required is None:
            log.warning("refused %s by %r: no authorization rule names it", call, subject)
            raise PermissionDenied(
                f"no authorization rule allows {call}; it is refused to everyone (deny by default)",
                subject=subject,
            )
        role = self.policy.role_of(subject)
        if role is None:
            log.info("refused %s: subject %r has no role", call, subject)
            raise PermissionDenied(
                f"subject {subject!r} has no role on this server; {call} needs {required.label}",
                subject=subject,
                required=required.label,
            )
        if role < required:
            log.info("refused %s: subject %r has role %s", call, subject, role.label)
            raise PermissionDenied(
                f"subject {subject!r} has role {role.label}; {call} needs {required.label}",
                subject=subject,
                required=required.label,
            )
        return subject
