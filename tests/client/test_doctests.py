"""Run the examples in lrukv_client's docstrings (pytest's --doctest-modules only
collects the paths in testpaths, which do not include lrukv_client)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lrukv_client


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(lrukv_client.__path__, prefix="lrukv_client."):
        if info.name.endswith(".__main__"):
            continue  # importing it would run the command
        module = importlib.import_module(info.name)
        examples = [e for test in doctest.DocTestFinder().find(module) for e in test.examples]
        # Examples that need a running server are marked +SKIP; they cannot fail here.
        if any(not example.options.get(doctest.SKIP) for example in examples):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
