"""``python -m lrukv_server.security``: the policy file's helpers.

python -m lrukv_server.security new-token SUBJECT [ROLE]
    print a new random bearer token, and the [[subjects]] entry holding its hash
python -m lrukv_server.security hash-token < token.txt
    print the SHA-256 (hex) of the token on stdin (a trailing newline is dropped)
python -m lrukv_server.security check FILE
    validate a policy file as lrukv-server --auth-policy would; exit 2 if bad
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence

from lrukv_server.security.policy import PolicyError, Role, hash_token, load_policy

_USAGE = __doc__ or ""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE.strip())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "new-token" and 1 <= len(rest) <= 2:
        try:
            role = Role.parse(rest[1]) if len(rest) == 2 else Role.READER
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        token = secrets.token_urlsafe(32)
        print(f"token (give it to the client; it is not stored anywhere): {token}")
        print("policy entry:")
        print("[[subjects]]")
        print(f'name = "{rest[0]}"')
        print(f'role = "{role.label}"')
        print(f'token_sha256 = ["{hash_token(token)}"]')
        return 0
    if command == "hash-token" and not rest:
        token = sys.stdin.read().rstrip("\r\n")
        if not token:
            print("error: no token on stdin", file=sys.stderr)
            return 2
        print(hash_token(token))
        return 0
    if command == "check" and len(rest) == 1:
        try:
            policy = load_policy(rest[0])
        except PolicyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(policy.describe())
        return 0
    print(_USAGE.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
