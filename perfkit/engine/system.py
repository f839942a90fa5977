"""The engine: one vectorized evaluation of every configuration of a (model, hardware) pair.

``evaluate`` returns a dict of arrays, one entry per figure of the system-metrics response plus
``code`` (the bit mask of :mod:`perfkit.engine.layout`) and the uncertainty bands; ``bottleneck`` is an index
into :data:`BOTTLENECKS`. ``evaluate_layer`` returns one layer type's figures for
``POST /config/layer-metrics``. Both are pure numpy; a single request is a sweep of one.

A deployment is ``replicas`` whole copies of a layout; ``batch_size`` counts every replica's sequences and each
replica serves its share (rounded up: the busiest one sets the latency). Latency figures are one replica's,
``throughput_tokens_s`` and the memory totals are the deployment's. Inside a replica the pipeline keeps
``min(pipeline_parallel, sequences)`` micro-batches in flight (:func:`_pipelined`).

What TTFT and TPOT mean, per ``serving_mode`` (0 = static, 1 = continuous):

- *static*: one batch served together. TTFT is one prefill pass of the replica's prompts of ``input_seq``
  tokens (through a pipeline: the micro-batches fill the stages, ``m + pp - 1`` stage rounds); TPOT is one
  decode step of the replica's batch at the mean context of the generated tokens, ``input_seq + output_seq
  / 2`` (through a pipeline: one round of ``pp`` stages, each serving every micro-batch).
- *continuous*: what a closed-loop benchmark with ``batch_size`` concurrent requests measures on an engine
  with continuous batching. Only the sequences whose KV cache fits run at once (the rest queue for a slot);
  each decode step also carries the prefills of the requests that arrive meanwhile; a new request waits
  for the running step and for arrival bursts before its own prefill. Once the KV cache caps the running
  sequences, a longer prompt means fewer of them per step: TPOT can then fall while TTFT rises (static mode
  never does this). Decode steps and prefills are priced through the pipeline as in static mode; every
  attention data-parallel rank caches and schedules its own sequences.

The KV cache and memory figures are sized for ``batch_size`` sequences of ``input_seq + output_seq`` tokens
in both modes.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY
from ..specs import HardwareSpec, ModelSpec, ServingProfile
from . import kernel_time, layout, load, price
from .elementwise import maximum, minimum, where
from .costs import COSTS, Pass, attention_ranks, attention_sequences, instances
from .timing import any_true, communication_seconds, handoff_seconds

BOTTLENECKS = np.array(["compute", "memory", "communication"])
STATIC, CONTINUOUS = 0, 1
SERVING_MODES = ("static", "continuous")


def layer_times(model: ModelSpec, hw: HardwareSpec, cfg, layer_type: str, p: Pass, kt: kernel_time.KernelTable,
                fixed: float = 1.0):
    """The cost of one instance of ``layer_type``, its compute, memory and communication seconds (the roofline
    parts that name the bottleneck) and ``busy``: the seconds its kernels take (the kernel models)."""
    cost = COSTS[layer_type](model, cfg, p)
    dtype = cfg[f"layers.{layer_type}.dtype"]
    compute, memory = kernel_time.roofline(kt, hw, cost, dtype)
    comm = communication_seconds(hw, cost)
    busy = kernel_time.busy_seconds(kt, hw, model, cost, dtype, fixed) if kernel_time.has_kernels(cost) \
        else maximum(compute, memory)
    return cost, compute, memory, comm, busy


def _pass(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, cfg, p: Pass) -> dict:
    """Seconds of one engine step of ``p.batch`` sequences through the whole model on one replica (every
    pipeline stage in turn, no overlap), and its parts.

    The GPU is busy for the layers' kernels and collectives plus ``kernel_gap_s`` between kernels. A
    prefill runs eagerly: the host launches every kernel (``launch_s`` each) and the GPU waits for it where
    the kernels are shorter (a short prompt), so the pass takes the longer of the two. Decode steps replay
    captured CUDA graphs: one launch per step, inside ``step_overhead_s``, and each kernel pays only
    ``graph_fixed_share`` of the fixed per-call cost its microbenchmark loop measured. Every step also pays the
    engine's scheduling per sequence (attention data-parallel ranks schedule their own)."""
    kt = kernel_time.table(hw, profile.kernels, model)
    fixed = 1.0 if p.prefill else profile.graph_fixed_share
    parts = {"compute": 0.0, "memory": 0.0, "communication": 0.0}
    gpu, kernels = 0.0, 0.0
    costs = {}
    for layer_type in layout.LAYER_TYPES:
        cost, compute, memory, comm, busy = layer_times(model, hw, cfg, layer_type, p, kt, fixed)
        n = instances(model, layer_type)
        gpu = gpu + n * (busy + comm)
        kernels = kernels + n * kernel_time.kernel_count(layer_type, cost)
        parts["compute"] = parts["compute"] + n * compute
        parts["memory"] = parts["memory"] + n * memory
        parts["communication"] = parts["communication"] + n * comm
        costs[layer_type] = cost
    gpu = gpu + kernels * profile.kernel_gap_s
    if p.prefill:
        gpu = maximum(gpu, kernels * profile.launch_s)
    seconds = profile.step_overhead_s + profile.sequence_overhead_s * attention_sequences(cfg, p.batch) + gpu
    return {"seconds": seconds, "parts": parts, "costs": costs}


