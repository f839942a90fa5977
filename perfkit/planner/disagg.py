"""The disaggregated side of the planner: every split of a chip budget into a prefill and a decode pool (P:D),
each pool's layout and replicas, swept over Poisson rates with the disaggregated engine, filtered by the SLOs;
and the comparison of the best disaggregated with the best aggregated layout.

One engine call (:func:`perfkit.engine.disagg.evaluate_disaggregated`) per model prices every (split, layouts,
dtype, KV dtype, running cap, rate) at once: the configurations are broadcast arrays, like a sweep's chunk.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .. import catalog
from ..engine import layout
from ..engine.disagg import evaluate_disaggregated
from ..engine.layout import valid_tensor_parallel
from ..inputs import to_arrays

#: Columns of a disaggregated plan row (beyond the ``load_*`` figures).
LAYOUT = ("prefill_chips", "decode_chips", "prefill_tensor_parallel", "prefill_expert_parallel", "prefill_replicas",
          "decode_tensor_parallel", "decode_expert_parallel", "decode_replicas", "dtype", "kv_dtype",
          "max_running_sequences")


def _pool_layouts(model, chips: int):
    """(replica chips, tensor parallel, expert parallel) of one pool of ``chips`` chips: tensor parallelism over
    a replica, or, for mixture-of-experts models, expert parallelism with attention replicated (data parallel)."""
    tps = set(valid_tensor_parallel(model, "attention", chips)) & set(valid_tensor_parallel(model, "feedforward", chips))
    out = [(t, t, 1) for t in sorted(tps) if chips % t == 0]
    if model.is_moe:
        out += [(e, 1, e) for e in range(2, chips + 1) if chips % e == 0 and model.num_experts % e == 0]
    return out


def candidates(model, hw, chips: int, dtypes, kv_dtypes, running_caps) -> pd.DataFrame:
    """Every disaggregated layout of ``chips`` chips (one row each): a split ``P + D = chips``, each pool's
    (tensor, expert) degrees and replicas, one prompt per prefill replica's pass, the decode pool's running
    cap per replica, and the dtypes."""
    rows = []
    for p in range(1, chips):
        d = chips - p
        for (pc, pt, pe), (dc, dt, de) in itertools.product(_pool_layouts(model, p), _pool_layouts(model, d)):
            for dtype, kv, cap in itertools.product(dtypes, kv_dtypes, running_caps):
                rows.append((p, d, pt, pe, p // pc, dt, de, d // dc, dtype, kv, cap))
    return pd.DataFrame(rows, columns=list(LAYOUT))


def _flat(model, frame: pd.DataFrame, side: str, base: dict, rates: np.ndarray) -> dict:
    """The flat configuration (arrays over layouts x rates; ``rates`` is ``(layouts, k)``) of one pool."""
    n, k = rates.shape
    rep = lambda col: np.repeat(frame[col].to_numpy(), k)  # noqa: E731
    replicas = rep(f"{side}_replicas")
    tp, ep = rep(f"{side}_tensor_parallel"), rep(f"{side}_expert_parallel")
    ones = np.ones(n * k, dtype=np.int64)
    batch = replicas * (rep("max_running_sequences") if side == "decode" else ones)
    flat = {"batch_size": batch, "input_seq": base["input_seq"], "output_seq": base["output_seq"],
            "pipeline_parallel": ones, "replicas": replicas, "kv_dtype": rep("kv_dtype").astype(str),
            "serving_mode": "continuous"}
    for t in layout.LAYER_TYPES:
        for degree in layout.DEGREES:
            flat[f"layers.{t}.{degree}"] = ones
        flat[f"layers.{t}.dtype"] = rep("dtype").astype(str) if t in ("attention", "feedforward") else \
            np.full(n * k, model.default_dtype(t))
    for t in ("attention", "feedforward", "embedding"):
        flat[f"layers.{t}.tensor_parallel"] = tp
    flat["layers.feedforward.expert_parallel"] = ep
    if side == "decode":
        flat["arrival_rate_qps"] = rates.reshape(-1)
        for key in ("input_seq_cv", "output_seq_cv", "price_per_chip_hour"):
            if key in base:
                flat[key] = float(base[key])
    return flat


def table(model_id: str, hardware_config: str, chips: int, base: dict, dtypes, kv_dtypes, running_caps,
          rates) -> pd.DataFrame:
    """Every candidate layout at every rate of ``rates``, with the engine's load figures and per-chip columns
    named as the aggregated plan's (``requests_s_per_chip``, ``tokens_s_per_chip``, ``tokens_s_per_user``)."""
    model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hardware_config)
    frame = candidates(model, hw, chips, dtypes, kv_dtypes, running_caps)
    rates = np.broadcast_to(np.asarray(rates, dtype=float), (len(frame), len(rates)))
    return evaluate(model_id, hardware_config, frame, base, rates)


