"""The CLI is a user of the SDK like any other: it may import the public
``lrukv_client`` API (and the public ``lrukv_client.bench``), never a private
module of the SDK, and nothing of the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lrukv_client.cli

CLI_DIR = Path(lrukv_client.cli.__file__).parent
ALLOWED = {"lrukv_client", "lrukv_client.bench", "lrukv_client.bench.plot", "lrukv_client.certs"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_the_cli_imports_only_the_public_sdk(path: Path) -> None:
    ours = {m for m in imported_modules(path) if m.split(".")[0].startswith("lrukv")}
    assert ours, "every CLI module uses the SDK or its sibling CLI modules"
    for module in ours:
        assert module in ALLOWED or module.startswith("lrukv_client.cli"), (
            f"{path.name} imports {module}"
        )