def micro_batches(cfg, batch):
    """Micro-batches a pipeline keeps in flight: one per stage, fewer when there are fewer sequences."""
    return minimum(cfg["pipeline_parallel"], maximum(batch, 1))


def _pipelined(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, cfg, p: Pass, replica_chips) -> dict:
    """A step of ``p.batch`` sequences on ``pipeline_parallel`` stages with micro-batches in flight.

    The batch is split into ``m = min(pp, batch)`` micro-batches; a stage holds 1/pp of the layers, so one
    micro-batch's pass through one stage takes ``T = pass(batch / m) / pp``, plus a point-to-point hand-off
    of its activations to the next stage. A decode step (every sequence advancing one token) is one round of
    the pipeline: each stage serves all m micro-batches and each micro-batch crosses all pp stages, so it
    takes ``max(pp, m) x (T + hand-off) = pp x (T + hand-off)``: per-token latency grows with the hand-offs
    and, below pp micro-batches, with idle stages (the bubble), while throughput grows with the stages that
    work at once. A prefill of the whole batch fills the pipeline: ``(m + pp - 1) x (T + hand-off)``. With
    pp = 1 both are the plain pass.
    """
    pp = cfg["pipeline_parallel"]
    m = micro_batches(cfg, p.batch)
    one = Pass(np.ceil(p.batch / m), p.new, p.context, p.cached, p.prefill)
    full = _pass(model, hw, profile, cfg, one)
    rounds = (m + pp - 1) if p.prefill else maximum(pp, m)
    parts, seconds = full["parts"], full["seconds"]
    if p.prefill and any_true(pp > 1):  # a decode round is always pp stages: one whole pass
        scale = rounds / pp  # each round is one stage: 1/pp of a pass
        parts = {k: v * scale for k, v in parts.items()}
        seconds = seconds * scale
    if any_true(pp > 1):
        # pp - 1 hand-offs per micro-batch, those between nodes over the scale-out network (stages fill
        # nodes in turn), spread over the rounds
        abytes = ACTIVATION_BYTES_ARRAY[cfg["layers.attention.dtype"]]
        crossing = minimum(pp - 1, layout.num_nodes(hw, replica_chips) - 1)
        hops = handoff_seconds(hw, one.batch * p.new * model.hidden_size * abytes, pp - 1, crossing)
        handoff = rounds * hops / pp
        parts["communication"] = parts["communication"] + handoff
        seconds = seconds + handoff
    return {"seconds": seconds, "parts": parts, "costs": full["costs"]}


def _kv_scale(cfg, batch):
    """A pipeline's prefill holds one micro-batch's activations at a time but the KV cache of every
    sequence: the whole batch's KV over one micro-batch's (1 without a pipeline)."""
    return attention_sequences(cfg, batch) / attention_sequences(cfg, np.ceil(batch / micro_batches(cfg, batch)))


