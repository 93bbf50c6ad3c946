"""The examples in the server's docstrings run (pytest collects doctests only under lrukv/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lrukv_server.api.status",
    "lrukv_server.api.grpc_server",
    "lrukv_server.api.http_app",
    "lrukv_server.config",
    "lrukv_server.service.local",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples any more: drop it from MODULES"
    assert result.failed == 0
