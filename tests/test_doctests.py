"""The ``>>>`` examples in the public docstrings run and give what they show."""
from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["perfkit", "perfkit.api", "perfkit.catalog"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no examples"
    assert result.failed == 0


def test_every_public_name_has_a_docstring():
    import perfkit

    for name in perfkit.__all__:
        assert getattr(perfkit, name).__doc__, name
