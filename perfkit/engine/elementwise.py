"""numpy's element-wise ``maximum``, ``minimum`` and ``where``, without a ufunc call on a single request.

The engine evaluates a sweep of configurations as arrays and a single request as numpy scalars, through the
same code. A ufunc call costs about 1 us on scalars (``np.where`` 2.5 us) against 0.1 us for an operator, and
an evaluation makes about a hundred of them. These functions give numpy's answer, value and type, in both
cases: arrays (and 0-d arrays) go to numpy; two scalars (``np.float64``, ``np.int64``, ``float``, ``int``)
are compared directly and the winner cast to the type numpy would return (float64 when either is a float,
else int64), with NaN propagated as numpy does.

>>> [(type(x).__name__, float(x)) for x in (maximum(np.int64(3), 2.5), minimum(np.float64("nan"), 1.0))]
[('float64', 3.0), ('float64', nan)]
>>> type(where(np.bool_(False), 4, 0)).__name__, maximum(np.array([1.0, 5.0]), 2.0).tolist()
('int64', [2.0, 5.0])
"""
from __future__ import annotations

import numpy as np

_FLOATS = (np.float64, float)
_SCALARS = (np.float64, np.int64, float, int)
#: The type numpy gives a ufunc of two scalars of these types (NEP 50: float64 if either is a float).
_RESULT = {(ta, tb): np.float64 if ta in _FLOATS or tb in _FLOATS else np.int64 for ta in _SCALARS for tb in _SCALARS}
_BOOLS = (np.bool_, bool)


def maximum(a, b):
    """``np.maximum(a, b)``."""
    kind = _RESULT.get((type(a), type(b)))
    if kind is None:
        return np.maximum(a, b)
    value = a if a > b or a != a else b  # as numpy: a NaN wins, a tie (0.0 and -0.0) goes to b
    return value if type(value) is kind else kind(value)


def minimum(a, b):
    """``np.minimum(a, b)``."""
    kind = _RESULT.get((type(a), type(b)))
    if kind is None:
        return np.minimum(a, b)
    value = a if a < b or a != a else b
    return value if type(value) is kind else kind(value)


def where(condition, x, y):
    """``np.where(condition, x, y)``; a scalar condition with scalar branches gives a scalar (numpy gives a
    0-d array of the same value and type)."""
    kind = _RESULT.get((type(x), type(y))) if type(condition) in _BOOLS else None
    if kind is None:
        return np.where(condition, x, y)
    value = x if condition else y
    return value if type(value) is kind else kind(value)


def as_float(a):
    """``np.asarray(a, dtype=np.float64)``; of a scalar (int, float or their numpy types), a ``np.float64``. numpy's arithmetic between an
    ``np.int64`` and a float costs about 1 us a scalar operation, float64 with float64 a tenth of it: a value
    that enters many such operations is cheaper made a float once (the same values: integers below 2**53 are
    exact floats)."""
    kind = type(a)
    if kind is np.float64:
        return a
    if kind is np.int64 or kind is int or kind is float:
        return np.float64(a)
    return np.asarray(a, dtype=np.float64)


def zeros_like(a):
    """``np.zeros_like(a)``; of a scalar, a scalar of its type (numpy gives a 0-d array)."""
    return _filled(a, 0)


def ones_like(a):
    """``np.ones_like(a)``; of a scalar, a scalar of its type (numpy gives a 0-d array)."""
    return _filled(a, 1)


def _filled(a, value):
    kind = _RESULT.get((type(a), type(a)))
    return np.full_like(a, value) if kind is None else kind(value)
