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

__all__ = [
    "LEADER_HTTP_HEADER",
    "LEADER_HTTP_METADATA",
    "LEADER_RPC_HEADER",
    "LEADER_RPC_METADATA",
]
