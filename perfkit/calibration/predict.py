"""Engine predictions for measured points: ``predicted_ttft_ms``, ``predicted_tpot_ms`` and ``valid`` per row.

``side_flat`` reads the prefill or decode layout of measured rows as the flat configuration of the API
(request paths to arrays, dtypes by name); ``side_config`` encodes it for the engine exactly as a request is
encoded (:func:`perfkit.inputs.to_arrays`), and ``requests`` nests it into the system-metrics request of each
row, so ``perfkit.system_metrics(requests(rows)[i])`` answers what ``predict`` says for an agg row: one
reading of the measurements, two doors. ``predict`` calls the engine once per (model, hardware, engine, mode)
group (see its docstring for what agg and disagg rows mean).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import catalog
from ..dtypes import DTYPES, INDEX
from ..engine import layout
from ..engine.system import CONTINUOUS, SERVING_MODES, evaluate
from ..inputs import to_arrays


def side_config(frame: pd.DataFrame, side: str, model, batch: np.ndarray) -> dict:
    """Engine arrays for the prefill or decode layout of measured rows (:func:`side_flat`, encoded as the API
    encodes a request)."""
    return to_arrays(side_flat(frame, side, model, batch))


def side_flat(frame: pd.DataFrame, side: str, model, batch: np.ndarray) -> dict:
    """The flat configuration (request paths to arrays over the rows, dtypes by name) of the prefill or
    decode layout of measured rows."""
    gpus = frame[f"{side}_gpus"].to_numpy(float)
    dp = frame[f"{side}_attn_dp"].to_numpy(float)
    attn_tp = np.maximum(gpus / dp, 1)
    if model.is_moe:
        ffn_tp = frame[f"{side}_moe_tp"].to_numpy(float)
        ep = frame[f"{side}_moe_ep"].to_numpy(float)
    else:
        ffn_tp, ep = attn_tp, np.ones_like(gpus)
    sp = np.maximum(gpus / (ffn_tp * ep), 1)
    gemm = frame["gemm_dtype"].map(INDEX).to_numpy()
    moe = frame["moe_dtype"].map(INDEX).to_numpy()
    ffn_dtype = moe if model.is_moe else gemm
    # Checkpoints quantized only in their experts keep 16-bit or fp8 attention (DeepSeek-FP4 keeps fp8).
    attn_dtype = np.where(gemm == INDEX["fp4"], INDEX["fp8"], gemm) if model.is_moe else gemm
    # KV-cache format: the quantized (fp8/fp4) points cache K/V in fp8 on every engine. The data says so:
    # Llama-3.1-70B fp8 on one H200 under vLLM serves 32 requests of 1024 + 8192 tokens without queueing
    # (474 ms TTFT), which the ~62 GB left beside the weights holds only at 1.5 GB per sequence (fp8), not at
    # 3.0 GB (16-bit); and the fit's cost drops from 184 to 177 with this reading.
    quantized = np.isin(gemm, [INDEX["fp8"], INDEX["fp8_block"], INDEX["fp4"]])
    kv = np.where(quantized, INDEX["fp8"], INDEX["bf16"])
    ones = np.ones_like(gpus, dtype=np.int64)
    i = lambda x: np.asarray(np.rint(x), dtype=np.int64)  # noqa: E731
    name = np.asarray(DTYPES)
    bf16 = np.full(len(gemm), "bf16")
    cfg = {
        "batch_size": i(batch),
        "input_seq": frame["input_seq"].to_numpy(np.int64),
        "output_seq": frame["output_seq"].to_numpy(np.int64),
        "pipeline_parallel": i(frame[f"{side}_pp"].to_numpy(float)),
        "kv_dtype": name[kv],
        "layers.attention.tensor_parallel": i(attn_tp),
        "layers.attention.context_parallel": ones,
        "layers.attention.sequence_parallel": ones,
        "layers.attention.expert_parallel": ones,
        "layers.attention.data_parallel": i(dp),
        "layers.attention.dtype": name[attn_dtype],
        "layers.feedforward.tensor_parallel": i(ffn_tp),
        "layers.feedforward.context_parallel": ones,
        "layers.feedforward.sequence_parallel": i(sp),
        "layers.feedforward.expert_parallel": i(ep),
        "layers.feedforward.data_parallel": ones,
        "layers.feedforward.dtype": name[ffn_dtype],
        "layers.embedding.tensor_parallel": i(attn_tp),
        "layers.embedding.dtype": bf16,
        "layers.norm.dtype": bf16,
    }
    for t in ("norm", "embedding"):
        for d in layout.DEGREES:
            cfg.setdefault(f"layers.{t}.{d}", ones)
    return cfg


def profile_name(backend: str) -> str:
    """The serving-engine profile a measured backend is predicted with (``generic`` when none is fitted)."""
    return backend if backend in catalog.list_serving_engines() else "generic"


def requests(measured: pd.DataFrame) -> list[dict]:
    """The system-metrics request of each agg row of ``measured``: the decode layout of :func:`side_flat`
    (which an agg row shares with its prefills) in continuous batching at the measured concurrency, with the
    row's serving engine. ``perfkit.system_metrics`` of it gives :func:`predict`'s figures for that row.

    >>> from perfkit.calibration import measurements
    >>> rows = measurements.load().query("mode == 'agg'").head(1)
    >>> body = requests(rows)[0]
    >>> body["serving_mode"], sorted(body["layers"])
    ('continuous', ['attention', 'embedding', 'feedforward', 'norm'])
    """
    bad = measured.loc[measured["mode"] != "agg", "mode"]
    if len(bad):
        raise ValueError(f"row {bad.index[0]!r} is a {bad.iloc[0]!r} point: only agg rows are one request")
    out = []
    for (model_id, hw_name, backend), rows in measured.groupby(["model_id", "hardware_config", "backend"],
                                                               sort=False):
        model = catalog.model_spec(model_id)
        flat = side_flat(rows, "decode", model, rows["decode_batch"].to_numpy(float))
        for j, label in enumerate(rows.index):
            body = {"model_id": model_id, "hardware_config": hw_name, "serving_mode": SERVING_MODES[CONTINUOUS],
                    "serving_engine": profile_name(backend), "layers": {}}
            for path, values in flat.items():
                value = values[j].item()
                if path.startswith("layers."):
                    _, layer_type, setting = path.split(".")
                    body["layers"].setdefault(layer_type, {})[setting] = value
                else:
                    body[path] = value
            out.append((label, body))
    order = {label: k for k, label in enumerate(measured.index)}
    return [body for _, body in sorted(out, key=lambda item: order[item[0]])]


def predict(measured: pd.DataFrame, hardware: dict | None = None, profiles: dict | None = None,
            transfers: dict | None = None) -> pd.DataFrame:
    """Predicted ``ttft_ms`` and ``tpot_ms`` for measured rows (columns ``predicted_ttft_ms``,
    ``predicted_tpot_ms`` and ``valid``), one engine call per (model, hardware, backend) group and side.

    ``agg`` rows are the engine's continuous mode at the measured concurrency. ``disagg`` rows are the
    disaggregated request of :func:`perfkit.calibration.disagg.requests` (its prefill and decode pools, the
    concurrency in flight), predicted by :func:`perfkit.engine.disagg.evaluate_disaggregated`.
    ``hardware``, ``profiles`` and ``transfers`` (disaggregated-serving profiles) override catalog entries by
    name (the fit evaluates candidates this way).
    """
    out = pd.DataFrame(index=measured.index, columns=["predicted_ttft_ms", "predicted_tpot_ms"], dtype=float)
    out["valid"] = False
    for (model_id, hw_name, backend, mode), rows in measured.groupby(
            ["model_id", "hardware_config", "backend", "mode"]):
        model = catalog.model_spec(model_id)
        hw = (hardware or {}).get(hw_name) or catalog.hardware_spec(hw_name)
        profile = (profiles or {}).get(backend) or catalog.serving_profile(profile_name(backend))
        if mode == "agg":
            cfg = side_config(rows, "decode", model, rows["decode_batch"].to_numpy(float))
            cfg["serving_mode"] = np.int64(CONTINUOUS)  # as to_arrays encodes serving_mode "continuous"
            fig = evaluate(model, hw, cfg, profile)
            ttft, tpot, code = fig["ttft_ms"], fig["tpot_ms"], fig["code"]
        else:  # two pools: the request of perfkit.calibration.disagg (its docstring maps the columns)
            from .disagg import predict_rows

            transfer = (transfers or {}).get(profile_name(backend)) or catalog.transfer_profile(profile_name(backend))
            fig = predict_rows(rows, model, hw, profile, transfer)
            ttft, tpot, code = fig["ttft_ms"], fig["tpot_ms"], fig["code"]
        out.loc[rows.index, "predicted_ttft_ms"] = ttft
        out.loc[rows.index, "predicted_tpot_ms"] = tpot
        current = ~rows["superseded"].to_numpy(bool) if "superseded" in rows else True
        out.loc[rows.index, "valid"] = (((code & layout.STRUCTURAL) == 0) & rows["layout_defined"].to_numpy(bool)
                                        & current)
    return out
