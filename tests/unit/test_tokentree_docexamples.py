"""Every docstring example in tokentree is a test (doctest, as networkx and constriction do)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["tokentree.tree", "tokentree.synth", "tokentree.prune", "tokentree.coding", "tokentree.rates",
           "tokentree.mixture"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    if name != "tokentree.mixture":
        assert result.attempted > 0
