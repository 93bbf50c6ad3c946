"""The authorization policy: which subject has which role, and which bearer tokens
authenticate as which subject. Loaded from a TOML file (``--auth-policy``).

A *subject* is who makes a call: the common name (CN) of a verified client
certificate, or the subject a bearer token is registered to. The file::

    # lrukv authorization policy (lrukv-server --auth-policy FILE)
    [[subjects]]
    name = "app.example.com"        # a client certificate's CN
    role = "writer"

    [[subjects]]
    name = "ops"
    role = "admin"
    # SHA-256 (hex) of each bearer token that authenticates as "ops":
    #   printf %s "$TOKEN" | sha256sum
    #   python -m lrukv_server.security new-token ops   (makes a token and its line)
    token_sha256 = ["5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"]

Roles are ``reader`` < ``writer`` < ``admin`` (:class:`Role`). Only hashes of
tokens are stored, so the file is not a secret store: reading it does not give
anyone a token. A token is looked up by hashing what the client sent first and
finding that digest among the stored ones (a dict, so the cost does not grow
with the number of tokens). Nothing ever compares a token: the timing of a
lookup depends only on the SHA-256 of what was sent, and learning how much of a
stored digest a guess's digest matches tells nothing about any token (using it
would need a SHA-256 preimage). This is why no ``hmac.compare_digest`` is
needed; a scan comparing every digest with it in constant time cost 136 µs per
request with 1,000 tokens in a smoke run on the shared machine (load 6), this
lookup ~1-2 µs whatever the count (benchmarks/results/authz.md).

:func:`load_policy` validates everything and raises :class:`PolicyError` with
one line naming the file and the problem: not TOML, an unknown key, an unknown
role, a duplicate subject, a malformed or duplicate token hash.
"""

from __future__ import annotations

import enum
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Policy",
    "PolicyError",
    "Role",
    "Subject",
    "hash_token",
    "load_policy",
    "parse_policy",
]

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUBJECT_KEYS = frozenset({"name", "role", "token_sha256"})
_MAX_NAME_CHARS = 256  # a certificate CN is at most 64; leave room for token subjects


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and the problem."""


class Role(enum.IntEnum):
    """What a subject may do; a higher role includes every lower one.

    >>> Role.ADMIN >= Role.WRITER >= Role.READER
    True
    >>> Role.parse("Writer")
    <Role.WRITER: 2>
    """

    READER = 1  # reads, listings, stats, TTLs, the server list
    WRITER = 2  # and puts and deletes
    ADMIN = 3  # and cluster membership and snapshots

    @property
    def label(self) -> str:
        """The role's name as written in the policy file (``reader``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(role.label for role in cls)
            raise ValueError(f"unknown role {text!r}; use {names}") from None


