"""The ``lrukv`` console script: the CLI, or one line naming the missing extra."""

from __future__ import annotations

import sys

from lrukv._extras import EXIT_MISSING_EXTRA, missing_extra_message

__all__ = ["EXIT_MISSING_EXTRA", "main"]


def main() -> None:
    try:
        from lrukv_client.cli.app import main as run  # noqa: PLC0415 - the guarded import
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc, prog="lrukv", what="the CLI", needs="cli")
        if message is None:
            raise
        print(message, file=sys.stderr)
        raise SystemExit(EXIT_MISSING_EXTRA) from None
    run()