def _memory(model: ModelSpec, hw: HardwareSpec, cfg, costs: dict, chips, kv_scale) -> dict:
    """Bytes per chip (the fullest chip) and summed over all chips, by kind; ``costs`` are those of one
    micro-batch, whose KV cache is ``1 / kv_scale`` of the whole batch's."""
    pp = cfg["pipeline_parallel"]
    per_chip_weights = costs["embedding"].weight_bytes
    model_weights = costs["embedding"].weight_bytes
    for layer_type in ("attention", "feedforward", "norm"):
        n = instances(model, layer_type)
        per_chip_weights = per_chip_weights + np.ceil(n / pp) * costs[layer_type].weight_bytes
        model_weights = model_weights + n * costs[layer_type].weight_bytes
    kv_instance = costs["attention"].kv_bytes * kv_scale if any_true(kv_scale != 1) else costs["attention"].kv_bytes
    per_chip_kv = np.ceil(model.num_layers / pp) * kv_instance
    per_chip_act = reduce(maximum, [costs[t].activation_bytes for t in layout.LAYER_TYPES])
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
    cfg = layout.with_spans(cfg)
    total_batch, isl, osl = cfg["batch_size"], cfg["input_seq"], cfg["output_seq"]
    mode = cfg.get("serving_mode", STATIC)
    replicas = layout.replicas(cfg)
    batch = np.ceil(total_batch / replicas)  # one replica's sequences (the busiest, if they do not split evenly)
    replica_chips = layout.replica_chips(cfg)
    chips = replicas * replica_chips
    code = layout.check(model, hw, cfg)
    cached = isl + osl
    mean_context = isl + osl / 2.0
    prefill = _pipelined(model, hw, profile, cfg, Pass(batch, isl, isl, cached, prefill=True), replica_chips)
    mem = _memory(model, hw, cfg, prefill["costs"], chips, _kv_scale(cfg, batch))
    per_chip = mem["chip_weights"] + mem["chip_kv"] + mem["chip_activations"]
    fits = per_chip <= hw.memory_bytes
    code = code | where(fits, 0, layout.DOES_NOT_FIT)

    decode = _pipelined(model, hw, profile, cfg, Pass(batch, 1, mean_context, cached, prefill=False), replica_chips)
    ttft_s, tpot_s = prefill["seconds"], decode["seconds"]
    totals = [prefill["parts"][k] + osl * decode["parts"][k] for k in ("compute", "memory", "communication")]
    if any_true(mode == CONTINUOUS):
        ttft_c, tpot_c = _continuous(model, hw, profile, cfg, batch, prefill["seconds"], mem, replica_chips)
        ttft_s = where(mode == CONTINUOUS, ttft_c, ttft_s)
        tpot_s = where(mode == CONTINUOUS, tpot_c, tpot_s)

    ttft_ms, tpot_ms = ttft_s * 1e3, tpot_s * 1e3
    shape = np.broadcast(total_batch, isl, osl, chips, ttft_ms, tpot_ms).shape
    static, continuous = profile.bands(kernel_time.status(hw))
    band = {k: where(mode == CONTINUOUS, continuous[k], static[k]) for k in static}
    loaded = {}
    if "arrival_rate_qps" in cfg:  # an open-loop load (validated to come with continuous batching)
        prices = step_prices(model, hw, profile, cfg, batch, prefill["seconds"], mem, replica_chips)
        loaded = load.open_loop(prices, cfg["arrival_rate_qps"], isl, osl, cfg.get("input_seq_cv", 0.0),
                                cfg.get("output_seq_cv", 0.0), replicas)
    # per output token at the served rate: the open-loop achieved rate, else the closed-loop throughput
    served = loaded["load_output_tokens_s"] if loaded else total_batch * 1000.0 / tpot_ms
    spent = price.per_output_token(hw, chips, served, cfg.get("price_per_chip_hour"))
    return {
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "throughput_tokens_s": total_batch * 1000.0 / tpot_ms,  # every replica's sequences
        "total_latency_ms": ttft_ms + osl * tpot_ms,
        "weight_memory_gb": mem["weights"] / 1e9,
        "activation_memory_gb": mem["activations"] / 1e9,
        "kv_cache_gb": mem["kv"] / 1e9,
        "total_memory_gb": mem["weights"] / 1e9 + mem["activations"] / 1e9 + mem["kv"] / 1e9,
        "memory_per_chip_gb": per_chip / 1e9,
        "hw_capacity_gb": np.full(shape, hw.memory_bytes / 1e9),
        "num_chips": _shaped(chips, shape),
        "num_nodes": _shaped(layout.num_nodes(hw, chips), shape),
        "bottleneck": _largest(*totals, shape=shape),
        "fits_on_hardware": _shaped(fits, shape),
        "ttft_ms_p10": ttft_ms * band["ttft_p10"],
        "ttft_ms_p90": ttft_ms * band["ttft_p90"],
        "tpot_ms_p10": tpot_ms * band["tpot_p10"],
        "tpot_ms_p90": tpot_ms * band["tpot_p90"],
        "code": _shaped(code, shape),
        **loaded,
        **spent,
    }


