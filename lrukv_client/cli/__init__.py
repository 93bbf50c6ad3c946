"""``lrukv``: the command line of lrukv (Typer), built on the public SDK only.

``app`` is the Typer application, ``main()`` the console script. The commands are
in :mod:`lrukv_client.cli.app`, the load generator's in
:mod:`lrukv_client.cli.bench`, and what they share (settings, exit codes, the
error line) in :mod:`lrukv_client.cli.common`. These modules import from
``lrukv_client`` and ``lrukv_client.bench`` only, never a private module or the
server (a test checks).
"""

from lrukv_client.cli.app import app, main
from lrukv_client.cli.common import EXIT_CODES

__all__ = ["EXIT_CODES", "app", "main"]
