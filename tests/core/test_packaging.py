"""The core is importable on its own: no third-party package, none of our servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lrukv

ROOT = Path(__file__).resolve().parents[2]


def test_import_lrukv_pulls_in_no_server_or_third_party_module() -> None:
    program = (
        "import sys, lrukv\n"
        "m = lrukv.ShardedMap(); m.put('k', b'v'); assert m.get('k') == b'v'\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'grpc', 'google', 'flask', 'werkzeug', 'gunicorn', 'psycopg', 'typer', "
        "'lrukv_server', 'lrukv_client', 'lrukv_proto'})\n"
        "print(','.join(bad))\n"
    )
    # -I: isolated mode, so no site-packages on the path at all; the core
    # must still import and work from the source tree alone.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{program}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""


def test_public_api_is_exactly_what_all_declares() -> None:
    for name in lrukv.__all__:
        assert hasattr(lrukv, name), name
    assert (Path(lrukv.__file__).parent / "py.typed").exists()
