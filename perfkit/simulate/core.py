"""``perfkit.simulate(request, n_requests=..., seed=...)``: Poisson arrivals served by one replica, request by
request, with every engine step priced by the engine (:func:`perfkit.engine.system.continuous_prices`)."""
from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from .. import catalog
from ..engine.system import continuous_prices
from ..errors import PerfkitError
from ..inputs import system_config, to_arrays
from . import events

#: Bounds on one simulation: requests, and engine steps with prompt work (about requests x prompt chunks).
LIMITS = {"n_requests": 200_000, "prompt_steps": 5_000_000}


def simulate(request: dict, n_requests: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Simulate ``n_requests`` Poisson arrivals at the request's ``arrival_rate_qps`` (divided by
    ``replicas``: one replica is simulated) under continuous batching; one row per request.

    Columns: ``arrival_s``, ``input_seq``, ``output_seq``, ``ttft_ms``, ``tpot_ms`` (time between the first and
    the last token over ``output_seq - 1``), ``e2e_ms`` and ``slot_ms`` (time holding a KV slot). Lengths
    are fixed, or gamma-distributed with the request's ``input_seq_cv`` / ``output_seq_cv``. ``df.attrs``
    holds the per-replica ``rate_qps``, ``achieved_requests_s``, the time-averaged
    ``mean_running_sequences``, ``running_cap`` and the simulated ``duration_s``. Use
    :func:`summary` for the percentiles the analytic ``load`` object reports.

    >>> import perfkit
    >>> df = perfkit.simulate({"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    ...     "hardware_config": "nvidia_h100_hgx", "batch_size": 64, "input_seq": 512, "output_seq": 64,
    ...     "serving_mode": "continuous", "arrival_rate_qps": 20.0}, n_requests=200, seed=1)
    >>> len(df), bool((df["ttft_ms"] > 0).all())
    (200, True)
    """
    n_requests = _count(n_requests, "n_requests", LIMITS["n_requests"], low=10)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise PerfkitError(f"seed must be a non-negative integer, got {seed!r}", field="seed")
    flat = system_config(request)
    if "arrival_rate_qps" not in flat:
        raise PerfkitError("simulate needs arrival_rate_qps (and serving_mode 'continuous') in the request",
                           field="arrival_rate_qps")
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    profile = catalog.serving_profile(flat["serving_engine"])
    cfg = to_arrays(flat)
    prices = continuous_prices(model, hw, profile, cfg)
    chunk = max(1, int(prices.chunk_tokens))
    steps = n_requests * -(-flat["input_seq"] // chunk)
    if steps > LIMITS["prompt_steps"]:
        raise PerfkitError(f"n_requests={n_requests} with input_seq={flat['input_seq']} needs about {steps} "
                           f"prompt steps, more than the limit of {LIMITS['prompt_steps']}; use fewer requests",
                           field="n_requests")
    rng = np.random.default_rng(seed)
    rate = flat["arrival_rate_qps"] / flat.get("replicas", 1)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n_requests))
    isl = _lengths(rng, flat["input_seq"], flat["input_seq_cv"], n_requests)
    osl = _lengths(rng, flat["output_seq"], flat["output_seq_cv"], n_requests)
    slots = int(prices.running_cap)
    table = prices.decode(np.arange(1, slots + 1, dtype=float))
    decode = np.concatenate([table[:1], table])  # a step with prompt work only still reads every weight
    out = events.run(arrivals, isl, osl, decode.tolist(), float(prices.prompt_token_s), chunk, slots,
                     float(prices.request_overhead_s))
    tpot = np.where(osl > 1, (out["last"] - out["first"]) / np.maximum(osl - 1, 1), 0.0)
    df = pd.DataFrame({"arrival_s": arrivals, "input_seq": isl, "output_seq": osl, "ttft_ms": out["ttft"] * 1e3,
                       "tpot_ms": tpot * 1e3, "e2e_ms": out["e2e"] * 1e3,
                       "slot_ms": (out["last"] - out["admitted"]) * 1e3})
    duration = out["end"] - arrivals[0]
    df.attrs.update({"rate_qps": float(rate), "achieved_requests_s": float(n_requests / duration),
                     "mean_running_sequences": float(out["slot_seconds"] / duration), "running_cap": slots,
                     "duration_s": float(duration)})
    return df


def summary(df: pd.DataFrame, warmup: float = 0.1) -> dict:
    """Means and p50/p90/p99 of TTFT, TPOT (and e2e p99) over the requests after the first ``warmup`` share,
    under the names of the analytic ``load`` object.

    >>> summary(pd.DataFrame({"ttft_ms": [1.0] * 10, "tpot_ms": [2.0] * 10, "e2e_ms": [3.0] * 10}), 0.0)["tpot_ms_p99"]
    2.0
    """
    rows = df.iloc[int(len(df) * warmup):]
    out = {}
    for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        out[f"{name}_mean"] = float(rows[name].mean())
        for p in (50, 90, 99):
            out[f"{name}_p{p}"] = float(np.percentile(rows[name], p))
    return out


def _lengths(rng, mean: int, cv: float, n: int) -> np.ndarray:
    if cv == 0:
        return np.full(n, mean, dtype=np.int64)
    shape = 1.0 / (cv * cv)
    return np.maximum(1, np.rint(rng.gamma(shape, mean / shape, n))).astype(np.int64)


def _count(value, field: str, limit: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= limit:
        raise PerfkitError(f"{field} must be an integer from {low} to {limit}, got {value!r}", field=field)
    return int(value)
