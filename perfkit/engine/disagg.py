"""Disaggregated serving: a prefill pool and a decode pool on consecutive chips, joined by a KV-cache transfer.

Each pool is an ordinary layout (its own degrees, ``replicas`` and ``batch_size``, the sequences it serves at
once, split over its replicas) and is priced by :func:`perfkit.engine.system.evaluate`, the same passes as an
aggregated deployment: no second formula for a prefill, a decode step or memory.

- *Placement.* The prefill pool takes chips ``[0, P)`` and the decode pool ``[P, P + D)`` of the hardware; a
  pool that does not fill a node shares it with the next.
- *Prefill pool.* A static prefill pass of each replica's share of the pool's batch (``prefill_s``, times the
  fitted ``prefill_pass_scale``: a prefill worker's pass against the aggregated engine's); it holds
  the prompts' KV cache only (``input_seq`` tokens each) until it is handed on. Its capacity is that of full
  passes: each replica packs its share of the batch, or as many prompts as ``prefill_max_tokens`` (the
  engines' token budget per pass) holds when requests queue, ``replicas x prompts / pass(prompts)``.
- *KV transfer.* One request's prompt KV cache, in the KV dtype, goes from the prefill chips to the decode
  chips that will hold it; every decode chip receives its own shard at once over its own link (the bytes one
  decode chip caches for one sequence of ``input_seq`` tokens). It is a point-to-point send
  (:func:`perfkit.engine.timing.handoff_seconds`): over the scale-up links where the decode chip shares a node
  (an NVLink server, an NVL72 rack) with the prefill pool, over the scale-out network otherwise; the time is
  the mean over the decode chips. The fitted :class:`TransferProfile` adds a per-request set-up cost and the
  share of the link's bandwidth a transfer reaches.
- *Decode pool.* A static decode step of each replica's share of the sequences decoding at the mean context
  (times the fitted ``decode_step_scale``: a decode worker's step against the aggregated engine's, which
  takes in what the data does not record, such as speculative decoding): TPOT is the decode pool's alone. Its memory is sized for the decode step (weights, the KV
  cache of ``input_seq + output_seq`` tokens of every request in flight, one decode step's activations).
- *Closed loop.* ``decode.batch_size`` requests are in flight (what a benchmark's concurrency sets) and cycle
  through both pools at a rate ``X`` (:func:`_closed_loop`): each waits in front of the prefill pool (a queue
  of passes at utilisation ``X / capacity``, Pollaczek-Khinchine, scaled by the fitted
  ``prefill_queue_scale``), is prefilled, handed off and decoded; ``n = X x output_seq x tpot(n)`` of them
  decode at once (Little's law), so the decode pool's step, TPOT, is priced at ``n`` sequences, not at the
  whole batch, when the prefill pool holds the rest. A request's TTFT is the profile's
  ``request_overhead_s`` + that wait + its prefill pass + the KV transfer. The throughput is ``output_seq x
  X``; ``limiting_pool`` is the pool with the smaller capacity (the decode pool's with every request
  decoding), and the response gives both pools' utilisation.

``evaluate_disaggregated`` returns the deployment's figures under the names of ``evaluate`` (num_chips and
the memory totals over both pools, the fullest chip of either, TTFT/TPOT as above) plus ``prefill.<figure>``
and ``decode.<figure>`` for each pool, ``kv_transfer_ms``, ``limiting_pool`` (an index into :data:`POOLS`) and
``code`` (the pools' structural bits or'ed, plus :data:`layout.NO_SCALEOUT` where the transfer must leave a
node of hardware without a scale-out network, :data:`layout.MAX_CHIPS` past the hardware's size).
"""
from __future__ import annotations

import numpy as np

from ..specs import HardwareSpec, ModelSpec, ServingProfile, TransferProfile
from . import kernel_time, layout, load, price, system
from .costs import Pass
from .timing import handoff_seconds

POOLS = np.array(["prefill", "decode"])
#: A pool's own figures (``prefill.<key>`` / ``decode.<key>`` of :func:`evaluate_disaggregated`).
POOL_FIGURES = ("num_chips", "ttft_ms", "tpot_ms", "throughput_tokens_s", "requests_s", "utilisation",
                "memory_per_chip_gb", "weight_memory_gb", "activation_memory_gb", "kv_cache_gb", "fits_on_hardware",
                "bottleneck", "code")


