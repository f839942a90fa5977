"""Measured disaggregated points (``mode=disagg``) as disaggregated requests, and the fit of what
disaggregation adds (:class:`perfkit.engine.disagg.TransferProfile`) with the aggregated profile frozen.

How a row's columns map to the request (README, "Disaggregated serving"; ``benchmarks/ACCURACY.md``):

- ``disaggregated.prefill``: the prefill worker's layout (``prefill_tp_size``, ``prefill_attention_dp_size``,
  ``prefill_moe_tp_size``, ``prefill_moe_ep_size``, ``prefill_pp_size``, read by
  :func:`perfkit.calibration.predict.side_flat` exactly as agg rows are), ``replicas`` =
  ``prefill_num_workers``, ``batch_size`` = ``prefill_batch_size`` x attention DP x workers (the prompts one
  prefill pass of every worker takes);
- ``disaggregated.decode``: the decode worker's layout likewise, ``replicas`` = ``decode_num_workers``,
  ``batch_size`` = the benchmark's concurrency (the requests in flight: ``decode_batch_size`` is the engine's
  limit, often 1, not its load);
- ``input_seq`` / ``output_seq`` = ``isl`` / ``osl``, dtypes and KV format as for agg rows, the row's serving
  engine.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from .. import catalog
from ..engine import layout
from ..engine.disagg import evaluate_disaggregated
from ..specs import TransferProfile
from ..inputs import to_arrays
from .predict import profile_name, side_flat

log = logging.getLogger(__name__)

#: The fitted fields of a :class:`TransferProfile`, with their bounds.
# the per-request hand-off set-up (connector handshake, block lookup) takes milliseconds, not the seconds a
# closed-loop harness adds to TTFT: bounded so, it cannot stand in for the prefill queue
FITTED = {"kv_transfer_overhead_s": (0.0, 0.01), "kv_transfer_efficiency": (0.02, 1.0),
          "prefill_queue_scale": (0.0, 20.0), "prefill_pass_scale": (0.05, 20.0), "decode_step_scale": (0.05, 20.0)}
START = {"kv_transfer_overhead_s": 0.01, "kv_transfer_efficiency": 0.5, "prefill_queue_scale": 1.0,
         "prefill_pass_scale": 1.0, "decode_step_scale": 1.0}
#: Prompt tokens a prefill worker packs into one pass when requests queue: not fitted (a step function of it
#: has no gradient) but the engines' documented default token budget, 8192 (TensorRT-LLM ``max_num_tokens``,
#: SGLang ``--chunked-prefill-size``, vLLM ``max_num_batched_tokens`` for its chunked prefill).
PREFILL_MAX_TOKENS = 8192.0


def pool_flats(rows: pd.DataFrame, model) -> tuple[dict, dict]:
    """The flat configurations (arrays over the rows) of the prefill and decode pools of disagg rows."""
    pre_workers = rows["prefill_workers"].to_numpy(float)
    dec_workers = rows["decode_workers"].to_numpy(float)
    pre = side_flat(rows, "prefill", model, rows["prefill_batch"].to_numpy(float) * pre_workers)
    # rows without a recorded concurrency: the decode workers' batches
    in_flight = rows["concurrency"].fillna(rows["decode_batch"] * rows["decode_workers"]).to_numpy(float)
    dec = side_flat(rows, "decode", model, np.maximum(in_flight, 1.0))
    pre["replicas"] = np.asarray(np.rint(pre_workers), dtype=np.int64)
    dec["replicas"] = np.asarray(np.rint(dec_workers), dtype=np.int64)
    dec["kv_dtype"] = pre["kv_dtype"]
    return pre, dec


def requests(measured: pd.DataFrame) -> list[dict]:
    """The disaggregated system-metrics request of each disagg row (in the rows' order): ``perfkit.system_metrics``
    of it answers what :func:`predict` says for the row."""
    out = {}
    for (model_id, hw_name, backend), rows in measured.groupby(["model_id", "hardware_config", "backend"], sort=False):
        pre, dec = pool_flats(rows, catalog.model_spec(model_id))
        for j, label in enumerate(rows.index):
            pools = {}
            for name, flat in (("prefill", pre), ("decode", dec)):
                pool = {"layers": {}}
                for path, values in flat.items():
                    value = values[j].item()
                    if path.startswith("layers."):
                        _, layer_type, setting = path.split(".")
                        pool["layers"].setdefault(layer_type, {})[setting] = value
                    elif path in ("batch_size", "replicas", "pipeline_parallel"):
                        pool[path] = value
                pools[name] = pool
            out[label] = {"model_id": model_id, "hardware_config": hw_name, "input_seq": pre["input_seq"][j].item(),
                          "output_seq": pre["output_seq"][j].item(), "kv_dtype": pre["kv_dtype"][j].item(),
                          "serving_engine": profile_name(backend), "disaggregated": pools}
    return [out[label] for label in measured.index]


def predict_rows(rows: pd.DataFrame, model, hw, profile, transfer: TransferProfile) -> dict:
    """The engine's figures (``evaluate_disaggregated``) for disagg rows of one (model, hardware, engine)."""
    pre, dec = pool_flats(rows, model)
    return evaluate_disaggregated(model, hw, to_arrays(pre), to_arrays(dec), profile, transfer)


def _groups(measured: pd.DataFrame):
    for (model_id, hw_name, backend), rows in measured.groupby(["model_id", "hardware_config", "backend"]):
        yield model_id, hw_name, backend, rows


def fit_transfer(train: pd.DataFrame, hardware: dict | None = None, profiles: dict | None = None,
                 max_nfev: int = 60) -> dict[str, TransferProfile]:
    """One :class:`TransferProfile` per serving engine with disagg training rows, fitted by least squares on
    the log TTFT and TPOT ratios with the hardware and serving profiles frozen (the agg
    fit's, or the catalog's). Engines with fewer than 10 rows get the fit over all engines."""
    disagg = train[(train["mode"] == "disagg") & train["layout_defined"].astype(bool)
                   & train["pools_recorded"].astype(bool)]
    disagg = disagg[np.isfinite(disagg["measured_ttft_ms"]) & (disagg["measured_ttft_ms"] > 0)]
    if disagg.empty:
        return {}
    specs = []
    for model_id, hw_name, backend, rows in _groups(disagg):
        model = catalog.model_spec(model_id)
        hw = (hardware or {}).get(hw_name) or catalog.hardware_spec(hw_name)
        profile = (profiles or {}).get(backend) or catalog.serving_profile(profile_name(backend))
        specs.append((profile_name(backend), model, hw, profile, rows))
    engines = sorted({s[0] for s in specs})

    def solve(selected, name):
        def residuals(x):
            transfer = TransferProfile(name, **dict(zip(FITTED, x)), prefill_max_tokens=PREFILL_MAX_TOKENS, source="")
            out = []
            for _, model, hw, profile, rows in selected:
                fig = predict_rows(rows, model, hw, profile, transfer)
                ok = (fig["code"] & layout.STRUCTURAL) == 0
                for k in ("ttft", "tpot"):
                    r = np.log(fig[f"{k}_ms"] / rows[f"measured_{k}_ms"].to_numpy(float))
                    out.append(np.where(ok & np.isfinite(r), r, 0.0))
            return np.concatenate(out)

        lo, hi = zip(*FITTED.values())
        fit = least_squares(residuals, list(START.values()), bounds=(lo, hi), loss="cauchy", f_scale=0.25,
                            max_nfev=max_nfev, x_scale=[0.05, 0.2, 1.0, 1.0, 1.0])
        n = sum(len(s[4]) for s in selected)
        log.info("disagg %s: %d rows, %s", name, n, dict(zip(FITTED, np.round(fit.x, 5))))
        return dict(zip(FITTED, (float(v) for v in fit.x))), n

    pooled, total = solve(specs, "all")
    out = {}
    for engine in engines:
        selected = [s for s in specs if s[0] == engine]
        values, n = solve(selected, engine) if sum(len(s[4]) for s in selected) >= 10 else (pooled, total)
        out[engine] = TransferProfile(engine, source=f"fitted by `perfkit calibrate` on {n} disagg points",
                                      prefill_max_tokens=PREFILL_MAX_TOKENS, **values)
    out.setdefault("generic", TransferProfile("generic", source=f"fitted by `perfkit calibrate` on {total} disagg "
                                              "points of every engine", prefill_max_tokens=PREFILL_MAX_TOKENS,
                                              **pooled))
    return out


def profile_text(profile: TransferProfile) -> str:
    """The YAML text of a fitted profile (``serving/disagg/<engine>.yaml``)."""
    return (f"# Disaggregated-serving profile {profile.name!r}: what separate prefill and decode pools add "
            "(perfkit/engine/disagg.py).\n# Written by `perfkit calibrate`; see benchmarks/ACCURACY.md.\n"
            f"name: {profile.name}\n"
            f"kv_transfer_overhead_s: {profile.kv_transfer_overhead_s:.6g}     # per request: connector handshake, "
            "block tables, scheduling on both pools\n"
            f"kv_transfer_efficiency: {profile.kv_transfer_efficiency:.6g}     # share of the link's bandwidth a KV "
            "transfer reaches\n"
            f"prefill_queue_scale: {profile.prefill_queue_scale:.6g}        # share of the running prefill pass a "
            "request arriving at the pool waits for\n"
            f"prefill_pass_scale: {profile.prefill_pass_scale:.6g}         # a prefill worker's pass over the "
            "aggregated engine's\n"
            f"decode_step_scale: {profile.decode_step_scale:.6g}          # a decode worker's step over the "
            "aggregated engine's\n"
            f"prefill_max_tokens: {profile.prefill_max_tokens:.6g}         # prompt tokens one prefill pass packs "
            "when requests queue (the engines' default budget; not fitted)\n"
            f'source: "{profile.source}"\n')
