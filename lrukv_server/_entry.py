"""The ``lrukv-server`` console script. Installed without its extra (``pip install
lrukv``), the server's imports fail; this says which extra to install, in one
line, instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

import sys

__all__ = ["EXIT_MISSING_EXTRA", "main"]

EXIT_MISSING_EXTRA = 127  # the shell's "command not found": the command is not all there
_OURS = {"lrukv", "lrukv_client", "lrukv_server", "lrukv_proto"}


def main() -> int:
    try:
        from lrukv_server.cli import main as run  # noqa: PLC0415 - the guarded import
    except ModuleNotFoundError as exc:
        missing = (exc.name or "?").split(".")[0]  # the package to install, not a submodule
        if missing in _OURS:
            raise  # a broken install of lrukv itself: the traceback helps
        print(
            "lrukv-server: the server needs the 'server' extra: pip install 'lrukv[server]' "
            f"(missing module: {missing})",
            file=sys.stderr,
        )
        return EXIT_MISSING_EXTRA
    return run()
