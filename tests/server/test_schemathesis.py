"""schemathesis, with every check, against a real ``lrukv-server`` and the OpenAPI
document that server serves: the document and the server must agree both ways
(what the document allows is accepted, what it forbids is refused), and no
request may get a 5xx.

The size is picked by ``LRUKV_TEST_SCHEMATHESIS``:

- ``ci`` (the default): 10 cases per operation and phase, about 180 cases, ~20 s;
- ``full``: 200 per operation and phase, over 1,000 cases, a minute or two::

      LRUKV_TEST_SCHEMATHESIS=full .venv/bin/python -m pytest tests/server/test_schemathesis.py

The seed is fixed (so CI runs the same cases each time); set
``LRUKV_TEST_SCHEMATHESIS_SEED`` to explore others. The command the test ran is
in its output (``-s``) and in the JSON report's ``command``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import start_server

# size name -> (cases per operation and phase, fewest cases the run must have made)
_SIZES = {"ci": (10, 100), "full": (200, 1000)}
_OPERATIONS = 8  # in docs/openapi.json


def _size() -> tuple[int, int]:
    name = os.environ.get("LRUKV_TEST_SCHEMATHESIS", "ci")
    if name not in _SIZES:
        raise pytest.UsageError(f"LRUKV_TEST_SCHEMATHESIS must be one of {sorted(_SIZES)}")
    return _SIZES[name]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_server_and_its_openapi_document_agree(tmp_path: Path) -> None:
    examples, fewest = _size()
    seed = os.environ.get("LRUKV_TEST_SCHEMATHESIS_SEED", "20261201")
    st = Path(sys.executable).parent / "st"
    assert st.exists(), "schemathesis is in the dev extra: make .venv/.installed-dev"
    server = start_server(tmp_path)
    try:
        report = tmp_path / "schemathesis.json"
        command = [
            str(st),
            "run",
            f"{server.http_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--seed",
            seed,
            "--workers",
            "1",  # two CPUs, shared: one request at a time is plenty
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        print("running:", " ".join(command))
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=840, check=False
        )
        output = result.stdout + result.stderr
        print(output[-3000:])
        assert result.returncode == 0, output
        summary = json.loads(report.read_text())
        assert summary["failures"] == [] and summary["errors"] == [], output
        assert summary["operations"]["tested"] == _OPERATIONS, summary["operations"]
        generated = summary["test_cases"]["generated"]
        assert generated >= fewest, f"only {generated} cases ran\n{output}"
        assert server.alive() and server.worker_alive(), server.output()
        log = server.stderr()
        assert "Traceback" not in log, log
        assert not re.search(r"^\S+ \S+ (ERROR|CRITICAL) ", log, re.MULTILINE), log
    finally:
        assert server.stop() == 0, server.output()