def _largest(compute, memory, communication, shape) -> np.ndarray:
    """Index into ``BOTTLENECKS`` of the largest of the three times (ties go to the earlier name)."""
    index = where(memory > compute, where(communication > memory, 2, 1),
                     where(communication > compute, 2, 0)).astype(np.int8)
    return _shaped(index, shape)


def _shaped(values, shape):
    """``values`` broadcast to ``shape`` (a single request's scalars stay as they are: nothing to broadcast)."""
    return values if shape == () else np.broadcast_to(values, shape)


def _continuous(model, hw, profile, cfg, batch, prefill_all_s, mem, replica_chips):
    """TTFT and TPOT of a closed loop of ``batch`` requests per replica under continuous batching (seconds)."""
    parts = continuous_parts(model, hw, profile, cfg, batch, prefill_all_s, mem, replica_chips)
    ttft = (parts["request_overhead"] + parts["own_prefill"] + parts["burst_wait"] + parts["chunk_steps"]
            + parts["slot_queue"])
    return ttft, parts["tpot"]


def continuous_parts(model, hw, profile, cfg, batch, prefill_all_s, mem, replica_chips) -> dict:
    """The terms of :func:`_continuous` (seconds): TTFT is ``request_overhead + own_prefill + burst_wait +
    chunk_steps + slot_queue``; ``tpot``, ``running`` (sequences decoding at once) and ``decode_step`` come
    with them (``benchmarks/ttft_transfer.py`` studies the TTFT terms one by one)."""
    isl, osl = cfg["input_seq"], cfg["output_seq"]
    running = _running(hw, profile, cfg, batch, mem)
    one = _pipelined(model, hw, profile, cfg, Pass(np.ones_like(batch), isl, isl, isl + osl, prefill=True),
                     replica_chips)
    step = _pipelined(model, hw, profile, cfg, Pass(running, 1, isl + osl / 2.0, isl + osl, prefill=False),
                      replica_chips)
    per_request_prefill = prefill_all_s / batch  # the batched cost of one prompt
    tpot = step["seconds"] + profile.prefill_interference * running / osl * per_request_prefill
    chunks = isl / profile.prefill_chunk_tokens  # each prompt chunk rides one decode step of the running batch
    return {"request_overhead": profile.request_overhead_s, "own_prefill": one["seconds"],
            "burst_wait": profile.ramp * prefill_all_s, "chunk_steps": chunks * step["seconds"],
            "slot_queue": (batch / running - 1.0) * (one["seconds"] + osl * tpot),  # waiting for a free slot
            "tpot": tpot, "running": running, "decode_step": step["seconds"]}


