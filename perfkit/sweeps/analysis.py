"""Reading a sweep table: Pareto fronts, the best configuration under constraints, the largest batch that fits.

Each function takes the DataFrame of :func:`perfkit.sweep` (or any slice of it) and computes with pandas;
none evaluates the model again. ``throughput_per_chip_tokens_s`` (throughput over chips) is added where a
function needs it and the table lacks it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PerfkitError, choices_text

#: Figures derived from a row's columns when a function is asked for them.
DERIVED = {"throughput_per_chip_tokens_s": lambda df: df["throughput_tokens_s"] / df["num_chips"]}


def _with(df: pd.DataFrame, *names: str) -> pd.DataFrame:
    missing = [n for n in names if n not in df.columns]
    if not missing:
        return df
    df = df.copy(deep=False)
    for name in missing:
        if name not in DERIVED:
            raise PerfkitError(f"column {name!r} is not in the table; "
                               + choices_text(name, [*df.columns, *DERIVED]), field=name)
        df[name] = DERIVED[name](df)
    return df


def pareto_front(df: pd.DataFrame, x: str = "tpot_ms", y: str = "throughput_per_chip_tokens_s", *,
                 minimize_x: bool = True, maximize_y: bool = True, valid_only: bool = True) -> pd.DataFrame:
    """The rows no other row beats on both ``x`` and ``y``, sorted by ``x`` (best first).

    By default: the least TPOT for the most throughput per chip, among configurations that run.

    >>> import perfkit
    >>> df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": [1, 8, 64], "input_seq": 1024, "output_seq": 128,
    ...                     "layers": {"all": {"tensor_parallel": [1, 2, 4, 8]}}})
    >>> front = pareto_front(df)
    >>> bool(front["tpot_ms"].is_monotonic_increasing)
    True
    """
    df = _with(df, x, y)
    if valid_only:
        df = df[df["valid"]]
    xs = df[x].to_numpy(dtype=float) * (1 if minimize_x else -1)
    ys = df[y].to_numpy(dtype=float) * (1 if maximize_y else -1)
    order = np.lexsort((-ys, xs))  # by x, then the better y first among equal x
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(ys[order])[:-1]))
    return df.iloc[order[ys[order] > best_before]]


def best_config(df: pd.DataFrame, objective: str = "throughput_per_chip_tokens_s", *, maximize: bool = True,
                max_ttft_ms: float | None = None, max_tpot_ms: float | None = None,
                max_chips: int | None = None, must_fit: bool = True) -> pd.Series:
    """The row that maximizes (or minimizes) ``objective`` among rows that run and meet every limit given.

    >>> import perfkit
    >>> df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": [1, 8, 64], "input_seq": 1024, "output_seq": 128,
    ...                     "layers": {"all": {"tensor_parallel": [1, 2, 4, 8]}}})
    >>> row = best_config(df, max_tpot_ms=50, max_chips=4)
    >>> bool(row["tpot_ms"] <= 50 and row["num_chips"] <= 4)
    True
    """
    df = _with(df, objective)
    keep = df["valid"] if must_fit else df["valid"] | df["reason"].isin(_no_fit(df))
    limits = []
    for column, limit in (("ttft_ms", max_ttft_ms), ("tpot_ms", max_tpot_ms), ("num_chips", max_chips)):
        if limit is not None:
            keep = keep & (df[column] <= limit)
            limits.append(f"{column} <= {limit}")
    chosen = df[keep]
    if chosen.empty:
        valid = df[df["valid"]]
        closest = ", ".join(f"least {c} is {valid[c].min():.4g}" for c in ("ttft_ms", "tpot_ms", "num_chips")
                            if not valid.empty)
        raise PerfkitError(f"no configuration of {len(df)} runs and meets {' and '.join(limits) or 'the limits'}"
                           + (f" (among those that run: {closest})" if closest else ""), field=None)
    values = chosen[objective]
    return chosen.loc[values.idxmax() if maximize else values.idxmin()]


def _no_fit(df: pd.DataFrame) -> list:
    return [r for r in df["reason"].unique() if str(r).startswith("does not fit")]


def max_batch_that_fits(df: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """For each combination of ``by`` (default: every axis but ``batch_size``), the largest ``batch_size``
    whose configuration runs and fits, with that row's figures.

    >>> import perfkit
    >>> df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": [1, 16, 256, 4096], "input_seq": 8192, "output_seq": 1024,
    ...                     "layers": {"all": {"tensor_parallel": [4, 8]}}})
    >>> best = max_batch_that_fits(df).set_index("layers.all.tensor_parallel")["batch_size"]
    >>> bool(best[8] >= best[4])  # twice the chips hold at least as large a batch
    True
    """
    if "batch_size" not in df.columns:
        raise PerfkitError("the table has no batch_size column; sweep batch_size to find the largest batch",
                           field="batch_size")
    if by is None:
        by = [a for a in df.attrs.get("axes", []) if a != "batch_size" and a in df.columns]
    runs = df[df["valid"]]
    if runs.empty:
        return runs
    if not by:
        return runs.loc[[runs["batch_size"].idxmax()]]
    best = runs.groupby(by, observed=True, sort=True)["batch_size"].idxmax()
    return runs.loc[best.to_numpy()]
