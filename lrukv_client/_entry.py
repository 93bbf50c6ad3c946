"""The ``lrukv`` console script. Installed without its extra (``pip install
lrukv``), the CLI's imports fail; this says which extra to install, in one
line, instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

import sys

__all__ = ["EXIT_MISSING_EXTRA", "main"]

EXIT_MISSING_EXTRA = 127  # the shell's "command not found": the command is not all there
_OURS = {"lrukv", "lrukv_client", "lrukv_server", "lrukv_proto"}


def main() -> None:
    try:
        from lrukv_client.cli.app import main as run  # noqa: PLC0415 - the guarded import
    except ModuleNotFoundError as exc:
        missing = (exc.name or "?").split(".")[0]  # the package to install, not a submodule
        if missing in _OURS:
            raise  # a broken install of lrukv itself: the traceback helps
        print(
            "lrukv: the CLI needs the 'cli' extra: pip install 'lrukv[cli]' "
            f"(missing module: {missing})",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_MISSING_EXTRA) from None
    run()