def evaluate_disaggregated(model: ModelSpec, hw: HardwareSpec, prefill_cfg, decode_cfg, profile: ServingProfile,
                           transfer: TransferProfile) -> dict[str, np.ndarray]:
    """The figures of a disaggregated deployment (see the module docstring), as arrays over the broadcast
    configurations. ``prefill_cfg`` and ``decode_cfg`` are engine configurations (``inputs.to_arrays``) of the
    two pools, each with its own ``batch_size``, ``replicas`` and layers and the same ``input_seq``,
    ``output_seq`` and ``kv_dtype``."""
    isl, osl = decode_cfg["input_seq"], decode_cfg["output_seq"]
    pre_cfg = {**_pool(prefill_cfg), "output_seq": np.zeros_like(osl)}
    dec_cfg = layout.with_spans(_pool(decode_cfg))
    pre = system.evaluate(model, hw, pre_cfg, profile)  # output_seq 0: the pool holds the prompts' KV only
    dec = system.evaluate(model, hw, dec_cfg, profile)
    dec = {**dec, **_decode_memory(model, hw, profile, dec_cfg)}
    dec["code"] = (dec["code"] & ~layout.DOES_NOT_FIT) | np.where(dec["fits_on_hardware"], 0, layout.DOES_NOT_FIT)

    pre_chips, dec_chips = pre["num_chips"], dec["num_chips"]
    chips = pre_chips + dec_chips
    transfer_s, crossing = _transfer(model, hw, profile, transfer, dec_cfg, pre_chips, dec_chips)

    prefill_s = transfer.prefill_pass_scale * pre["ttft_ms"] / 1e3
    in_flight = decode_cfg["batch_size"]
    pre_rate = _prefill_capacity(model, hw, profile, pre_cfg, transfer)  # requests/s the prefill pool serves
    loop = _closed_loop(model, hw, profile, dec_cfg, in_flight, pre_rate, prefill_s, transfer_s, transfer)
    tpot_s, rate, decoding, wait = loop["tpot_s"], loop["rate"], loop["decoding"], loop["wait_s"]
    dec_capacity = in_flight / (osl * loop["full_tpot_s"])  # requests/s with every slot decoding
    limiting = (dec_capacity < pre_rate).astype(np.int8)  # index into POOLS; a tie goes to prefill
    utilisation = rate / pre_rate
    ttft_s = profile.request_overhead_s + wait + prefill_s + transfer_s
    dec = {**dec, "tpot_ms": tpot_s * 1e3, "bottleneck": loop["bottleneck"]}
    pre = {**pre, "ttft_ms": prefill_s * 1e3}

    code = pre["code"] | dec["code"]
    if hw.scaleout_bytes_per_s is None:  # the hand-off has to leave a node: only a scale-out network can carry it
        code = code | np.where(crossing > 0, layout.NO_SCALEOUT, 0)
    if hw.max_chips is not None:
        code = code | np.where(chips > hw.max_chips, layout.MAX_CHIPS, 0)
    fits = pre["fits_on_hardware"] & dec["fits_on_hardware"]
    ttft_ms, tpot_ms = ttft_s * 1e3, dec["tpot_ms"]
    out = {
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "throughput_tokens_s": osl * rate,
        "decoding_sequences": decoding,
        "total_latency_ms": ttft_ms + osl * tpot_ms,
        "num_chips": chips,
        "num_nodes": layout.num_nodes(hw, chips),
        "fits_on_hardware": fits,
        "bottleneck": np.where(limiting == 1, dec["bottleneck"], pre["bottleneck"]),
        "hw_capacity_gb": dec["hw_capacity_gb"],
        "memory_per_chip_gb": np.maximum(pre["memory_per_chip_gb"], dec["memory_per_chip_gb"]),
        "kv_transfer_ms": transfer_s * 1e3,
        "kv_transfer_crossing": crossing,
        "prefill_wait_ms": wait * 1e3,
        "limiting_pool": limiting,
        "code": code,
    }
    for key in ("weight_memory_gb", "activation_memory_gb", "kv_cache_gb"):
        out[key] = pre[key] + dec[key]
    out["total_memory_gb"] = out["weight_memory_gb"] + out["activation_memory_gb"] + out["kv_cache_gb"]
    _, band = profile.bands(kernel_time.status(hw))  # a disaggregated deployment serves a closed loop
    for k in ("ttft", "tpot"):
        for q in ("p10", "p90"):
            out[f"{k}_ms_{q}"] = out[f"{k}_ms"] * band[f"{k}_{q}"]
    pools = {
        "prefill": {**pre, "tpot_ms": np.full(np.shape(prefill_s), np.nan), "requests_s": pre_rate,
                    "throughput_tokens_s": pre_rate * isl, "utilisation": utilisation},
        "decode": {**dec, "ttft_ms": np.full(np.shape(tpot_s), np.nan), "requests_s": rate,
                   "throughput_tokens_s": decoding * 1e3 / tpot_ms, "utilisation": decoding / in_flight},
    }
    for name, figures in pools.items():
        for key in POOL_FIGURES:
            out[f"{name}.{key}"] = figures[key]
    if "arrival_rate_qps" in decode_cfg:  # an open-loop load (validated to come with continuous batching)
        loaded = _open_loop(model, hw, profile, transfer, {**dec_cfg, **_load_fields(decode_cfg)}, dec["slots"],
                           prefill_s, pre_rate, transfer_s)
        out.update(loaded)
        out["prefill.utilisation"] = loaded["load_prefill_utilisation"]
        out["decode.utilisation"] = loaded["load_decode_utilisation"]
    served = out["load_output_tokens_s"] if "load_output_tokens_s" in out else out["throughput_tokens_s"]
    out.update(price.per_output_token(hw, chips, served, decode_cfg.get("price_per_chip_hour")))
    return out


