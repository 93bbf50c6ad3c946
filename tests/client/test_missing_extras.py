"""Installed without its extra, each command says which extra to install, in
one line, instead of dying with a ModuleNotFoundError traceback.

The installed console scripts run with a ``sitecustomize`` that hides a
dependency (``sys.modules[name] = None`` makes importing it fail exactly as if
it were not installed): the real entry points, in a second, without a venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run_without(
    tmp_path: Path, hidden: list[str], *command: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ["PYTHONPATH"] = str(tmp_path)
    return subprocess.run(
        command, capture_output=True, text=True, env=environ, timeout=120, check=False
    )


@pytest.mark.parametrize("hidden", [["grpc"], ["typer"], ["httpx"]])
def test_lrukv_without_the_cli_extra_names_it(tmp_path: Path, hidden: list[str]) -> None:
    result = run_without(tmp_path, hidden, str(BIN / "lrukv"), "get", "k")
    assert result.returncode == 127
    assert result.stderr == (
        "lrukv: the CLI needs the 'cli' extra: pip install 'lrukv[cli]' "
        f"(missing module: {hidden[0]})\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("hidden", [["grpc"], ["flask"], ["gunicorn"]])
def test_lrukv_server_without_the_server_extra_names_it(tmp_path: Path, hidden: list[str]) -> None:
    result = run_without(tmp_path, hidden, str(BIN / "lrukv-server"), "--http-port", "0")
    assert result.returncode == 127
    assert result.stderr == (
        "lrukv-server: the server needs the 'server' extra: pip install 'lrukv[server]' "
        f"(missing module: {hidden[0]})\n"
    )


def test_the_sdk_without_the_client_extra_names_it(tmp_path: Path) -> None:
    program = "from lrukv_client import Client"
    result = run_without(tmp_path, ["grpc"], sys.executable, "-c", program)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: lrukv_client needs the 'client' extra: "
        "pip install 'lrukv[client]' (missing module: grpc)"
    )


def test_the_hiding_works(tmp_path: Path) -> None:
    # Guard against a test that cannot fail: with nothing hidden, the command runs.
    result = run_without(tmp_path, [], str(BIN / "lrukv"), "--version")
    assert (result.returncode, result.stdout) == (0, "lrukv 0.1.0\n")
