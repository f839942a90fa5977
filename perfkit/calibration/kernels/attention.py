"""Fit the attention closed forms of :mod:`perfkit.engine.kernels.attention` to measured kernel tables.

Four families, each fitted per (system, backend, variant) by ``scipy.optimize.least_squares`` on
``log(predicted / measured)`` with a robust (soft-L1) loss, inside the physical bounds the engine module
declares:

- ``context_attention`` (table ``context_attention_perf``), variants by :func:`context_variant`;
- ``generation_attention`` (``generation_attention_perf``), variants by KV-cache dtype; the context is
  ``isl + step`` cached tokens;
- ``context_mla`` / ``generation_mla`` (``context_mla_perf`` / ``generation_mla_perf``), DeepSeek-V3 MLA
  (qk 128 + 64 rope, v 128, kv_lora_rank 512), ``num_heads`` being the heads on one chip, variants by KV dtype.

Whole head configurations are held out (the shared split), so the reported held-out error is on
configurations the fit never saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ...engine.kernels import attention as model
from . import split, tables

#: family -> table it is fitted to.
TABLES = {
    "context_attention": "context_attention_perf",
    "generation_attention": "generation_attention_perf",
    "context_mla": "context_mla_perf",
    "generation_mla": "generation_mla_perf",
}
#: DeepSeek-V3 MLA widths the MLA tables were measured with (aiconfigurator's collector).
MLA = {"qk_head_dim": 192, "v_head_dim": 128, "kv_lora_rank": 512, "qk_rope_head_dim": 64}
_DTYPES = {"bfloat16": "bf16", "float16": "bf16", "fp8": "fp8", "float8": "fp8", "int8": "fp8"}
_START = {
    "launch_s": 1e-5, "plateau": 0.5, "half_rows": 2e4, "query_pad": 32.0, "key_pad": 32.0, "pair_flops": 100.0,
    "tile_s": 1e-7, "hbm": 0.7, "split_s": 3e-6, "split_tokens": 512.0, "sequence_s": 1e-7, "half_bytes": 2e6,
    "half_streams": 2.0, "context_pad": 64.0, "window_pad": 64.0, "compute": 0.3, "head_s": 1e-9,
    "fallback_launch_s": 1e-5, "fallback_compute": 0.01, "fallback_head_s": 1e-9,
}


@cache
def _chip(system: str) -> tuple[dict, float]:
    spec = tables.hardware(system)
    return dict(spec.peak_flops_per_s), float(spec.hbm_bytes_per_s)


def _peak(system: str, dtype: str) -> float:
    peaks, _ = _chip(system)
    return float(peaks.get(dtype) or peaks["bf16"])


def _dtype(column: pd.Series) -> np.ndarray:
    return column.map(lambda d: _DTYPES.get(str(d).lower(), str(d).lower())).to_numpy()


def variants(family: str, frame: pd.DataFrame) -> np.ndarray:
    """The variant each row of ``family``'s table belongs to."""
    kv = _dtype(frame["kv_cache_dtype"])
    if family == "context_attention":
        return np.array([model.context_variant(a, k) for a, k in zip(_dtype(frame["attn_dtype"]), kv)])
    return kv


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    names = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "head_dim", "window_size")
    # tables without a window_size column (A100 vLLM) measured full attention
    return {c: frame[c].to_numpy(float) if c in frame else np.zeros(len(frame)) for c in names}


def _seconds(family: str, params: dict, frame, system: str, variant: str) -> np.ndarray:
    """The closed form's seconds for the rows of ``frame`` (a DataFrame or its :func:`_columns`; one
    variant)."""
    _, hbm = _chip(system)
    col = _columns(frame) if isinstance(frame, pd.DataFrame) else frame
    kv_bytes = 1.0 if variant == "fp8" else 2.0
    # prefill over an fp8 cache runs the fp8 kernel (TensorRT-LLM quantizes Q): the fp8 peak
    peak = _peak(system, "fp8" if family == "context_attention" and variant in ("fp8", "fp8_kv") else "bf16")
    batch, heads = col["batch_size"], col["num_heads"]
    if family == "context_attention":
        return model.context_attention_seconds(
            params, batch, col["isl"], heads, col["num_key_value_heads"], col["head_dim"], col["window_size"],
            peak, hbm, 1.0 if variant == "fp8" else 2.0)
    if family == "context_mla":
        return model.context_mla_seconds(params, batch, col["isl"], heads, MLA["qk_head_dim"], MLA["v_head_dim"],
                                         peak, hbm)
    context = col["isl"] + col["step"]
    if family == "generation_attention":
        return model.generation_attention_seconds(
            params, batch, context, heads, col["num_key_value_heads"], col["head_dim"], col["window_size"],
            kv_bytes, peak, hbm)
    return model.generation_mla_seconds(params, batch, context, heads, MLA["kv_lora_rank"],
                                        MLA["qk_rope_head_dim"], kv_bytes, peak, hbm)


#: Group sizes tried for ``max_group`` (a kernel-selection threshold, chosen by the best fit, not by gradient).
GROUPS = (16.0, 32.0, 1024.0)
_UNUSED = {"generation_mla": ("window_pad", "max_group", "fallback_launch_s", "fallback_compute",
                              "fallback_head_s")}


def _names(family: str) -> list[str]:
    names = model.PREFILL_PARAMS if family.startswith("context") else model.DECODE_PARAMS
    return [n for n in names if n != "max_group" and n not in _UNUSED.get(family, ())]


