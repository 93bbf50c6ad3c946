"""One line for a console script installed without its extra (``pip install
lrukv`` gives the scripts but not grpc, flask…): which extra to install,
instead of a ModuleNotFoundError traceback. Shared by ``lrukv`` and
``lrukv-server``; it lives in the core because the core is always installed.
"""

from __future__ import annotations

__all__ = ["EXIT_MISSING_EXTRA", "missing_extra_message"]

EXIT_MISSING_EXTRA = 127  # the shell's "command not found": the command is not all there
_OURS = frozenset({"lrukv", "lrukv_client", "lrukv_server", "lrukv_proto"})


def missing_extra_message(
    exc: ModuleNotFoundError, *, prog: str, what: str, needs: str
) -> str | None:
    """The line to print for *exc*, or None when lrukv itself is broken (then the
    traceback helps more).

    >>> error = ModuleNotFoundError(name="grpc.aio")
    >>> missing_extra_message(error, prog="lrukv", what="the CLI", needs="cli")
    "lrukv: the CLI needs the 'cli' extra: pip install 'lrukv[cli]' (missing module: grpc)"
    """
    missing = (exc.name or "?").split(".")[0]  # the package to install, not a submodule
    if missing in _OURS:
        return None
    install = f"pip install 'lrukv[{needs}]'"
    return f"{prog}: {what} needs the '{needs}' extra: {install} (missing module: {missing})"
