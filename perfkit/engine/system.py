"""The engine: one vectorized evaluation of every configuration of a (model, hardware) pair.

``evaluate`` returns a dict of arrays, one entry per figure of the system-metrics response plus
``code`` (the bit mask of :mod:`perfkit.engine.layout`) and the uncertainty bands. ``evaluate_layer`` returns
one layer type's figures for ``POST /config/layer-metrics``. Both are pure numpy; a single request is a sweep
of one.

What TTFT and TPOT mean, per ``serving_mode`` (0 = static, 1 = continuous):

- *static*: one batch served together. TTFT is one prefill pass of ``batch_size`` prompts of ``input_seq``
  tokens; TPOT is one decode step of the whole batch at the mean context of the generated tokens,
  ``input_seq + output_seq / 2``.
- *continuous*: what a closed-loop benchmark with ``batch_size`` concurrent requests measures on an engine
  with continuous batching. Only the sequences whose KV cache fits run at once (the rest queue for a slot);
  each decode step also carries the prefills of the requests that arrive meanwhile; a new request waits
  for the running step and for arrival bursts before its own prefill. Once the KV cache caps the running
  sequences, a longer prompt means fewer of them per step: TPOT can then fall while TTFT rises (static mode
  never does this).

The KV cache and memory figures are sized for ``batch_size`` sequences of ``input_seq + output_seq`` tokens
in both modes.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY
from ..specs import HardwareSpec, ModelSpec, ServingProfile
from . import layout, load, price
from .costs import COSTS, Collective, Pass, instances
from .timing import collective_seconds, communication_seconds, compute_seconds, memory_seconds

BOTTLENECKS = np.array(["compute", "memory", "communication"])
STATIC, CONTINUOUS = 0, 1
SERVING_MODES = ("static", "continuous")


def layer_times(model: ModelSpec, hw: HardwareSpec, cfg, layer_type: str, p: Pass):
    """The cost of one instance of ``layer_type`` and its compute, memory and communication seconds."""
    cost = COSTS[layer_type](model, cfg, p)
    compute = compute_seconds(hw, cost, cfg[f"layers.{layer_type}.dtype"])
    memory = memory_seconds(hw, cost)
    comm = communication_seconds(hw, cost)
    return cost, compute, memory, comm


def _pass(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, cfg, p: Pass, chips) -> dict:
    """Seconds of one engine step through the whole model, and its parts."""
    parts = {"compute": 0.0, "memory": 0.0, "communication": 0.0}
    layer_overhead = hw.efficiency.layer_overhead_s + (profile.prefill_layer_overhead_s if p.prefill else 0.0)
    seconds = profile.step_overhead_s + profile.sequence_overhead_s * p.batch + model.num_layers * layer_overhead
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


def _memory(model: ModelSpec, hw: HardwareSpec, cfg, costs: dict, chips) -> dict:
    """Bytes per chip (the fullest chip) and summed over all chips, by kind."""
    pp = cfg["pipeline_parallel"]
    per_chip_weights = costs["embedding"].weight_bytes
    model_weights = costs["embedding"].weight_bytes
    for layer_type in ("attention", "feedforward", "norm"):
        n = instances(model, layer_type)
        per_chip_weights = per_chip_weights + np.ceil(n / pp) * costs[layer_type].weight_bytes
        model_weights = model_weights + n * costs[layer_type].weight_bytes
    kv_instance = costs["attention"].kv_bytes
    per_chip_kv = np.ceil(model.num_layers / pp) * kv_instance
    per_chip_act = reduce(np.maximum, [costs[t].activation_bytes for t in layout.LAYER_TYPES])
    stage_chips = chips / pp  # chips of one pipeline stage: each holds 1/pp of the layers
    return {
        "weights": model_weights * stage_chips,
        "kv": model.num_layers * kv_instance * stage_chips,
        "activations": per_chip_act * chips,
        "chip_weights": per_chip_weights,
        "chip_kv": per_chip_kv,
        "chip_activations": per_chip_act,
    }


def evaluate(model: ModelSpec, hw: HardwareSpec, cfg, profile: ServingProfile) -> dict[str, np.ndarray]:
    """Every figure of the system-metrics response, as arrays over the broadcast configurations."""
    batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]
    mode = cfg.get("serving_mode", STATIC)
    chips = layout.num_chips(cfg)
    code = layout.check(model, hw, cfg)
    cached = isl + osl
    mean_context = isl + osl / 2.0
    prefill = _pass(model, hw, profile, cfg, Pass(batch, isl, isl, cached, prefill=True), chips)
    mem = _memory(model, hw, cfg, prefill["costs"], chips)
    per_chip = mem["chip_weights"] + mem["chip_kv"] + mem["chip_activations"]
    fits = per_chip <= hw.memory_bytes
    code = code | np.where(fits, 0, layout.DOES_NOT_FIT)

    decode = _pass(model, hw, profile, cfg, Pass(batch, 1, mean_context, cached, prefill=False), chips)
    ttft_s, tpot_s = prefill["seconds"], decode["seconds"]
    totals = [prefill["parts"][k] + osl * decode["parts"][k] for k in ("compute", "memory", "communication")]
    if np.any(mode == CONTINUOUS):
        ttft_c, tpot_c = _continuous(model, hw, profile, cfg, prefill["seconds"], mem, chips)
        ttft_s = np.where(mode == CONTINUOUS, ttft_c, ttft_s)
        tpot_s = np.where(mode == CONTINUOUS, tpot_c, tpot_s)

    ttft_ms, tpot_ms = ttft_s * 1e3, tpot_s * 1e3
    shape = np.broadcast(batch, isl, osl, chips, ttft_ms, tpot_ms).shape
    band = profile.band
    loaded = {}
    if "arrival_rate_qps" in cfg:  # an open-loop load (validated to come with continuous batching)
        prices = step_prices(model, hw, profile, cfg, prefill["seconds"], mem, chips)
        loaded = load.open_loop(prices, cfg["arrival_rate_qps"], isl, osl, cfg.get("input_seq_cv", 0.0),
                                cfg.get("output_seq_cv", 0.0), cfg.get("replicas", 1))
    # per output token at the served rate: the open-loop achieved rate, else the closed-loop throughput
    served = loaded["load_output_tokens_s"] if loaded else batch * 1000.0 / tpot_ms
    spent = price.per_output_token(hw, chips, served, cfg.get("price_per_chip_hour"))
    return {
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "throughput_tokens_s": batch * 1000.0 / tpot_ms,
        "total_latency_ms": ttft_ms + osl * tpot_ms,
        "weight_memory_gb": mem["weights"] / 1e9,
        "activation_memory_gb": mem["activations"] / 1e9,
        "kv_cache_gb": mem["kv"] / 1e9,
        "total_memory_gb": mem["weights"] / 1e9 + mem["activations"] / 1e9 + mem["kv"] / 1e9,
        "memory_per_chip_gb": per_chip / 1e9,
        "hw_capacity_gb": np.full(shape, hw.memory_bytes / 1e9),
        "num_chips": np.broadcast_to(chips, shape),
        "num_nodes": np.broadcast_to(layout.num_nodes(hw, chips), shape),
        "bottleneck": _largest(*totals, shape=shape),
        "fits_on_hardware": np.broadcast_to(fits, shape),
        "ttft_ms_p10": ttft_ms * band["ttft_p10"],
        "ttft_ms_p90": ttft_ms * band["ttft_p90"],
        "tpot_ms_p10": tpot_ms * band["tpot_p10"],
        "tpot_ms_p90": tpot_ms * band["tpot_p90"],
        "code": np.broadcast_to(code, shape),
        **loaded,
        **spent,
    }


def _largest(compute, memory, communication, shape) -> np.ndarray:
    """Name of the largest of the three times (ties go to the earlier name)."""
    index = np.where(memory > compute, np.where(communication > memory, 2, 1),
                     np.where(communication > compute, 2, 0))
    return BOTTLENECKS[np.broadcast_to(index, shape)]


def _continuous(model, hw, profile, cfg, prefill_all_s, mem, chips):
    """TTFT and TPOT of a closed loop of ``batch_size`` requests under continuous batching (seconds)."""
    batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]
    running = _running(hw, profile, cfg, mem)
    one = _pass(model, hw, profile, cfg, Pass(np.ones_like(batch), isl, isl, isl + osl, prefill=True), chips)
    step = _pass(model, hw, profile, cfg, Pass(running, 1, isl + osl / 2.0, isl + osl, prefill=False), chips)
    per_request_prefill = prefill_all_s / batch  # the batched cost of one prompt
    tpot = step["seconds"] + profile.prefill_interference * running / osl * per_request_prefill
    queue = (batch / running - 1.0) * (one["seconds"] + osl * tpot)  # waiting for a free slot
    chunks = isl / profile.prefill_chunk_tokens  # each prompt chunk rides one decode step of the running batch
    ttft = (profile.request_overhead_s + one["seconds"] + profile.ramp * prefill_all_s + chunks * step["seconds"]
            + queue)
    return ttft, tpot


def _running(hw, profile, cfg, mem):
    """Sequences whose KV cache fits at once next to the weights and one prompt chunk's activations (at most
    ``batch_size``)."""
    batch, isl = cfg["batch_size"], cfg["input_seq"]
    kv_per_sequence = mem["chip_kv"] / batch
    chunk_share = np.minimum(1.0, profile.prefill_chunk_tokens / (batch * isl))  # chunked prefill bounds activations
    free = hw.memory_bytes * profile.memory_utilization - mem["chip_weights"] - mem["chip_activations"] * chunk_share
    return np.clip(np.floor(free / kv_per_sequence), 1, batch)


def continuous_prices(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, cfg) -> load.StepPrices:
    """:func:`step_prices` of a configuration on its own (what :func:`evaluate` builds on the way)."""
    batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]
    chips = layout.num_chips(cfg)
    prefill = _pass(model, hw, profile, cfg, Pass(batch, isl, isl, isl + osl, prefill=True), chips)
    mem = _memory(model, hw, cfg, prefill["costs"], chips)
    return step_prices(model, hw, profile, cfg, prefill["seconds"], mem, chips)


def step_prices(model, hw, profile, cfg, prefill_all_s, mem, chips) -> load.StepPrices:
    """What one continuous-batching step costs (for :mod:`perfkit.engine.load` and :mod:`perfkit.simulate`):
    the decode pass at ``n`` sequences of the mean context, and each prompt token at the batched prefill's
    cost per token times ``prefill_interference`` (the same price the closed-loop TPOT above pays)."""
    batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]

    def decode(n):
        return _pass(model, hw, profile, cfg, Pass(n, 1, isl + osl / 2.0, isl + osl, prefill=False), chips)["seconds"]

    return load.StepPrices(decode=decode, prompt_token_s=profile.prefill_interference * prefill_all_s / (batch * isl),
                           chunk_tokens=profile.prefill_chunk_tokens, running_cap=_running(hw, profile, cfg, mem),
                           request_overhead_s=profile.request_overhead_s)


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
