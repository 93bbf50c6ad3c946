"""The ``lrukv-server`` console script: the server, or one line naming the missing extra."""

from __future__ import annotations

import os
import sys

from lrukv._extras import EXIT_MISSING_EXTRA, missing_extra_message

__all__ = ["EXIT_MISSING_EXTRA", "main"]


def main() -> int:
    # Before grpc is imported (it reads this then): gRPC's C core would log every
    # failed TLS handshake on stderr at INFO, outside Python logging, so any
    # client could fill the log. Errors only, unless the user asks for more.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from lrukv_server.cli import main as run  # noqa: PLC0415 - the guarded import
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc, prog="lrukv-server", what="the server", needs="server")
        if message is None:
            raise
        print(message, file=sys.stderr)
        return EXIT_MISSING_EXTRA
    return run()
