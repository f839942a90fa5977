"""The engine: one vectorized evaluation of every configuration of a (model, hardware) pair.

``evaluate`` returns a dict of arrays, one entry per figure of the system-metrics response plus
``code`` (the bit mask of :mod:`perfkit.engine.layout`). ``evaluate_layer`` returns one layer type's
figures for ``POST /config/layer-metrics``. Both are pure numpy; a single request is a sweep of one.

Meanings (see DESIGN.md): TTFT is one prefill pass of ``batch_size`` prompts of ``input_seq`` tokens plus the
step overhead. TPOT is one decode step of the whole batch at the mean context of the generated tokens,
``input_seq + output_seq / 2``. The KV cache is sized for ``input_seq + output_seq`` tokens per sequence.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY
from ..specs import HardwareSpec, ModelSpec
from . import layout
from .costs import COSTS, Collective, Pass, instances
from .timing import collective_seconds, communication_seconds, compute_seconds, memory_seconds

BOTTLENECKS = np.array(["compute", "memory", "communication"])


def layer_times(model: ModelSpec, hw: HardwareSpec, cfg, layer_type: str, p: Pass):
    """The cost of one instance of ``layer_type`` and its compute, memory and communication seconds."""
    cost = COSTS[layer_type](model, cfg, p)
    compute = compute_seconds(hw, cost, cfg[f"layers.{layer_type}.dtype"])
    memory = memory_seconds(hw, cost)
    comm = communication_seconds(hw, cost)
    return cost, compute, memory, comm


def _pass(model: ModelSpec, hw: HardwareSpec, cfg, p: Pass, chips) -> dict:
    """Seconds of one forward pass through the whole model, and its parts."""
    e = hw.efficiency
    parts = {"compute": 0.0, "memory": 0.0, "communication": 0.0}
    seconds = e.step_overhead_s + model.num_layers * e.layer_overhead_s
    costs = {}
    for layer_type in layout.LAYER_TYPES:
        cost, compute, memory, comm = layer_times(model, hw, cfg, layer_type, p)
        n = instances(model, layer_type)
        seconds = seconds + n * (np.maximum(compute, memory) + comm)
        parts["compute"] = parts["compute"] + n * compute
        parts["memory"] = parts["memory"] + n * memory
        parts["communication"] = parts["communication"] + n * comm
        costs[layer_type] = cost
    pp = cfg["pipeline_parallel"]
    abytes = ACTIVATION_BYTES_ARRAY[cfg["layers.attention.dtype"]]
    handoff = Collective("ring", p.batch * p.new * model.hidden_size * abytes, pp, chips)
    pipeline = collective_seconds(hw, handoff)
    parts["communication"] = parts["communication"] + pipeline
    return {"seconds": seconds + pipeline, "parts": parts, "costs": costs}


def evaluate(model: ModelSpec, hw: HardwareSpec, cfg) -> dict[str, np.ndarray]:
    """Every figure of the system-metrics response, as arrays over the broadcast configurations."""
    batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]
    chips = layout.num_chips(cfg)
    code = layout.check(model, hw, cfg)
    cached = isl + osl
    prefill = _pass(model, hw, cfg, Pass(batch, isl, isl, cached, prefill=True), chips)
    decode = _pass(model, hw, cfg, Pass(batch, 1, isl + osl / 2.0, cached, prefill=False), chips)
    ttft_ms = prefill["seconds"] * 1e3
    tpot_ms = decode["seconds"] * 1e3

    pp = cfg["pipeline_parallel"]
    costs = prefill["costs"]
    per_chip_weights = costs["embedding"].weight_bytes
    model_weights = costs["embedding"].weight_bytes
    for layer_type in ("attention", "feedforward", "norm"):
        n = instances(model, layer_type)
        per_chip_weights = per_chip_weights + np.ceil(n / pp) * costs[layer_type].weight_bytes
        model_weights = model_weights + n * costs[layer_type].weight_bytes
    kv_instance = costs["attention"].kv_bytes
    per_chip_kv = np.ceil(model.num_layers / pp) * kv_instance
    per_chip_act = np.maximum.reduce([costs[t].activation_bytes for t in layout.LAYER_TYPES])
    stage_chips = chips / pp  # chips of one pipeline stage: each holds 1/pp of the layers
    weight_gb = model_weights * stage_chips / 1e9
    kv_gb = model.num_layers * kv_instance * stage_chips / 1e9
    act_gb = per_chip_act * chips / 1e9
    per_chip_gb = (per_chip_weights + per_chip_kv + per_chip_act) / 1e9
    capacity_gb = hw.memory_bytes / 1e9
    fits = per_chip_gb <= capacity_gb
    code = code | np.where(fits, 0, layout.DOES_NOT_FIT)

    totals = np.stack([prefill["parts"][k] + osl * decode["parts"][k]
                       for k in ("compute", "memory", "communication")])
    shape = np.broadcast(batch, isl, osl, chips, ttft_ms, tpot_ms).shape
    return {
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "throughput_tokens_s": batch * 1000.0 / tpot_ms,
        "total_latency_ms": ttft_ms + osl * tpot_ms,
        "weight_memory_gb": weight_gb,
        "activation_memory_gb": act_gb,
        "kv_cache_gb": kv_gb,
        "total_memory_gb": weight_gb + act_gb + kv_gb,
        "memory_per_chip_gb": per_chip_gb,
        "hw_capacity_gb": np.full(shape, capacity_gb),
        "num_chips": np.broadcast_to(chips, shape),
        "num_nodes": np.broadcast_to(layout.num_nodes(hw, chips), shape),
        "bottleneck": BOTTLENECKS[np.argmax(totals.reshape(3, -1), axis=0)].reshape(shape),
        "fits_on_hardware": np.broadcast_to(fits, shape),
        "code": np.broadcast_to(code, shape),
    }


def evaluate_layer(model: ModelSpec, hw: HardwareSpec, cfg, layer_type: str, decode: bool) -> dict:
    """One layer type's per-instance figures for a prefill of ``seq_length`` tokens (or, with ``decode``,
    one decode step at a context of ``seq_length``)."""
    batch, seq = cfg["batch_size"], cfg["seq_length"]
    p = Pass(batch, 1, seq, seq, prefill=False) if decode else Pass(batch, seq, seq, seq, prefill=True)
    cost, compute, memory, comm = layer_times(model, hw, cfg, layer_type, p)
    total = compute + memory + comm
    return {
        "num_instances": instances(model, layer_type),
        "num_chips": layout.layer_chips(cfg, layer_type),
        "weights_per_chip_gb": cost.weight_bytes / 1e9,
        "activation_per_chip_gb": cost.activation_bytes / 1e9,
        "kv_cache_per_chip_gb": cost.kv_bytes / 1e9,
        "flops_per_chip_tflops": cost.flops / 1e12,
        "compute_pct": 100.0 * compute / total,
        "memory_pct": 100.0 * memory / total,
        "communication_pct": 100.0 * comm / total,
        "time_ms": (np.maximum(compute, memory) + comm) * 1e3,
        "code": layout.check(model, hw, cfg),
    }