#: Most training rows one least-squares fit uses (an even, deterministic thinning of larger tables).
MAX_ROWS = 4000


def fit_rows(family: str, frame: pd.DataFrame, system: str, variant: str, start: dict | None = None
             ) -> dict[str, float]:
    """Least-squares parameters of ``family``'s curve for the rows of one variant (robust loss on log
    ratios, within the module's bounds), from ``start`` (another variant's fit) or a default start; a
    decode curve's ``max_group`` is the best of :data:`GROUPS`."""
    frame = frame.iloc[::-(-len(frame) // MAX_ROWS)]
    cols, measured = _columns(frame), frame["seconds"].to_numpy(float)
    tried = [{}]
    if family == "generation_attention":
        group = cols["num_heads"] / cols["num_key_value_heads"]
        tried = [{"max_group": g} for g in GROUPS if g < group.max()] + [{"max_group": GROUPS[-1]}]
    starts = [{**_START, **start}] if start else [_START]
    fits = [_fit_rows(family, cols, measured, system, variant, fixed, x0) for fixed in tried for x0 in starts]
    best = min(fits, key=lambda f: f["_cost"])
    return {n: v for n, v in best.items() if n != "_cost"}


def _fit_rows(family, cols, measured, system, variant, fixed, start) -> dict[str, float]:
    names = _names(family)
    # solved in log space: parameters span decades; a zero lower bound is approached to 1e-7 of the upper
    high = np.log([model.PARAMS[n][1] for n in names])
    low = np.maximum(np.log(np.maximum([model.PARAMS[n][0] for n in names], 1e-300)), high + np.log(1e-7))

    def params_of(z):
        free = dict(zip(names, np.exp(z)))
        return {**free, **fixed, **{n: model.PARAMS[n][0] for n in _UNUSED.get(family, ())}}

    def residual(x):
        return np.log(_seconds(family, params_of(x), cols, system, variant) / measured)

    z0 = np.clip(np.log([max(start[n], 1e-300) for n in names]), low + 1e-3, high - 1e-3)
    result = least_squares(residual, z0, bounds=(low, high), loss="soft_l1", f_scale=0.05, max_nfev=200)
    fitted = {n: float(f"{v:.5g}") for n, v in params_of(result.x).items()}
    return {**fitted, "_cost": float(result.cost)}


def table(system: str, family: str, backend: str, root=None) -> pd.DataFrame:
    """One family's table for ``system`` / ``backend`` with ``variant`` and ``held_out`` columns."""
    frame = tables.load(system, TABLES[family], backend, root)
    frame = frame[np.isfinite(frame["seconds"]) & (frame["seconds"] > 0)].reset_index(drop=True)
    return frame.assign(variant=variants(family, frame), held_out=split.held_out(frame, "attention"))


def fit(system: str, backend: str, root=None, families=tuple(TABLES)) -> dict[str, dict[str, dict[str, float]]]:
    """family -> variant -> fitted params for ``system`` / ``backend``, on the training split only
    (families without a table for this backend are left out)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for family in families:
        try:
            frame = table(system, family, backend, root)
        except FileNotFoundError:
            continue
        train = frame[~frame["held_out"]]
        fitted: dict[str, dict[str, float]] = {}
        # bf16 first: the other variants start from its fit
        for variant in sorted(set(train["variant"]), key=lambda v: v != "bf16"):
            fitted[variant] = fit_rows(family, train[train["variant"] == variant], system, variant,
                                       fitted.get("bf16"))
        out[family] = fitted
    return out


def errors(system: str, backend: str, fitted: dict, root=None) -> pd.DataFrame:
    """Per row of every family of ``fitted`` (family -> variant -> params): family, variant, split,
    ``signed_error`` = predicted / measured - 1 and ``error`` = its absolute value."""
    frames = []
    for family, by_variant in fitted.items():
        frame = table(system, family, backend, root)
        for variant, rows in frame.groupby("variant"):
            if variant not in by_variant:
                continue
            predicted = _seconds(family, by_variant[variant], rows, system, variant)
            signed = predicted / rows["seconds"].to_numpy() - 1.0
            frames.append(rows.assign(family=family, predicted_s=predicted, signed_error=signed,
                                      error=np.abs(signed), split=split.label(rows["held_out"].to_numpy())))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary(errs: pd.DataFrame) -> pd.DataFrame:
    """Median and p90 of |error| per family, variant and split."""
    return (errs.groupby(["family", "variant", "split"])["error"]
            .agg(rows="size", median="median", p90=lambda e: e.quantile(0.9)).reset_index())


@dataclass(frozen=True)
class Family:
    """One attention family as :data:`perfkit.calibration.kernels.FAMILIES` registers it: its ``TABLE``,
    ``fit`` (variant -> params) and ``errors`` (one row per table row)."""

    name: str

    @property
    def TABLE(self) -> str:  # noqa: N802 (the attribute name the registry reads)
        return TABLES[self.name]

    def fit(self, system: str, backend: str, root=None) -> dict[str, dict[str, float]]:
        return fit(system, backend, root, (self.name,)).get(self.name, {})

    def errors(self, system: str, backend: str, fitted: dict, root=None) -> pd.DataFrame:
        return errors(system, backend, {self.name: fitted}, root)


#: family name -> its registry entry.
FAMILIES = {name: Family(name) for name in TABLES}
