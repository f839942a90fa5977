"""The held-out split of the kernel tables: whole shapes, never random rows.

A kernel fitted on some rows of a weight shape and scored on other rows of the same shape would be scored on
what it has already seen. So a whole *shape key* is held out with all its rows (every ``m``, every dtype):

- GEMM: the weight shape ``(n, k)``;
- attention: the head configuration ``(num_heads, num_key_value_heads, head_dim[, window_size])``;
- MoE: the model shape ``(hidden_size, inter_size, topk, num_experts)``.

The choice is deterministic and the same for every system and backend: the distinct keys are sorted and
every ``EVERY``-th one (starting at ``OFFSET``) is held out, so about a quarter of the shapes, spread over
the whole range of sizes, are never fitted.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EVERY = 4
OFFSET = 1
#: The shape key of each family's table (the columns present in the frame are used).
KEYS = {
    "gemm": ("n", "k"),
    "attention": ("num_heads", "num_key_value_heads", "head_dim", "window_size"),
    "moe": ("hidden_size", "inter_size", "topk", "num_experts"),
}


def held_out(frame: pd.DataFrame, key: tuple[str, ...] | str, every: int = EVERY, offset: int = OFFSET) -> np.ndarray:
    """Boolean mask of the rows whose shape key is held out. ``key`` is a family name of :data:`KEYS` or the
    columns themselves."""
    columns = [c for c in (KEYS[key] if isinstance(key, str) else key) if c in frame]
    if not columns or every < 2:
        return np.zeros(len(frame), dtype=bool)
    keys = frame[columns].astype(float).fillna(-1.0)
    distinct = keys.drop_duplicates().sort_values(columns).reset_index(drop=True)
    chosen = distinct.iloc[offset % every::every]
    return keys.merge(chosen.assign(_held=True), on=columns, how="left")["_held"].fillna(False).to_numpy(bool)


def label(mask: np.ndarray) -> np.ndarray:
    """``"held-out"`` / ``"train"`` per row."""
    return np.where(mask, "held-out", "train")
