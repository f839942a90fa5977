"""The three responses of the stateless API as Python functions (one engine call each)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import catalog
from .dtypes import DTYPES
from .engine import kernel_time, layout, load
from .engine.system import BOTTLENECKS, evaluate, evaluate_layer
from .errors import PerfkitError
from .inputs import layer_config, system_config, to_arrays
from .inputs_disagg import is_disaggregated

#: Significant digits of every float in a response: enough for the engine's full double precision to
#: survive a round trip to 1e-15, few enough that JSON shows ``0.167247872`` rather than the last-bit noise
#: ``0.16724787200000002`` of a product. DataFrames (sweeps) keep every bit. The seed's derived figures
#: (``total_latency_ms``, ``throughput_tokens_s``, ``total_memory_gb``, a layer's ``total_*``) are computed
#: from the rounded parts and rounded again, so their identities hold exactly at this precision:
#: ``total_latency_ms == rounded(ttft_ms + output_seq * tpot_ms)``.
SIGNIFICANT_DIGITS = 15
#: How many doublings of tensor parallelism or pipeline stages a "does not fit" note tries (up to 1024x).
FIT_DOUBLINGS = 10


def rounded(value: float) -> float:
    """``value`` to :data:`SIGNIFICANT_DIGITS` significant digits (what every float of a response carries).

    >>> rounded(0.007602176 * 22)
    0.167247872
    """
    return float(_ROUNDING % value)


_ROUNDING = f"%.{SIGNIFICANT_DIGITS}g"  # printf-style: a little faster than an f-string, the same digits


def _plain(figures: dict) -> dict:
    """An engine result's scalars as Python numbers (``float(np.float64)`` is ten times faster than
    ``.item()``)."""
    out = {}
    for key, value in figures.items():
        convert = _PLAIN.get(type(value))
        out[key] = convert(value) if convert else value.item() if isinstance(value, (np.ndarray, np.generic)) else value
    return out


_PLAIN = {np.float64: float, np.int64: int, np.int8: int, np.bool_: bool}


def layers(model_id: str) -> dict:
    """The body of ``GET /api/layers?model_id=...``: each layer type, how many the model stacks, and the
    parallelism degrees and dtypes it accepts.

    >>> body = layers("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    >>> body["layers"][0]["type"], body["layers"][0]["count"]
    ('attention', 22)
    """
    model = catalog.model_spec(model_id)
    out = []
    for layer_type in layout.LAYER_TYPES:
        entry = {
            "type": layer_type,
            "count": 1 if layer_type == "embedding" else model.num_layers,
            "available_parallelism": list(layout.available_parallelism(model, layer_type)),
            "available_dtypes": list(DTYPES),
        }
        if layer_type == "feedforward" and model.is_moe:
            entry["experts"] = {"num_experts": model.num_experts, "experts_per_token": model.experts_per_token,
                                "num_shared_experts": model.num_shared_experts,
                                "num_moe_layers": model.num_moe_layers}
        if layer_type == "attention":
            entry["kind"] = "mla" if model.is_mla else "gqa"
        out.append(entry)
    return {"layers": out, "deployment": DEPLOYMENT}


#: How the whole deployment is laid out around the per-layer degrees (documented in ``GET /api/layers``).
DEPLOYMENT = {
    "pipeline_parallel": "pipeline stages: every layer type's chips are multiplied by it; each stage holds 1/pp "
                         "of the layers and pp micro-batches are in flight (per-token latency grows with the "
                         "stage hand-offs, throughput with the stages working at once)",
    "replicas": "whole copies of the layout: chips = replicas x the layout's chips; batch_size is the whole "
                "deployment's sequences, split evenly over the replicas; throughput and memory totals are "
                "summed over replicas, latency is that of one replica",
    "disaggregated": "separate prefill and decode pools on consecutive chips, each its own layers, replicas and "
                     "batch_size (then no top-level layers, batch_size, replicas or pipeline_parallel): TTFT through "
                     "the prefill pool and the KV-cache transfer, TPOT from the decode pool, throughput of the "
                     "slower pool (README, 'Disaggregated serving')",
}


def system_metrics(request: dict) -> dict:
    """The body of ``POST /config/system-metrics``: TTFT, TPOT, throughput, memory and the bottleneck.

    >>> r = system_metrics({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": 1, "input_seq": 1024, "output_seq": 128})
    >>> r["system"]["bottleneck"], r["system"]["fits_on_hardware"]
    ('memory', True)
    """
    if is_disaggregated(request):  # two pools: perfkit/api_disagg.py
        from . import api_disagg

        return api_disagg.system_metrics(request)
    flat = system_config(request)
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    profile = catalog.serving_profile(flat["serving_engine"])
    figures = evaluate(model, hw, to_arrays(flat), profile)
    out = _plain(figures)
    _raise_structural(model, hw, int(out["code"]), lambda: {**flat, **out, **_chips(flat)})
    advice = [] if out["fits_on_hardware"] else [fit_note(model, hw, flat, profile, out)]
    caveats = advice + notes(model, hw, flat)
    if out.get("load_saturated"):
        caveats.append(load.saturation_note({**flat, **out}))
    return system_response({**flat, **out}, caveats, uncertainty=flat["uncertainty"])


def system_response(row: dict, notes: list[str], uncertainty: bool = False) -> dict:
    """Nest one configuration's figures (a dict of scalars with ``batch_size`` and ``output_seq``, e.g. a
    sweep row) as the seed's response, floats to :data:`SIGNIFICANT_DIGITS`; with ``uncertainty`` add the
    p10-p90 bands of TTFT and TPOT (a documented extra key)."""
    r = rounded
    ttft, tpot = r(row["ttft_ms"]), r(row["tpot_ms"])
    memory = {k: r(row[k]) for k in ("weight_memory_gb", "activation_memory_gb", "kv_cache_gb")}
    memory["total_memory_gb"] = r(memory["weight_memory_gb"] + memory["activation_memory_gb"]
                                  + memory["kv_cache_gb"])
    memory.update({k: r(row[k]) for k in ("memory_per_chip_gb", "hw_capacity_gb")})
    body = {
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "throughput_tokens_s": r(int(row["batch_size"]) * 1000.0 / tpot),
        "total_latency_ms": r(ttft + int(row["output_seq"]) * tpot),
        "memory": memory,
        "system": {
            "num_chips": int(row["num_chips"]),
            "bottleneck": _bottleneck_name(row["bottleneck"]),
            "fits_on_hardware": bool(row["fits_on_hardware"]),
            "num_nodes": int(row["num_nodes"]),
            "notes": notes,
        },
    }
    if "usd_per_million_output_tokens" in row or "load_saturated" in row:  # the seed's body stays as it was
        body["cost"] = {k: _finite(row[k]) for k in ("joules_per_output_token", "usd_per_million_output_tokens")
                        if k in row}
    if "load_saturated" in row:
        body["load"] = {key: _finite(row["load_" + key]) for key in load.FIELDS if key not in ("bound", "saturated")}
        body["load"]["bound"] = str(row["load_bound"])
        body["load"]["saturated"] = bool(row["load_saturated"])
    if uncertainty:
        body["uncertainty"] = {k: r(row[k]) for k in ("ttft_ms_p10", "ttft_ms_p90", "tpot_ms_p10", "tpot_ms_p90")}
    return body


def _finite(value):
    """A float, or ``None`` where the figure is unbounded (a saturated queue): JSON has no infinity."""
    value = float(value)
    return rounded(value) if np.isfinite(value) else None


def _bottleneck_name(value) -> str:
    """The engine gives an index into ``BOTTLENECKS``; a sweep row already holds the name."""
    return value if isinstance(value, str) else str(BOTTLENECKS[int(value)])


def layer_metrics(request: dict) -> dict:
    """The body of ``POST /config/layer-metrics``: one layer type's memory, FLOPs and bottleneck shares;
    beyond the seed, ``phase``, ``time_per_instance_ms`` and ``hbm_traffic_per_instance_gb`` (the bytes one
    instance moves through HBM on one chip: weights read, activations, KV cache read or written).

    >>> r = layer_metrics({"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    ...                    "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
    ...                    "batch_size": 1, "seq_length": 2048, "dtype": "bf16", "tensor_parallel": 4})
    >>> r["num_instances"], r["num_chips"]
    (22, 4)
    """
    flat, layer_type, decode = layer_config(request)
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    out = _plain(evaluate_layer(model, hw, to_arrays(flat), layer_type, decode,
                                catalog.serving_profile(flat.get("serving_engine", "generic"))))
    # the request names this layer's settings without the "layers.<type>." prefix of the flat paths
    _raise_structural(model, hw, int(out["code"]), lambda: {**flat, **_chips(flat)},
                      strip=f"layers.{layer_type}.")
    n = out["num_instances"]
    offered = layout.available_parallelism(model, layer_type)
    r = rounded
    per_chip = {k: r(out[f"{k}_per_chip_gb"]) for k in ("weights", "activation", "kv_cache")}
    flops = r(out["flops_per_chip_tflops"])
    return {
        "layer_type": layer_type,
        "num_instances": n,
        "num_chips": int(out["num_chips"]),
        "parallelism": {d: flat[f"layers.{layer_type}.{d}"] for d in layout.DEGREES
                        if d in offered or d in ("tensor_parallel", "context_parallel", "sequence_parallel")},
        "memory": {
            **{f"{k}_per_chip_gb": v for k, v in per_chip.items()},
            **{f"total_{k}_gb": r(v * n) for k, v in per_chip.items()},
        },
        "compute": {
            "flops_per_chip_tflops": flops,
            "total_flops_tflops": r(flops * n),
        },
        "bottleneck": {k: r(out[k]) for k in ("compute_pct", "memory_pct", "communication_pct")},
        "phase": "decode" if decode else "prefill",
        "time_per_instance_ms": r(out["time_ms"]),
        "hbm_traffic_per_instance_gb": r(out["hbm_traffic_per_chip_gb"]),
    }


def _chips(flat: dict) -> dict:
    arrays = to_arrays(flat)
    out = {f"chips.{t}": int(layout.layer_chips(arrays, t)) for t in layout.LAYER_TYPES}
    out["num_chips"] = int(layout.num_chips(arrays))
    return out


def _raise_structural(model, hw, code: int, row: Callable[[], dict], strip: str = "") -> None:
    """Raise the first structural problem in ``code``; ``row()`` (built only then) holds its scalars."""
    if not code & layout.STRUCTURAL:
        return
    problems = layout.reasons(model, hw, code & layout.STRUCTURAL, row())
    if problems:
        field, message = problems[0]
        if strip and field.startswith(strip):
            field = field[len(strip):]
        raise PerfkitError(message, field=field)


def fit_note(model, hw, flat: dict, profile, figures: dict) -> str:
    """"does not fit: X GB per chip > Y GB", and the smallest chip count of the same layout family that fits:
    the layout with every tensor-parallel degree doubled, or the pipeline stages doubled, up to
    :data:`FIT_DOUBLINGS` times (the whole family is one engine call)."""
    capacity = hw.memory_bytes
    # decimal GB, as every figure (a chip sold as "80GB" holds 80 GiB: README, "What the numbers mean")
    head = f"does not fit: {figures['memory_per_chip_gb']:.1f} GB per chip > {capacity / 1e9:.1f} GB of one {hw.chip}"
    base = to_arrays(flat)
    scale = 2 ** np.arange(1, FIT_DOUBLINGS + 1)
    ones = np.ones_like(scale)
    tp_keys = [f"layers.{t}.tensor_parallel" for t in layout.LAYER_TYPES
               if "tensor_parallel" in layout.available_parallelism(model, t)]
    family = dict(base)
    for key in tp_keys:  # rows 0..n-1: tensor parallelism doubled; rows n..2n-1: pipeline stages doubled
        family[key] = np.concatenate([base[key] * scale, base[key] * ones])
    family["pipeline_parallel"] = np.concatenate([base["pipeline_parallel"] * ones,
                                                  base["pipeline_parallel"] * scale])
    out = evaluate(model, hw, family, profile)
    runs = np.flatnonzero((out["code"] & (layout.STRUCTURAL | layout.DOES_NOT_FIT)) == 0)
    if not len(runs):
        most = int(np.max(out["num_chips"]))
        return (f"{head}; no doubling of its tensor parallelism or pipeline stages up to {most} chips fits "
                f"on {hw.name} (try fewer sequences, shorter ones, or a smaller dtype)")
    best = runs[np.argmin(out["num_chips"][runs])]  # the first of equals: tensor parallelism
    chips, per_chip = int(out["num_chips"][best]), float(out["memory_per_chip_gb"][best])
    if best < FIT_DOUBLINGS:
        change = ", ".join(f"{key.split('.')[1]} {int(base[key])} -> {int(family[key][best])}" for key in tp_keys)
        how = f"tensor_parallel x{int(scale[best])} ({change})"
    else:
        how = f"pipeline_parallel {int(base['pipeline_parallel'])} -> {int(family['pipeline_parallel'][best])}"
    return f"{head}; the smallest layout of this family that fits: {how}, {chips} chips at {per_chip:.1f} GB per chip"


def notes(model, hw, flat: dict) -> list[str]:
    """Plain-language caveats of one configuration: dtype fallbacks and contexts past the model's limit."""
    out = []
    for layer_type in layout.LAYER_TYPES:
        dtype = flat[f"layers.{layer_type}.dtype"]
        compute = hw.compute_dtype(dtype)
        if compute and compute != dtype and (dtype, compute) not in (("int4", "int8"), ("fp8_block", "fp8")):
            out.append(f"{layer_type}: {hw.chip} has no faster native {dtype} path; computed in {compute} "
                       f"(weights stored in {dtype})")
    status = kernel_time.status(hw)
    if status != "fitted":
        how = ("sourced from public microbenchmarks on a fitted chip's curve shapes" if status == "sourced"
               else "priors of its efficiency block")
        out.append(f"{hw.chip} is not kernel-calibrated (no measured kernel tables): its kernel models are "
                   f"{how}, and its uncertainty band is the wider '{status}' one")
    replicas = flat.get("replicas", 1)
    if replicas > 1:
        out.append(f"{replicas} replicas of the layout: each serves {-(-flat['batch_size'] // replicas)} of the "
                   f"{flat['batch_size']} sequences; throughput and memory totals are summed over them")
    context = flat.get("input_seq", 0) + flat.get("output_seq", 0)
    if model.max_position_embeddings and context > model.max_position_embeddings:
        out.append(f"context {context} exceeds {model.name}'s max_position_embeddings "
                   f"{model.max_position_embeddings}")
    return out
