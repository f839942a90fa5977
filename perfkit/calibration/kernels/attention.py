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

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ...catalog import hardware_spec
from ...engine.kernels import attention as model
from ..measurements import shared_data

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
    "launch_s": 1e-5, "plateau": 0.5, "half_rows": 2e4, "query_pad": 32.0, "key_pad": 32.0, "pair_flops": 100.0, "hbm": 0.7,
    "sequence_s": 1e-7, "half_bytes": 2e6, "half_streams": 2.0, "context_pad": 64.0, "compute": 0.3, "window_pad": 64.0,
    "head_s": 1e-9, "fallback_compute": 0.01, "fallback_head_s": 1e-9,
}


#: Table system -> catalog hardware entry whose peaks the fit divides by (the shared tables.SYSTEMS).
SYSTEMS = {"h100_sxm": "nvidia_h100_hgx", "h200_sxm": "nvidia_h200_hgx", "b200_sxm": "nvidia_b200_hgx",
           "b300_sxm": "nvidia_b300_hgx", "gb200": "nvidia_gb200_single", "gb300": "nvidia_gb300_nvl72",
           "a100_sxm": "nvidia_a100_hgx", "l40s": "nvidia_l40s_server"}
#: The held-out split (the shared split.py): sorted distinct head configurations, every 4th from the 2nd.
HELD_OUT_KEY = ("num_heads", "num_key_value_heads", "head_dim", "window_size")
EVERY, OFFSET = 4, 1


def _files(system: str, table: str, root=None) -> dict[str, Path]:
    folder = Path(root if root is not None else shared_data("kernels")) / system
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(folder.glob(f"{table}.*")) if folder.is_dir() else ():
        stem, ext = path.name.rsplit(".", 1)
        name, _, rest = stem.partition(".")
        backend, _, version = rest.partition("-")
        if name == table and ext in ("parquet", "csv"):
            key = (version, ext == "parquet")
            if backend not in found or key > found[backend][0]:
                found[backend] = (key, path)
    return {backend: path for backend, (_, path) in found.items()}


def load(system: str, table: str, backend: str, root=None) -> pd.DataFrame:
    """Rows of ``table`` for ``system`` / ``backend`` with ``seconds`` = ``latency`` (ms) / 1000."""
    path = _files(system, table, root).get(backend)
    if path is None:
        raise FileNotFoundError(f"no {table} table for system {system!r} and backend {backend!r}")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame.assign(seconds=pd.to_numeric(frame["latency"], errors="coerce") / 1e3)


def source(system: str, table: str, backend: str, root=None) -> str:
    """``<table>.<backend>-<version>`` of the file :func:`load` reads."""
    path = _files(system, table, root).get(backend)
    return "" if path is None else path.name.rsplit(".", 1)[0]


def held_out(frame: pd.DataFrame) -> np.ndarray:
    """Rows of the held-out head configurations (the key columns present in ``frame``)."""
    columns = [c for c in HELD_OUT_KEY if c in frame]
    keys = frame[columns].astype(float)
    distinct = keys.drop_duplicates().sort_values(columns).reset_index(drop=True)
    chosen = distinct.iloc[OFFSET::EVERY]
    return keys.merge(chosen.assign(_held=True), on=columns, how="left")["_held"].fillna(False).to_numpy(bool)


@cache
def _chip(system: str) -> tuple[dict, float]:
    spec = hardware_spec(SYSTEMS[system])
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


def _seconds(family: str, params: dict, frame: pd.DataFrame, system: str, variant: str) -> np.ndarray:
    """The closed form's seconds for the rows of ``frame`` (one variant)."""
    _, hbm = _chip(system)
    col = {c: frame[c].to_numpy(float) for c in ("batch_size", "isl", "num_heads") if c in frame}
    kv_bytes = 1.0 if variant == "fp8" else 2.0
    if family == "context_attention":
        io = 1.0 if variant == "fp8" else 2.0
        return model.context_attention_seconds(
            params, col["batch_size"], col["isl"], col["num_heads"], frame["num_key_value_heads"].to_numpy(float),
            frame["head_dim"].to_numpy(float), frame["window_size"].to_numpy(float),
            _peak(system, "fp8" if variant == "fp8" else "bf16"), hbm, io)
    context = col["isl"] + frame["step"].to_numpy(float) if family.startswith("generation") else None
    if family == "generation_attention":
        return model.generation_attention_seconds(
            params, col["batch_size"], context, col["num_heads"], frame["num_key_value_heads"].to_numpy(float),
            frame["head_dim"].to_numpy(float), frame["window_size"].to_numpy(float), kv_bytes,
            _peak(system, "bf16"), hbm)
    if family == "context_mla":
        return model.context_mla_seconds(params, col["batch_size"], col["isl"], col["num_heads"],
                                         MLA["qk_head_dim"], MLA["v_head_dim"], _peak(system, "bf16"), hbm)
    return model.generation_mla_seconds(params, col["batch_size"], context, col["num_heads"], MLA["kv_lora_rank"],
                                        MLA["qk_rope_head_dim"], kv_bytes, _peak(system, "bf16"), hbm)


