"""Fitting the GEMM closed form (:mod:`perfkit.engine.kernels.gemm`) to the ``gemm_perf`` tables.

For each system, backend and dtype the fit minimizes the robust (soft-L1) sum of squared log-ratios of
:func:`~perfkit.engine.kernels.gemm.gemm_seconds` to the measured latency over the training shapes (every
``(n, k)`` weight shape not held out by :mod:`.split`), inside the bounds of ``PARAMS``. The peak and HBM
bandwidth are the catalog's, so the fitted fractions are efficiencies of the datasheet figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...engine.kernels.gemm import COMPUTE, PARAMS, WEIGHT_BYTES, gemm_seconds
from . import split, tables

TABLE = "gemm_perf"
#: The tables' ``gemm_dtype`` -> the variant name of the ``kernels:`` block.
VARIANTS = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4",
            "sq": "int8", "int8_wo": "int8_wo", "int4_wo": "int4"}
#: Smallest n and k each variant's kernels are built for: block-scaled fp8 quantizes weights in 128 x 128
#: blocks, and a weight narrower than one block runs a fallback path (up to 40x slower in vLLM's table) that
#: no model layer meets. Rows outside are neither fitted nor scored.
MIN_NK = {"fp8_block": 128}
_NAMES = tuple(PARAMS)
GOOD_FIT = 0.06  # median |log ratio| below which the first start is kept
_X0 = {"plateau": 0.6, "bandwidth": 0.8, "m_half": 32.0, "n_half": 32.0, "k_half": 32.0, "sharpness": 3.0, "launch_s": 3e-6, "k_step_s": 1e-9,
       "k_split": 2048.0, "row_s": 1e-10, "switch_s": 1e-6, "switch_m": 24.0, "l2_share": 0.3, "l2_bytes": 3e7}
_SCALE = {"plateau": 0.1, "bandwidth": 0.1, "m_half": 32.0, "n_half": 32.0, "k_half": 32.0, "sharpness": 1.0, "launch_s": 1e-6, "k_step_s": 1e-9,
          "k_split": 1000.0, "row_s": 1e-10, "switch_s": 1e-6, "switch_m": 16.0, "l2_share": 0.1, "l2_bytes": 1e7}


def _chip(hardware, variant: str) -> tuple[float, float, float]:
    """(peak FLOP/s of the format the variant computes in, HBM bytes/s, weight bytes per element)."""
    peak = hardware.peak_flops_per_s.get(COMPUTE[variant])
    if not peak:
        raise ValueError(f"{hardware.name} publishes no {COMPUTE[variant]} peak, which gemm variant "
                         f"{variant!r} computes in")
    return peak, hardware.hbm_bytes_per_s, WEIGHT_BYTES[variant]


def _rows(system: str, backend: str, root=None) -> pd.DataFrame:
    frame = tables.load(system, TABLE, backend, root)
    frame = frame[frame["gemm_dtype"].isin(VARIANTS)].copy()
    frame["variant"] = frame["gemm_dtype"].map(VARIANTS)
    smallest = frame["variant"].map(MIN_NK).fillna(0)
    frame = frame[(frame["n"] >= smallest) & (frame["k"] >= smallest)].copy()
    frame["split"] = split.label(split.held_out(frame, "gemm"))
    return frame


def predict(rows: pd.DataFrame, hardware, fitted: dict) -> np.ndarray:
    """Predicted seconds of each row (columns ``variant``, ``m``, ``n``, ``k``); NaN where no fit exists."""
    out = np.full(len(rows), np.nan)
    for variant, params in fitted.items():
        mask = (rows["variant"] == variant).to_numpy()
        if mask.any():
            sel = rows[mask]
            out[mask] = gemm_seconds(params, sel["m"].to_numpy(float), sel["n"].to_numpy(float),
                                     sel["k"].to_numpy(float), *_chip(hardware, variant))
    return out


def fit_rows(rows: pd.DataFrame, hardware, variant: str) -> dict[str, float]:
    """The parameters of one variant from its rows (``m``, ``n``, ``k``, ``seconds``)."""
    from scipy.optimize import least_squares  # the fit needs scipy; predictions do not

    m, n, k, seconds = (rows[c].to_numpy(float) for c in ("m", "n", "k", "seconds"))
    chip = _chip(hardware, variant)
    low = np.array([PARAMS[p][0] for p in _NAMES])
    high = np.array([PARAMS[p][1] for p in _NAMES])
    x0 = np.clip([_X0[p] for p in _NAMES], low, high)

    def residuals(x):
        return np.log(gemm_seconds(dict(zip(_NAMES, x)), m, n, k, *chip) / seconds)

    # a kernel-bound start, and where that leaves a poor fit a host-bound one too (a fixed floor of tens of
    # microseconds, as vLLM's block-quantized path shows): the robust loss has a local minimum at each
    best = None
    for floor in (3e-6, 5e-5):
        start = np.where(np.array(_NAMES) == "launch_s", floor, x0)
        result = least_squares(residuals, start, bounds=(low, high), loss="soft_l1", f_scale=0.05,
                               x_scale=np.array([_SCALE[p] for p in _NAMES]))
        if best is None or result.cost < best.cost:
            best = result
        if np.median(np.abs(best.fun)) < GOOD_FIT:
            break
    result = best
    return {p: float(v) for p, v in zip(_NAMES, result.x)}


def fit(system: str, backend: str, root=None) -> dict[str, dict[str, float]]:
    """variant -> fitted parameters, from the training shapes of ``system``'s ``backend`` table."""
    rows = _rows(system, backend, root)
    hardware = tables.hardware(system)
    train = rows[rows["split"] == "train"]
    return {variant: fit_rows(group, hardware, variant) for variant, group in train.groupby("variant")}


def errors(system: str, backend: str, fitted: dict, root=None) -> pd.DataFrame:
    """One row per table row: ``variant``, ``split``, ``m``, ``n``, ``k``, measured and predicted seconds and
    ``error`` = |predicted / measured - 1|."""
    rows = _rows(system, backend, root)
    predicted = predict(rows, tables.hardware(system), fitted)
    out = rows[["variant", "split", "m", "n", "k", "seconds"]].assign(predicted_s=predicted)
    out["error"] = np.abs(out["predicted_s"] / out["seconds"] - 1)
    return out.dropna(subset=["error"]).reset_index(drop=True)


def table_spread(system: str, backend: str, root=None) -> pd.Series:
    """variant -> the table's own scatter: the median of |t(m + 1) / t(m) - 1| over the rows measured at
    both ``m`` and ``m + 1`` tokens (m >= 16) of one shape, in %. Two GEMMs one token apart cost nearly the
    same, so this is about the noise (or kernel switching) no smooth model can follow."""
    rows = _rows(system, backend, root)
    keys = ["variant", "n", "k"]
    nxt = rows.assign(m=rows["m"] - 1)[[*keys, "m", "seconds"]]
    pairs = rows[rows["m"] >= 16].merge(nxt, on=[*keys, "m"], suffixes=("", "_next"))
    return (100 * np.abs(pairs["seconds_next"] / pairs["seconds"] - 1)).groupby(pairs["variant"]).median()