def _running(hw, profile, cfg, batch, mem):
    """Sequences of one replica whose KV cache fits at once next to the weights and one prompt chunk's
    activations (at most ``batch``)."""
    isl = cfg["input_seq"]
    ranks = attention_ranks(cfg)  # each caches its own
    rank_batch = attention_sequences(cfg, batch)
    kv_per_sequence = mem["chip_kv"] / rank_batch
    # chunked prefill bounds the activations to one chunk of the rank's prompts
    chunk_share = minimum(1.0, profile.prefill_chunk_tokens / (rank_batch * isl))
    free = hw.memory_bytes * profile.memory_utilization - mem["chip_weights"] - mem["chip_activations"] * chunk_share
    return np.clip(np.floor(free / kv_per_sequence) * ranks, 1, batch)


def step_prices(model, hw, profile, cfg, batch, prefill_all_s, mem, replica_chips) -> load.StepPrices:
    """What one continuous-batching step of one replica costs (for :mod:`perfkit.engine.load` and
    :mod:`perfkit.simulate`): the decode step at ``n`` sequences of the mean context, and each prompt token
    at the batched prefill's cost per token times ``prefill_interference`` (the price the closed-loop TPOT
    above pays)."""
    isl, osl = cfg["input_seq"], cfg["output_seq"]

    def decode(n):
        p = Pass(n, 1, isl + osl / 2.0, isl + osl, prefill=False)
        return _pipelined(model, hw, profile, cfg, p, replica_chips)["seconds"]

    return load.StepPrices(decode=decode, prompt_token_s=profile.prefill_interference * prefill_all_s / (batch * isl),
                           chunk_tokens=profile.prefill_chunk_tokens, running_cap=_running(hw, profile, cfg, batch, mem),
                           request_overhead_s=profile.request_overhead_s)


def continuous_prices(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, cfg) -> load.StepPrices:
    """:func:`step_prices` of a configuration on its own (what :func:`evaluate` builds on the way)."""
    isl, osl = cfg["input_seq"], cfg["output_seq"]
    batch = np.ceil(cfg["batch_size"] / layout.replicas(cfg))
    replica_chips = layout.replica_chips(cfg)
    prefill = _pipelined(model, hw, profile, cfg, Pass(batch, isl, isl, isl + osl, prefill=True), replica_chips)
    mem = _memory(model, hw, cfg, prefill["costs"], layout.replicas(cfg) * replica_chips, _kv_scale(cfg, batch))
    return step_prices(model, hw, profile, cfg, batch, prefill["seconds"], mem, replica_chips)


def evaluate_layer(model: ModelSpec, hw: HardwareSpec, cfg, layer_type: str, decode: bool,
                   profile: ServingProfile) -> dict:
    """One layer type's per-instance figures for a prefill of ``seq_length`` tokens (or, with ``decode``,
    one decode step at a context of ``seq_length``), its kernels as ``profile``'s engine runs them."""
    cfg = layout.with_spans(cfg)
    batch, seq = cfg["batch_size"], cfg["seq_length"]
    p = Pass(batch, 1, seq, seq, prefill=False) if decode else Pass(batch, seq, seq, seq, prefill=True)
    kt = kernel_time.table(hw, profile.kernels, model)
    cost, compute, memory, comm, busy = layer_times(model, hw, cfg, layer_type, p, kt,
                                                    profile.graph_fixed_share if decode else 1.0)
    total = compute + memory + comm
    return {
        "num_instances": instances(model, layer_type),
        "num_chips": layout.layer_chips(cfg, layer_type),
        "weights_per_chip_gb": cost.weight_bytes / 1e9,
        "activation_per_chip_gb": cost.activation_bytes / 1e9,
        "kv_cache_per_chip_gb": cost.kv_bytes / 1e9,
        "flops_per_chip_tflops": cost.flops / 1e12,
        "hbm_traffic_per_chip_gb": cost.hbm_bytes / 1e9,  # bytes one instance moves through HBM (roofline x)
        "compute_pct": 100.0 * compute / total,
        "memory_pct": 100.0 * memory / total,
        "communication_pct": 100.0 * comm / total,
        "time_ms": (busy + comm) * 1e3,
        "code": layout.check(model, hw, cfg),
    }
