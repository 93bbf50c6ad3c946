"""``python -m lrukv_server``: the same as the ``lrukv-server`` command."""

from lrukv_server._entry import main

raise SystemExit(main())
