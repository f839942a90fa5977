"""perfkit/engine/elementwise.py gives numpy's answer, value and type, on a single request's scalars (its fast
path) and on arrays, NaN and infinities included: the engine serves sweeps and single requests through it."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from perfkit.engine import elementwise as ew

NAN, INF = float("nan"), float("inf")
SCALARS = [np.float64(2.5), np.float64(-1.0), np.float64(NAN), np.float64(3.0), np.float64(INF), np.float64(-0.0),
           np.int64(3), np.int64(-2), 3, 0, 2.5, NAN, -INF]
ARRAYS = [np.array([1.0, NAN, 3.0, -INF]), np.array([2, 0, 5, 1]), np.array(4.0), np.array([True, False, True, False])]


def _same(fast, reference) -> None:
    reference = reference[()] if isinstance(reference, np.ndarray) and reference.ndim == 0 else reference
    assert np.asarray(fast).dtype == np.asarray(reference).dtype
    assert np.array_equal(fast, reference, equal_nan=True)
    assert np.array_equal(np.signbit(fast), np.signbit(reference))


@pytest.mark.parametrize("fast, reference", [(ew.maximum, np.maximum), (ew.minimum, np.minimum)])
def test_maximum_and_minimum_are_numpys(fast, reference):
    for a, b in itertools.product(SCALARS + ARRAYS, SCALARS + ARRAYS):
        _same(fast(a, b), reference(a, b))
    assert type(fast(np.int64(3), 2.5)) is np.float64 and type(fast(np.int64(3), 8)) is np.int64


def test_where_is_numpys():
    for condition in (np.bool_(True), np.bool_(False), True, False, np.array([True, False, False, True])):
        for x, y in itertools.product(SCALARS + ARRAYS[:2], SCALARS + ARRAYS[:2]):
            _same(ew.where(condition, x, y), np.where(condition, x, y))


def test_zeros_and_ones_like_are_numpys():
    for a in SCALARS + ARRAYS:
        _same(ew.zeros_like(a), np.zeros_like(a))
        _same(ew.ones_like(a), np.ones_like(a))


def test_as_float_is_numpys():
    for a in SCALARS + ARRAYS:
        _same(ew.as_float(a), np.asarray(a, dtype=np.float64))
    assert type(ew.as_float(np.int64(8))) is np.float64 and ew.as_float(np.int64(8)) == 8.0