def _open_loop(model, hw, profile, transfer: TransferProfile, cfg, slots, prefill_s, pre_rate, transfer_s) -> dict:
    """The ``load_*`` figures of Poisson arrivals at ``arrival_rate_qps`` (over the deployment).

    - The prefill pool is a queue of passes at utilisation ``rho = rate / capacity``: the Pollaczek-Khinchine
      mean wait of a deterministic service, ``prefill_s x rho / (2 (1 - rho))``, with an exponential tail,
      ``P(W > t) = rho exp(-t rho / mean)``, for its quantiles. The fitted ``prefill_queue_scale`` is left out:
      like the agg profile's ``ramp`` it describes the bursts of closed-loop benchmarks, not Poisson arrivals.
    - The decode pool is :func:`perfkit.engine.load.open_loop` of its replicas, with no prompt tokens in its
      steps (the prompts arrive prefilled): its TPOT percentiles, and its wait for a KV slot and the step in
      flight, which adds to the TTFT (quantiles added: an upper bound, the two waits rarely peak together).
    - The capacity is the smaller pool's; ``bound`` says which (``prefill``, or the decode pool's ``decode`` /
      ``kv_cache``); ``load_prefill_utilisation`` / ``load_decode_utilisation`` are each pool's share used.
    """
    rate = np.asarray(cfg["arrival_rate_qps"], dtype=float)
    isl, osl = cfg["input_seq"], cfg["output_seq"]
    replicas = layout.replicas(cfg)
    batch = np.ceil(cfg["batch_size"] / replicas)
    cap = np.minimum(batch, np.ceil(slots / replicas)) if slots is not None else batch

    def decode(n):
        return transfer.decode_step_scale * _decode_step(model, hw, profile, cfg, n * replicas)["seconds"]

    prices = load.StepPrices(decode=decode, prompt_token_s=np.zeros_like(prefill_s), chunk_tokens=1e18,
                             running_cap=cap, request_overhead_s=0.0)
    dec = load.open_loop(prices, rate, isl, osl, cfg.get("input_seq_cv", 0.0), cfg.get("output_seq_cv", 0.0),
                         replicas)
    rho = rate / pre_rate
    ok = rho < 1.0
    rho_c = np.minimum(rho, 1.0 - 1e-9)
    wait = prefill_s * rho_c / (2.0 * (1.0 - rho_c))
    theta = wait / np.maximum(rho_c, 1e-300)
    base = (profile.request_overhead_s + prefill_s + transfer_s) * 1e3
    out = dict(dec)
    out["load_ttft_ms_mean"] = base + wait * 1e3 + dec["load_ttft_ms_mean"]
    for p in (50, 90, 99):
        tail = 1.0 - p / 100.0
        quantile = np.where(rho_c > tail, theta * np.log(np.maximum(rho_c, 1e-300) / tail), 0.0)
        out[f"load_ttft_ms_p{p}"] = base + quantile * 1e3 + dec[f"load_ttft_ms_p{p}"]
    out["load_e2e_ms_mean"] = dec["load_e2e_ms_mean"] + base + wait * 1e3
    out["load_e2e_ms_p99"] = dec["load_e2e_ms_p99"] + base + quantile * 1e3
    capacity = np.minimum(pre_rate, dec["load_capacity_qps"])
    saturated = dec["load_saturated"] | ~ok
    inf = np.where(saturated, np.inf, 1.0)
    for k in ("load_ttft_ms_mean", "load_ttft_ms_p50", "load_ttft_ms_p90", "load_ttft_ms_p99", "load_e2e_ms_mean",
              "load_e2e_ms_p99"):
        out[k] = out[k] * inf
    achieved = np.minimum(rate, capacity)
    out.update({
        "load_achieved_requests_s": achieved,
        "load_output_tokens_s": achieved * osl,
        "load_utilisation": rate / capacity,
        "load_capacity_qps": capacity,
        "load_bound": np.where(pre_rate < dec["load_capacity_qps"], "prefill", dec["load_bound"]),
        "load_saturated": saturated,
        "load_prefill_utilisation": np.minimum(rho, 1.0),
        "load_decode_utilisation": np.minimum(rate / dec["load_capacity_qps"], 1.0),
    })
    return out


