"""Generated protobuf and gRPC modules of the lrukv API, plus the wire constants
that the server and the client must agree on.

Regenerate with ``python proto/generate.py``; a test checks the committed code
is current. Only this file is written by hand.
"""

# Trailing metadata on FAILED_PRECONDITION (not the leader): where the leader is.
LEADER_RPC_METADATA = "lrukv-leader-rpc"
LEADER_HTTP_METADATA = "lrukv-leader-http"

# HTTP headers with the same meaning, sent with 307 redirects and 503 answers.
LEADER_RPC_HEADER = "X-Lrukv-Leader-Rpc"
LEADER_HTTP_HEADER = "X-Lrukv-Leader-Http"

# The precise error behind a failed call (key_not_found, invalid_key, invalid_ttl,
# value_too_large, not_leader, log_unavailable…; the table is lrukv_server.api.status):
# gRPC trailing metadata on every error status, and `error.code` in HTTP error bodies.
ERROR_CODE_METADATA = "lrukv-error-code"

__all__ = [
    "ERROR_CODE_METADATA",
    "LEADER_HTTP_HEADER",
    "LEADER_HTTP_METADATA",
    "LEADER_RPC_HEADER",
    "LEADER_RPC_METADATA",
]
