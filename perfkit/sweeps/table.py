"""Columns of a sweep chunk, and turning chunks into one DataFrame or into Arrow record batches.

A chunk is a ``dict`` of column name to either a numpy array or a :class:`Cat` (integer codes into a list of
strings). String columns stay codes until the table is built, so a million rows of ``bottleneck`` or
``reason`` cost four bytes each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class Labels:
    """The strings of one column seen so far, each with a stable code (the column's categories)."""

    def __init__(self, initial=()):
        self.items: list[str] = []
        self._index: dict[str, int] = {}
        for text in initial:
            self.code(text)

    def code(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.items)
            self.items.append(text)
        return self._index[text]

    def encode(self, array: np.ndarray) -> np.ndarray:
        """Codes of a string array: one vectorized comparison per distinct string, not one lookup per row."""
        codes = np.full(array.shape, -1, dtype=np.int32)
        for text in np.unique(array[:: max(1, array.size // 256)]):  # a sample finds the common strings
            self.code(str(text))
        for code, text in enumerate(self.items):
            codes[array == text] = code
        missing = codes < 0
        if missing.any():
            for text in np.unique(array[missing]):
                codes[array == text] = self.code(str(text))
        return codes


@dataclass
class Cat:
    """A categorical column of a chunk: ``codes`` index ``labels.items``."""

    codes: np.ndarray
    labels: Labels


def rows(chunk: dict) -> int:
    first = next(iter(chunk.values()))
    return len(first.codes if isinstance(first, Cat) else first)


def to_frame(chunk: dict, attrs: dict | None = None) -> pd.DataFrame:
    """One chunk as a DataFrame (string columns categorical)."""
    frame = pd.DataFrame({name: _series(col) for name, col in chunk.items()}, copy=False)
    frame.attrs.update(attrs or {})
    return frame


def _series(col):
    if isinstance(col, Cat):
        return pd.Categorical.from_codes(col.codes, categories=list(col.labels.items))
    return col


class Collector:
    """Writes chunks into preallocated columns of ``total`` rows: the table is built with one copy."""

    def __init__(self, total: int):
        self.total = total
        self.columns: dict = {}

    def add(self, offset: int, chunk: dict) -> None:
        n = rows(chunk)
        for name, col in chunk.items():
            values = col.codes if isinstance(col, Cat) else col
            if name not in self.columns:
                self.columns[name] = (np.empty(self.total, dtype=values.dtype),
                                      col.labels if isinstance(col, Cat) else None)
            self.columns[name][0][offset:offset + n] = values

    def frame(self, attrs: dict) -> pd.DataFrame:
        chunk = {name: Cat(values, labels) if labels is not None else values
                 for name, (values, labels) in self.columns.items()}
        return to_frame(chunk, attrs)


def to_arrow(chunk: dict):
    """One chunk as a ``pyarrow.RecordBatch``; string columns are dictionary arrays with int32 indices, so
    every chunk of a sweep has the same schema."""
    import pyarrow as pa

    arrays, names = [], []
    for name, col in chunk.items():
        if isinstance(col, Cat):
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(col.codes, type=pa.int32()),
                                                         pa.array(col.labels.items, type=pa.string())))
        else:
            arrays.append(pa.array(col))
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)