#: Request fields of the whole deployment (its open-loop load and price), kept out of each pool's evaluation.
DEPLOYMENT_FIELDS = ("arrival_rate_qps", "input_seq_cv", "output_seq_cv", "price_per_chip_hour")


def _pool(cfg) -> dict:
    """One pool's configuration for :func:`system.evaluate`: static, without the deployment's load and price."""
    return {**{k: v for k, v in cfg.items() if k not in DEPLOYMENT_FIELDS}, "serving_mode": np.int64(system.STATIC)}


def _load_fields(cfg) -> dict:
    return {k: cfg[k] for k in DEPLOYMENT_FIELDS if k in cfg}


#: Fixed-point rounds of the closed loop (geometric damping: the decoding count settles within 1e-3 in ~8).
LOOP_ROUNDS = 10


def _prefill_capacity(model, hw, profile, cfg, transfer):
    """Requests/s of the prefill pool with full passes: each replica packs up to its share of the pool's batch,
    or more prompts while they fit ``prefill_max_tokens`` (the engine's token budget per pass)."""
    replicas, replica_chips = layout.replicas(cfg), layout.replica_chips(cfg)
    isl = cfg["input_seq"]
    most = np.maximum(np.ceil(cfg["batch_size"] / replicas), np.floor(transfer.prefill_max_tokens / isl))
    full = system._pipelined(model, hw, profile, layout.with_spans(cfg), Pass(most, isl, isl, isl, prefill=True),
                             replica_chips)["seconds"] * transfer.prefill_pass_scale
    return replicas * most / full


def _closed_loop(model, hw, profile, cfg, in_flight, pre_rate, prefill_s, transfer_s, transfer) -> dict:
    """The closed loop of ``N = in_flight`` requests through the prefill pool (``pre_rate`` requests/s, passes
    of ``prefill_s``) and the decode pool of ``cfg``, in the mean (Little's law):

    - a request's cycle is ``W + prefill_s + transfer_s + osl x tpot(n)`` and ``N = X x cycle`` at rate ``X``;
    - ``W``, the wait in the prefill pool, is that of a queue of passes at utilisation ``rho = X / pre_rate``:
      ``prefill_queue_scale x prefill_s x rho / (2 (1 - rho))`` (Pollaczek-Khinchine for a deterministic
      service), so the loop's rate stays below the pool's capacity and, as ``N`` grows past it, the extra
      requests wait in front of the prefill pool;
    - ``n = X x osl x tpot(n)`` sequences decode at once, ``tpot(n)`` the decode pool's static step at ``n``
      sequences times ``decode_step_scale``.

    ``X`` solves the first two by bisection (the cycle grows with ``X``), ``n`` by damped fixed-point rounds."""
    osl = cfg["output_seq"]
    in_flight = np.asarray(in_flight, dtype=float)
    decoding = in_flight
    q = transfer.prefill_queue_scale * prefill_s / 2.0
    full = transfer.decode_step_scale * _decode_step(model, hw, profile, cfg, in_flight)["seconds"]
    tpot = full
    for _ in range(LOOP_ROUNDS):
        rate = _loop_rate(in_flight, prefill_s + transfer_s + osl * tpot, pre_rate, q)
        target = np.clip(rate * osl * tpot, 1.0, in_flight)
        decoding = np.sqrt(decoding * target)
        step = _decode_step(model, hw, profile, cfg, decoding)
        tpot = transfer.decode_step_scale * step["seconds"]
    cycle = prefill_s + transfer_s + osl * tpot
    rate = _loop_rate(in_flight, cycle, pre_rate, q)
    totals = [step["parts"][k] for k in ("compute", "memory", "communication")]
    return {"tpot_s": tpot, "full_tpot_s": full, "rate": rate, "decoding": decoding,
            "wait_s": np.maximum(in_flight / rate - cycle, 0.0),
            "bottleneck": system._largest(*totals, shape=np.shape(step["seconds"]))}