#: Group sizes tried for ``max_group`` (a kernel-selection threshold, chosen by the best fit, not by gradient).
GROUPS = (32.0, 1024.0)
_UNUSED = {"context_mla": ("window_pad", "max_group", "fallback_compute", "fallback_head_s"),
           "generation_mla": ("window_pad", "max_group", "fallback_compute", "fallback_head_s")}


def _names(family: str) -> list[str]:
    names = model.PREFILL_PARAMS if family.startswith("context") else model.DECODE_PARAMS
    return [n for n in names if n != "max_group" and n not in _UNUSED.get(family, ())]


def fit_rows(family: str, frame: pd.DataFrame, system: str, variant: str) -> dict[str, float]:
    """Least-squares parameters of ``family``'s curve for the rows of one variant (robust loss on log
    ratios, within the module's bounds); a decode curve's ``max_group`` is the best of :data:`GROUPS`."""
    if family != "generation_attention":
        return _fit_rows(family, frame, system, variant, {})
    group = (frame["num_heads"] / frame["num_key_value_heads"]).to_numpy()
    tried = [g for g in GROUPS if g < group.max()] + [GROUPS[-1]]
    fits = [_fit_rows(family, frame, system, variant, {"max_group": g}) for g in tried]
    best = min(fits, key=lambda f: f["_cost"])
    return {n: v for n, v in best.items() if n != "_cost"}


def _fit_rows(family, frame, system, variant, fixed) -> dict[str, float]:
    names = _names(family)
    bounds = model.PARAMS
    low = np.array([bounds[n][0] for n in names])
    high = np.array([bounds[n][1] for n in names])
    measured = frame["seconds"].to_numpy(float)

    def params_of(x):  # x in [0, 1]; the fourth power spreads the decades a parameter may span
        free = dict(zip(names, low + (high - low) * x ** 4))
        return {**free, **fixed, **{n: model.PARAMS[n][0] for n in _UNUSED.get(family, ())}}

    def residual(x):
        return np.log(_seconds(family, params_of(x), frame, system, variant) / measured)

    start = np.array([_START[n] for n in names])
    x0 = np.clip(((start - low) / (high - low)) ** 0.25, 1e-6, 1.0)
    result = least_squares(residual, x0, bounds=(0.0, 1.0), loss="soft_l1", f_scale=0.05, x_scale="jac",
                           max_nfev=200)
    fitted = {n: float(f"{v:.5g}") for n, v in params_of(result.x).items()}
    return {**fitted, "_cost": float(result.cost)} if fixed else fitted


def table(system: str, family: str, backend: str, root=None) -> pd.DataFrame:
    """One family's table for ``system`` / ``backend`` with ``variant`` and ``held_out`` columns."""
    frame = load(system, TABLES[family], backend, root)
    frame = frame[np.isfinite(frame["seconds"]) & (frame["seconds"] > 0)].reset_index(drop=True)
    return frame.assign(variant=variants(family, frame), held_out=held_out(frame))


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
        out[family] = {v: fit_rows(family, rows, system, v) for v, rows in train.groupby("variant")}
    return out


def errors(system: str, backend: str, fitted: dict, root=None) -> pd.DataFrame:
    """Per row: family, variant, split and ``error`` = predicted / measured - 1 of the ``fitted`` params."""
    frames = []
    for family, by_variant in fitted.items():
        frame = table(system, family, backend, root)
        for variant, rows in frame.groupby("variant"):
            if variant not in by_variant:
                continue
            predicted = _seconds(family, by_variant[variant], rows, system, variant)
            frames.append(rows.assign(family=family, predicted=predicted,
                                      error=predicted / rows["seconds"].to_numpy() - 1.0,
                                      split=np.where(rows["held_out"], "held-out", "train")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary(errs: pd.DataFrame) -> pd.DataFrame:
    """Median and p90 of |error| per family, variant and split."""
    return (errs.assign(abs_error=errs["error"].abs())
            .groupby(["family", "variant", "split"])["abs_error"]
            .agg(rows="size", median="median", p90=lambda e: e.quantile(0.9)).reset_index())


def provenance(system: str, backend: str, root=None) -> list[str]:
    """The tables (``<table>.<backend>-<version>``) the attention families of ``system`` were fitted to."""
    return [s for s in (source(system, t, backend, root) for t in TABLES.values()) if s]
