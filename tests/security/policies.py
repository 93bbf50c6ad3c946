"""A policy file for the tests: one token per role, and certificate subjects.

The tokens are made fresh per run (``secrets``); the file holds only their
SHA-256, as a real policy does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from lrukv_server.security.policy import hash_token

__all__ = ["CN_ADMIN", "CN_NO_ROLE", "CN_READER", "CN_WRITER", "Tokens", "write_policy"]

CN_READER = "reader.lrukv.test"
CN_WRITER = "writer.lrukv.test"
CN_ADMIN = "admin.lrukv.test"
CN_NO_ROLE = "stranger.lrukv.test"  # has a valid certificate, but no entry in the policy


@dataclass(frozen=True)
class Tokens:
    reader: str
    writer: str
    admin: str
    unknown: str  # well-formed, listed nowhere

    @classmethod
    def fresh(cls) -> Tokens:
        return cls(*(secrets.token_urlsafe(24) for _ in range(4)))


def write_policy(path: Path, tokens: Tokens) -> Path:
    """Write a policy with a token subject per role and the CN subjects above."""
    path.write_text(
        f"""
# test policy: tokens are stored as SHA-256 only
[[subjects]]
name = "app-reader"
role = "reader"
token_sha256 = ["{hash_token(tokens.reader)}"]

[[subjects]]
name = "app-writer"
role = "writer"
token_sha256 = ["{hash_token(tokens.writer)}"]

[[subjects]]
name = "ops"
role = "admin"
token_sha256 = ["{hash_token(tokens.admin)}"]

[[subjects]]
name = "{CN_READER}"
role = "reader"

[[subjects]]
name = "{CN_WRITER}"
role = "writer"

[[subjects]]
name = "{CN_ADMIN}"
role = "admin"
"""
    )
    return path