#: Bisection rounds of the loop's rate (2^-50 of the bracket: below a double's resolution of the rate).
RATE_ROUNDS = 50


def _loop_rate(in_flight, cycle, capacity, q):
    """The rate ``X`` of a closed loop of ``in_flight`` requests whose cycle is ``cycle + q rho / (1 - rho)``
    at ``rho = X / capacity``: the root of ``X (cycle + wait(X)) = in_flight`` below both ``capacity`` and
    ``in_flight / cycle`` (the left side grows with ``X``)."""
    lo = np.zeros(np.broadcast(in_flight, cycle, capacity).shape)
    hi = np.minimum(capacity, in_flight / cycle) + lo
    for _ in range(RATE_ROUNDS):
        x = (lo + hi) / 2.0
        rho = x / capacity
        over = x * (cycle + q * rho / (1.0 - rho)) > in_flight
        lo, hi = np.where(over, lo, x), np.where(over, x, hi)
    return (lo + hi) / 2.0


def _decode_step(model, hw, profile, cfg, decoding) -> dict:
    """One static decode step of the decode pool with ``decoding`` sequences over all its replicas."""
    isl, osl = cfg["input_seq"], cfg["output_seq"]
    batch = np.ceil(decoding / layout.replicas(cfg))
    p = Pass(batch, 1, isl + osl / 2.0, isl + osl, prefill=False)
    return system._pipelined(model, hw, profile, cfg, p, layout.replica_chips(cfg))


def _decode_memory(model, hw, profile, cfg) -> dict:
    """The decode pool's memory: its step's activations (``evaluate`` sizes them for a prefill of the whole
    batch, which a decode pool never runs), the same weights and KV cache (:func:`system._memory`)."""
    replicas, replica_chips = layout.replicas(cfg), layout.replica_chips(cfg)
    batch = np.ceil(cfg["batch_size"] / replicas)
    isl, osl = cfg["input_seq"], cfg["output_seq"]
    step = system._pipelined(model, hw, profile, cfg, Pass(batch, 1, isl + osl / 2.0, isl + osl, prefill=False),
                             replica_chips)
    mem = system._memory(model, hw, cfg, step["costs"], replicas * replica_chips, system._kv_scale(cfg, batch))
    per_chip = mem["chip_weights"] + mem["chip_kv"] + mem["chip_activations"]
    return {"weight_memory_gb": mem["weights"] / 1e9, "activation_memory_gb": mem["activations"] / 1e9,
            "kv_cache_gb": mem["kv"] / 1e9, "memory_per_chip_gb": per_chip / 1e9,
            "fits_on_hardware": per_chip <= hw.memory_bytes,
            # sequences whose KV cache fits at once (system._running): the open-loop load's KV slots
            "slots": system._running(hw, profile, cfg, batch, mem) * replicas}


def _kv_bytes_per_chip(model: ModelSpec, hw: HardwareSpec, profile: ServingProfile, decode_cfg) -> np.ndarray:
    """Bytes of one request's prompt KV cache (``input_seq`` tokens, every layer of one pipeline stage, in the
    KV dtype) that one decode chip receives: what it caches for one sequence."""
    cfg = layout.with_spans(decode_cfg)
    isl = cfg["input_seq"]
    one = np.ones_like(isl)
    costs = system._pass(model, hw, profile, cfg, Pass(one, one, isl, isl, prefill=False))["costs"]
    return np.ceil(model.num_layers / cfg["pipeline_parallel"]) * costs["attention"].kv_bytes


def _transfer(model, hw, profile, transfer: TransferProfile, decode_cfg, pre_chips, dec_chips):
    """Seconds of one request's KV hand-off, and the share of the decode chips outside the prefill pool's
    nodes (those receive over the scale-out network)."""
    node = hw.chips_per_node
    shared_end = -(-pre_chips // node) * node  # the last chip of the prefill pool's last node
    outside = np.clip(pre_chips + dec_chips - shared_end, 0, dec_chips)
    crossing = outside / dec_chips
    nbytes = _kv_bytes_per_chip(model, hw, profile, decode_cfg) / transfer.kv_transfer_efficiency
    inside = handoff_seconds(hw, nbytes, 1, 0)
    across = handoff_seconds(hw, nbytes, 1, 1) if hw.scaleout_bytes_per_s is not None else np.nan
    seconds = np.where(crossing > 0, crossing * across + (1 - crossing) * inside, inside)
    return transfer.kv_transfer_overhead_s + seconds, crossing
