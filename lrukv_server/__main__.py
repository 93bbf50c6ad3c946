"""``python -m lrukv_server``: the same as the ``lrukv-server`` command."""

from lrukv_server.cli import main

raise SystemExit(main())
