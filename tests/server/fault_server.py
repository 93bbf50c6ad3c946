"""``lrukv-server`` with :class:`~tests.server.faults.FaultyService` around its KVService.

    python -m tests.server.fault_server [lrukv-server flags]

The same process as the ``lrukv-server`` script (the same CLI, gunicorn master
and worker, Agent, gRPC server and Flask app); only the service the APIs call is
wrapped, so a test can make a real server answer every row of the error table.
"""

from __future__ import annotations

import sys

from lrukv_server.cli import main
from tests.server.faults import FaultyService

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], service_wrapper=FaultyService))
