"""The examples in the observability modules' docstrings run (pytest collects
doctests only under lrukv/ and tests/)."""

from __future__ import annotations

import doctest

from lrukv_server.observability import metrics


def test_metrics_docstring_examples() -> None:
    result = doctest.testmod(metrics, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