def evaluate(model_id: str, hardware_config: str, frame: pd.DataFrame, base: dict, rates: np.ndarray) -> pd.DataFrame:
    """Layouts (rows of ``frame``) at rates (``rates[i]`` for row ``i``): one engine call."""
    model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hardware_config)
    engine = base.get("serving_engine", "generic")
    profile, transfer = catalog.serving_profile(engine), catalog.transfer_profile(engine)
    frame = frame[list(LAYOUT)].reset_index(drop=True)
    pre = to_arrays(_flat(model, frame, "prefill", base, rates))
    dec = to_arrays(_flat(model, frame, "decode", base, rates))
    with np.errstate(all="ignore"):
        fig = evaluate_disaggregated(model, hw, pre, dec, profile, transfer)
    out = frame.loc[frame.index.repeat(rates.shape[1])].reset_index(drop=True)
    out["arrival_rate_qps"] = rates.reshape(-1)
    for key, values in fig.items():
        if key.startswith("load_") or key in ("num_chips", "kv_transfer_ms", "memory_per_chip_gb",
                                              "usd_per_million_output_tokens", "joules_per_output_token"):
            out[key] = np.broadcast_to(values, len(out))
    out["limiting_pool"] = np.where(np.broadcast_to(fig["limiting_pool"], len(out)) == 1, "decode", "prefill")
    out["valid"] = (np.broadcast_to(fig["code"], len(out)) & (layout.STRUCTURAL | layout.DOES_NOT_FIT)) == 0
    out["requests_s_per_chip"] = out["load_achieved_requests_s"] / out["num_chips"]
    out["tokens_s_per_chip"] = out["load_output_tokens_s"] / out["num_chips"]
    out["tokens_s_per_user"] = 1e3 / out["load_tpot_ms_mean"]
    return out


def _within(rows: pd.DataFrame, slo: dict) -> pd.DataFrame:
    ok = (rows["valid"] & ~rows["load_saturated"].astype(bool) & (rows["load_ttft_ms_p99"] <= slo["ttft_p99_ms"])
          & (rows["load_tpot_ms_p99"] <= slo["tpot_p99_ms"]))
    best = rows[ok].sort_values("arrival_rate_qps", ascending=False).drop_duplicates(list(LAYOUT))
    return best.sort_values(["requests_s_per_chip", "tokens_s_per_user"], ascending=False).reset_index(drop=True)


def best_layouts(rows: pd.DataFrame, slo: dict, model_id: str, hardware_config: str, base: dict, step: float,
                 lead: int = 12, fine: int = 16) -> pd.DataFrame:
    """Each disaggregated layout at the largest grid rate of ``rows`` within both p99 SLOs, unsaturated; the
    ``lead`` leading ones refined with ``fine`` rates up to the next grid rate (``step`` x), as the aggregated
    plan does; ranked by requests/s per chip (then tokens/s per user)."""
    best = _within(rows, slo)
    if best.empty:
        return best
    top = best.head(lead)
    rates = top["arrival_rate_qps"].to_numpy()[:, None] * np.linspace(1.0, step, fine + 1)[None, 1:]
    refined = _within(evaluate(model_id, hardware_config, top, base, rates), slo)
    return _within(pd.concat([best, refined], ignore_index=True), slo)


#: The columns of :func:`comparison`.
COMPARED = ("layout", "chips", "arrival_rate_qps", "load_ttft_ms_p99", "load_tpot_ms_p99", "requests_s_per_chip",
            "tokens_s_per_chip", "tokens_s_per_user", "usd_per_million_output_tokens")


def comparison(aggregated: pd.DataFrame, disaggregated: pd.DataFrame) -> pd.DataFrame:
    """The best aggregated and the best disaggregated layout side by side (index ``aggregated`` /
    ``disaggregated``; a side with no layout within the SLOs is left out)."""
    rows = {}
    if not aggregated.empty:
        b = aggregated.iloc[0]
        rows["aggregated"] = {"layout": (f"TP{b['tensor_parallel']} PP{b['pipeline_parallel']} "
                                         f"EP{b['expert_parallel']} x{b['replicas']} {b['dtype']}/{b['kv_dtype']} KV, "
                                         f"{b['max_running_sequences']} running"), "chips": int(b["num_chips"]),
                              **{k: b[k] for k in COMPARED[2:] if k in b}}
    if not disaggregated.empty:
        b = disaggregated.iloc[0]
        rows["disaggregated"] = {"layout": (
            f"{b['prefill_chips']}P:{b['decode_chips']}D, prefill {b['prefill_replicas']} x TP{b['prefill_tensor_parallel']}"
            f"{' EP' + str(b['prefill_expert_parallel']) if b['prefill_expert_parallel'] > 1 else ''}, decode "
            f"{b['decode_replicas']} x TP{b['decode_tensor_parallel']}"
            f"{' EP' + str(b['decode_expert_parallel']) if b['decode_expert_parallel'] > 1 else ''}, "
            f"{b['dtype']}/{b['kv_dtype']} KV, {b['max_running_sequences']} running"), "chips": int(b["num_chips"]),
            **{k: b[k] for k in COMPARED[2:] if k in b}}
    return pd.DataFrame.from_dict(rows, orient="index")


def request(row: pd.Series, base: dict) -> dict:
    """The disaggregated system-metrics request of one plan row (its rate included)."""
    pools = {}
    for side in ("prefill", "decode"):
        tp, ep = int(row[f"{side}_tensor_parallel"]), int(row[f"{side}_expert_parallel"])
        layers = {t: {"tensor_parallel": tp, "dtype": str(row["dtype"])} for t in ("attention", "feedforward")}
        layers["embedding"] = {"tensor_parallel": tp}
        if ep > 1:
            layers["feedforward"]["expert_parallel"] = ep
        replicas = int(row[f"{side}_replicas"])
        batch = replicas * (int(row["max_running_sequences"]) if side == "decode" else 1)
        pools[side] = {"replicas": replicas, "batch_size": batch, "layers": layers}
    return {**base, "kv_dtype": str(row["kv_dtype"]), "disaggregated": pools,
            "arrival_rate_qps": float(row["arrival_rate_qps"])}