@dataclass(frozen=True, slots=True)
class Subject:
    """One subject of the policy: its name, its role, the digests of its tokens."""

    name: str
    role: Role
    token_digests: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Policy:
    """Subjects by name, and the lookup from bearer token to subject."""

    subjects: Mapping[str, Subject] = field(default_factory=dict)
    source: str = "<policy>"
    _by_digest: dict[bytes, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_digest = {
            digest: entry.name for entry in self.subjects.values() for digest in entry.token_digests
        }
        object.__setattr__(self, "_by_digest", by_digest)

    def role_of(self, subject: str) -> Role | None:
        """The role of *subject*, or None when the policy gives it none."""
        entry = self.subjects.get(subject)
        return entry.role if entry is not None else None

    def subject_for_token(self, token: str) -> str | None:
        """The subject *token* authenticates as, or None for an unknown token.

        The token is hashed before anything is compared, so no comparison's
        timing depends on the token itself (see the module docstring); O(1) in
        the number of tokens.
        """
        return self._by_digest.get(hashlib.sha256(token.encode("utf-8")).digest())

    @property
    def token_count(self) -> int:
        return sum(len(entry.token_digests) for entry in self.subjects.values())

    def describe(self) -> str:
        """One line for the start-up banner (no names, no hashes)."""
        counts = dict.fromkeys(Role, 0)
        for entry in self.subjects.values():
            counts[entry.role] += 1
        roles = ", ".join(f"{counts[role]} {role.label}" for role in Role)
        return (
            f"authorization policy {self.source}: {len(self.subjects)} subjects ({roles}), "
            f"{self.token_count} tokens"
        )


def hash_token(token: str) -> str:
    """The hex SHA-256 of *token* as UTF-8: what ``token_sha256`` holds.

    >>> hash_token("password")
    '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8'
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_policy(path: str | Path) -> Policy:
    """Read and validate the policy file at *path*; raise PolicyError."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise PolicyError(
            f"cannot read the authorization policy {source}: {exc.strerror or exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"authorization policy {source} is not valid TOML: {exc}") from None
    return parse_policy(document, source=source)


def parse_policy(document: Mapping[str, Any], *, source: str = "<policy>") -> Policy:
    """Validate a parsed policy document (see the module docstring for the shape).

    >>> parse_policy({"subjects": [{"name": "a", "role": "reader"}]}).role_of("a")
    <Role.READER: 1>
    >>> parse_policy({"subjects": [{"name": "a", "role": "root"}]})
    Traceback (most recent call last):
    ...
    lrukv_server.security.policy.PolicyError: <policy>: subjects[0] ("a"): unknown role 'root'; \
use reader, writer, admin
    """
    unknown = sorted(set(document) - {"subjects"})
    if unknown:
        raise PolicyError(
            f"{source}: unknown key {unknown[0]!r}; the policy has only [[subjects]] tables"
        )
    entries = document.get("subjects", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: 'subjects' must be an array of tables ([[subjects]])")
    subjects: dict[str, Subject] = {}
    owners: dict[bytes, str] = {}
    for number, entry in enumerate(entries):
        subject = _subject(entry, f"{source}: subjects[{number}]")
        if subject.name in subjects:
            raise PolicyError(
                f"{source}: subjects[{number}]: duplicate subject {subject.name!r} "
                "(each subject has one entry and one role)"
            )
        for digest in subject.token_digests:
            owner = owners.get(digest)
            if owner is not None:
                raise PolicyError(
                    f"{source}: subjects[{number}] ({subject.name!r}): token hash "
                    f"{digest.hex()[:12]}... is already given to {owner!r}; a token "
                    "authenticates as one subject"
                )
            owners[digest] = subject.name
        subjects[subject.name] = subject
    return Policy(subjects=subjects, source=source)


def _subject(entry: object, where: str) -> Subject:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a table with name and role")
    unknown = sorted(set(entry) - _SUBJECT_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r}; use name, role, token_sha256")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise PolicyError(f"{where}: name must be a non-empty string without surrounding spaces")
    if len(name) > _MAX_NAME_CHARS or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise PolicyError(
            f"{where}: name must be at most {_MAX_NAME_CHARS} characters, no control characters"
        )
    where = f'{where} ("{name}")'
    role_text = entry.get("role")
    if not isinstance(role_text, str):
        raise PolicyError(f"{where}: role must be one of reader, writer, admin")
    try:
        role = Role.parse(role_text)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    return Subject(name=name, role=role, token_digests=_digests(entry.get("token_sha256"), where))


def _digests(value: object, where: str) -> tuple[bytes, ...]:
    if value is None:
        return ()
    items: Iterable[object] = [value] if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(value, str | list):
        raise PolicyError(f"{where}: token_sha256 must be a string or an array of strings")
    digests: list[bytes] = []
    for item in items:
        text = item.strip().lower() if isinstance(item, str) else None
        if text is None or not _HEX_SHA256.fullmatch(text):
            raise PolicyError(
                f"{where}: token_sha256 entries must be 64 hex digits (the SHA-256 of the "
                'token: printf %s "$TOKEN" | sha256sum), not a token or anything else'
            )
        digest = bytes.fromhex(text)
        if digest in digests:
            raise PolicyError(f"{where}: token hash {text[:12]}... is listed twice")
        digests.append(digest)
    return tuple(digests)
