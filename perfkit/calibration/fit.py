"""Fitting hardware efficiencies and serving-engine profiles to measured TTFT/TPOT.

The fit minimizes the robust (soft-L1) sum of squared log-ratios ``log(predicted / measured)`` of TTFT and
TPOT over the training rows with ``scipy.optimize.least_squares``, within physical bounds. Hardware
parameters are fitted only for systems with training rows; the others keep their priors.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterable

import numpy as np
import pandas as pd

from .. import catalog
from ..specs import ServingProfile
from . import bands
from .predict import predict

log = logging.getLogger(__name__)

#: Fitted hardware efficiency fields and their bounds: none since the kernel models (``kernels:`` of the
#: hardware files, fitted to measured kernel tables by ``perfkit calibrate --kernels``) price every layer;
#: the serving fit keeps them frozen and fits only what kernels cannot see (the profiles below).
HARDWARE_BOUNDS: dict[str, tuple[float, float]] = {}
#: Fitted serving-profile fields and their bounds.
PROFILE_BOUNDS = {
    "step_overhead_s": (0.0, 0.05),
    "sequence_overhead_s": (0.0, 5e-4),
    # host time per launch of an eager prefill's kernels: a CUDA launch (~2-4 us) and the framework's
    # dispatch of the op, at most ~12 us; bounded so, it cannot stand in for closed-loop TTFT overheads
    "launch_s": (2e-6, 1.2e-5),
    "kernel_gap_s": (0.0, 5e-6),  # GPU idle between kernels (a graph replay's gaps are ~1 us)
    "graph_fixed_share": (0.0, 1.0),
    "prefill_interference": (0.0, 4.0),
    "ramp": (0.0, 1.0),
    "prefill_chunk_tokens": (256.0, 65536.0),
    "request_overhead_s": (0.0, 0.5),
}
ENGINES = ("trtllm", "vllm", "sglang")


@dataclasses.dataclass
class FitResult:
    hardware: dict  # name -> HardwareSpec with fitted efficiency
    profiles: dict  # engine -> ServingProfile with fitted parameters and residual bands
    train_rows: int
    cost: float


def architectures(names: Iterable[str]) -> dict[str, list[str]]:
    """Architecture -> every catalog system of that architecture, for the architectures of ``names``."""
    wanted = {catalog.hardware_spec(n).architecture for n in names}
    out: dict[str, list[str]] = {}
    for name in catalog.list_hardware():
        arch = catalog.hardware_spec(name).architecture
        if arch in wanted:
            out.setdefault(arch, []).append(name)
    return dict(sorted(out.items()))


def _unpack(x, archs, engines):
    """Parameter vector -> hardware specs (every system of a fitted architecture) and profiles."""
    hardware, profiles = {}, {}
    i = 0
    for arch, names in archs.items():
        values = dict(zip(HARDWARE_BOUNDS, x[i:i + len(HARDWARE_BOUNDS)]))
        i += len(HARDWARE_BOUNDS)
        for name in names:
            spec = catalog.hardware_spec(name)
            hardware[name] = dataclasses.replace(spec, efficiency=dataclasses.replace(spec.efficiency, **values))
    for engine in engines:
        values = dict(zip(PROFILE_BOUNDS, x[i:i + len(PROFILE_BOUNDS)]))
        i += len(PROFILE_BOUNDS)
        profiles[engine] = dataclasses.replace(catalog.serving_profile(engine), **values)
    return hardware, profiles


#: Where every fit starts (so that the shipped parameters reproduce whatever the files hold now).
PRIORS = {
    "step_overhead_s": 0.002,
    "sequence_overhead_s": 1e-5,
    "launch_s": 8e-6,
    "kernel_gap_s": 1e-6,
    "graph_fixed_share": 1.0,
    "prefill_interference": 1.0,
    "ramp": 0.05,
    "prefill_chunk_tokens": 2048.0,
    "request_overhead_s": 0.01,
}


def _start(archs, engines):
    bounds = [*[HARDWARE_BOUNDS] * len(archs), *[PROFILE_BOUNDS] * len(engines)]
    keys = [(k, b) for block in bounds for k, b in block.items()]
    x = np.array([PRIORS[k] for k, _ in keys], float)
    lo = np.array([b[0] for _, b in keys])
    hi = np.array([b[1] for _, b in keys])
    return x, lo, hi


def log_errors(measured: pd.DataFrame, predicted: pd.DataFrame) -> np.ndarray:
    """Stacked ``log(predicted / measured)`` of TTFT and TPOT (invalid rows give 0)."""
    ok = predicted["valid"].to_numpy(bool)
    out = []
    for k in ("ttft", "tpot"):
        ratio = predicted[f"predicted_{k}_ms"].to_numpy(float) / measured[f"measured_{k}_ms"].to_numpy(float)
        out.append(np.where(ok, np.log(np.where(ok, ratio, 1.0)), 0.0))
    return np.concatenate(out)


def fit(measured: pd.DataFrame, max_nfev: int = 60, engines: Iterable[str] = ENGINES) -> FitResult:
    """Fit the architectures and serving engines present in ``measured`` (agg rows).

    Chips of one architecture (H100 and H200; B200, B300, GB200 and GB300) share their fitted
    efficiencies: they run the same kernels, so a system without measurements inherits its siblings' fit."""
    from scipy.optimize import least_squares  # the fit needs scipy; predictions do not

    rows = measured[measured["mode"].eq("agg")]
    rows = rows[rows["backend"].isin(engines)]
    valid = predict(rows)["valid"].to_numpy(bool)
    rows = rows[valid]
    archs = architectures(rows["hardware_config"].unique()) if HARDWARE_BOUNDS else {}
    engine_names = sorted(rows["backend"].unique())
    x0, lo, hi = _start(archs, engine_names)
    scale = np.where(hi > 0, hi - lo, 1.0)

    def residuals(z):
        hardware, profiles = _unpack(lo + z * scale, archs, engine_names)
        return log_errors(rows, predict(rows, hardware, profiles))

    result = least_squares(residuals, (x0 - lo) / scale, bounds=(0.0, 1.0), loss="soft_l1", f_scale=0.3,
                           max_nfev=max_nfev, diff_step=1e-3)
    hardware, profiles = _unpack(lo + result.x * scale, archs, engine_names)
    errors = residuals(result.x).reshape(2, -1)
    engine_of = rows["backend"].to_numpy()
    for name, profile in profiles.items():
        # the engine's own training residuals (all engines' where it has few rows)
        own = engine_of == name if (engine_of == name).sum() >= 30 else np.ones(len(rows), bool)
        continuous = {}
        for i, k in enumerate(("ttft", "tpot")):
            ratio = np.exp(-errors[i][own])  # measured / predicted
            continuous[f"{k}_p10"], continuous[f"{k}_p90"] = (float(q) for q in np.quantile(ratio, [0.1, 0.9]))
        profiles[name] = dataclasses.replace(profile, band=bands.bands(continuous, profile.kernels))
    profiles["generic"] = generic_profile(profiles.values())
    log.info("fit: %d rows, cost %.3f, %d evaluations", len(rows), result.cost, result.nfev)
    return FitResult(hardware, profiles, len(rows), float(result.cost))


def generic_profile(profiles) -> ServingProfile:
    """The ``generic`` profile: the parameter-wise median of the fitted engines' profiles."""
    profiles = list(profiles)
    values = {k: float(np.median([getattr(p, k) for p in profiles])) for k in PROFILE_BOUNDS}
    band = {key: {k: float(np.median([p.band[key][k] for p in profiles])) for k in ServingProfile.BAND_KEYS}
            for key in ServingProfile.BANDS}
    return dataclasses.replace(catalog.serving_profile("generic"), band=band, **values)
