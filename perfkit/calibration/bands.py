"""Uncertainty bands from residuals, by the chip's kernel calibration status and the serving mode.

A band is the p10 and p90 of measured / predicted for TTFT and TPOT; the engine multiplies a prediction by
them (``uncertainty: true``, the sweeps' ``*_p10`` / ``*_p90`` columns). Each serving profile holds four:

- ``fitted_continuous``: the engine's own training residuals on the measured serving points (closed loops
  under continuous batching, on chips with kernel tables);
- ``fitted_static``: held-out kernel residuals of the table-covered chips for the engine's kernel backend
  (a static pass is its kernels): prefill-shaped rows (GEMMs of at least 256 rows, prefill attention, MoE
  layers of at least 256 tokens) for TTFT, decode-shaped ones (GEMMs of at most 64 rows, decode attention,
  MoE layers of at most 64 tokens) for TPOT;
- ``sourced_static``: the same rows of chips that have tables (A100, B200, GB200) predicted as a chip
  without tables is (:func:`perfkit.calibration.kernels.sourced.transferred`): H100's curves at the chip's
  published GEMM level (its mamf-finder bf16 row of ``matmul_measured.csv``) and the prior HBM fraction;
- ``sourced_continuous``: ``fitted_continuous`` widened by ``sourced_static`` over ``fitted_static``.

Chips whose file has no ``kernels:`` block (priors) take the sourced bands.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from .. import catalog
from .kernels import FAMILIES, tables
from .kernels.sourced import transferred

QUANTILES = (0.1, 0.9)
#: (system, mamf-finder bf16 TFLOP/s) of the chips that stand in for a sourced chip: their measured best
#: matmul (shared/data/matmul_measured.csv: ml-engineering's MAMF table) over the catalog's bf16 peak.
STAND_INS = {"a100_sxm": 271.2, "b200_sxm": 1745.0, "gb200": 1822.0}
TEMPLATE = "h100_sxm"
PRIOR_HBM = 0.85
_FAMILIES = ("gemm", "context_attention", "generation_attention", "moe")


def _ratios(system: str, backend: str, fits: dict, split: str | None = "held_out") -> pd.DataFrame:
    """measured / predicted of ``system``'s kernel rows (``phase`` prefill or decode; others dropped)."""
    frames = []
    for family in _FAMILIES:
        if family not in fits or backend not in tables.files(system, FAMILIES[family].TABLE):
            continue
        errs = FAMILIES[family].errors(system, backend, fits[family])
        if split is not None:
            errs = errs[errs["split"].astype(str).str.replace("-", "_") == split]
        measured = errs["seconds"] if "seconds" in errs else None
        predicted = errs.get("predicted_s", errs.get("predicted"))
        if measured is None or predicted is None:  # attention: the signed error of predicted / measured - 1
            ratio = 1.0 / (1.0 + errs["signed_error"])
        else:
            ratio = measured / predicted
        if family == "gemm":
            phase = np.select([errs["m"] >= 256, errs["m"] <= 64], ["prefill", "decode"], "")
        elif family == "moe":
            phase = np.select([errs["num_tokens"] >= 256, errs["num_tokens"] <= 64], ["prefill", "decode"], "")
        else:
            phase = np.full(len(errs), "prefill" if family.startswith("context") else "decode")
        frames.append(pd.DataFrame({"ratio": np.asarray(ratio, float), "phase": phase}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["ratio", "phase"])
    return out[(out["phase"] != "") & np.isfinite(out["ratio"])]


def _band(ratios: pd.DataFrame) -> dict[str, float]:
    band = {}
    for figure, phase in (("ttft", "prefill"), ("tpot", "decode")):
        low, high = np.quantile(ratios.loc[ratios["phase"] == phase, "ratio"], QUANTILES)
        band[f"{figure}_p10"], band[f"{figure}_p90"] = float(low), float(high)
    return band


@lru_cache(maxsize=4)
def static_bands(backend: str) -> dict[str, dict[str, float]]:
    """``fitted_static`` and ``sourced_static`` for a kernel backend (``trtllm``, ``vllm``)."""
    fitted = []
    for system, names in tables.SYSTEMS.items():
        spec = catalog.hardware_spec(names[0])
        if spec.kernels is not None and backend in spec.kernels.fits:
            fitted.append(_ratios(system, backend, spec.kernels.fits[backend]))
    template = catalog.hardware_spec(tables.SYSTEMS[TEMPLATE][0]).kernels.fits
    sourced = []
    for system, tflops in STAND_INS.items():
        spec = catalog.hardware_spec(tables.SYSTEMS[system][0])
        figures = {"template": TEMPLATE, "sources": "", "hbm": PRIOR_HBM,
                   "plateau": {"bf16": tflops * 1e12 / spec.peak_flops_per_s["bf16"]}}
        block = transferred(figures, template)
        if backend in block:
            sourced.append(_ratios(system, backend, block[backend], split=None))
    return {"fitted_static": _band(pd.concat(fitted)), "sourced_static": _band(pd.concat(sourced))}


def bands(continuous: dict[str, float], backend: str) -> dict[str, dict[str, float]]:
    """A profile's four bands from its fitted continuous band and its kernel backend."""
    static = static_bands(backend)
    fitted, sourced = static["fitted_static"], static["sourced_static"]
    # a chip without tables is never known better than one with them: its band only widens
    wider = {k: (min if k.endswith("p10") else max)(fitted[k], sourced[k]) for k in fitted}
    widened = {k: continuous[k] * wider[k] / fitted[k] for k in continuous}
    return {"fitted_continuous": dict(continuous), "fitted_static": fitted,
            "sourced_continuous": widened, "sourced_static": wider}
