"""The three responses of the stateless API as Python functions (one engine call each)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import catalog
from .dtypes import DTYPES
from .engine import layout
from .engine.system import BOTTLENECKS, evaluate, evaluate_layer
from .errors import PerfkitError
from .inputs import layer_config, system_config, to_arrays


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
}


def system_metrics(request: dict) -> dict:
    """The body of ``POST /config/system-metrics``: TTFT, TPOT, throughput, memory and the bottleneck.

    >>> r = system_metrics({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": 1, "input_seq": 1024, "output_seq": 128})
    >>> r["system"]["bottleneck"], r["system"]["fits_on_hardware"]
    ('memory', True)
    """
    flat = system_config(request)
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    profile = catalog.serving_profile(flat["serving_engine"])
    figures = evaluate(model, hw, to_arrays(flat), profile)
    out = {k: v.item() if isinstance(v, (np.ndarray, np.generic)) else v for k, v in figures.items()}
    _raise_structural(model, hw, int(out["code"]), lambda: {**flat, **out, **_chips(flat)})
    return system_response(out, notes(model, hw, flat), uncertainty=flat["uncertainty"])


def system_response(row: dict, notes: list[str], uncertainty: bool = False) -> dict:
    """Nest one configuration's figures (a dict of scalars, e.g. a sweep row) as the seed's response;
    with ``uncertainty`` add the p10-p90 bands of TTFT and TPOT (a documented extra key)."""
    body = {
        "ttft_ms": float(row["ttft_ms"]),
        "tpot_ms": float(row["tpot_ms"]),
        "throughput_tokens_s": float(row["throughput_tokens_s"]),
        "total_latency_ms": float(row["total_latency_ms"]),
        "memory": {k: float(row[k]) for k in ("weight_memory_gb", "activation_memory_gb", "kv_cache_gb",
                                              "total_memory_gb", "memory_per_chip_gb", "hw_capacity_gb")},
        "system": {
            "num_chips": int(row["num_chips"]),
            "bottleneck": _bottleneck_name(row["bottleneck"]),
            "fits_on_hardware": bool(row["fits_on_hardware"]),
            "num_nodes": int(row["num_nodes"]),
            "notes": notes,
        },
    }
    if uncertainty:
        body["uncertainty"] = {k: float(row[k]) for k in ("ttft_ms_p10", "ttft_ms_p90", "tpot_ms_p10", "tpot_ms_p90")}
    return body


def _bottleneck_name(value) -> str:
    """The engine gives an index into ``BOTTLENECKS``; a sweep row already holds the name."""
    return value if isinstance(value, str) else str(BOTTLENECKS[int(value)])


def layer_metrics(request: dict) -> dict:
    """The body of ``POST /config/layer-metrics``: one layer type's memory, FLOPs and bottleneck shares.

    >>> r = layer_metrics({"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    ...                    "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
    ...                    "batch_size": 1, "seq_length": 2048, "dtype": "bf16", "tensor_parallel": 4})
    >>> r["num_instances"], r["num_chips"]
    (22, 4)
    """
    flat, layer_type, decode = layer_config(request)
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    out = {k: (v.item() if isinstance(v, (np.ndarray, np.generic)) else v)
           for k, v in evaluate_layer(model, hw, to_arrays(flat), layer_type, decode).items()}
    # the request names this layer's settings without the "layers.<type>." prefix of the flat paths
    _raise_structural(model, hw, int(out["code"]), lambda: {**flat, **_chips(flat)},
                      strip=f"layers.{layer_type}.")
    n = out["num_instances"]
    offered = layout.available_parallelism(model, layer_type)
    return {
        "layer_type": layer_type,
        "num_instances": n,
        "num_chips": int(out["num_chips"]),
        "parallelism": {d: flat[f"layers.{layer_type}.{d}"] for d in layout.DEGREES
                        if d in offered or d in ("tensor_parallel", "context_parallel", "sequence_parallel")},
        "memory": {
            "weights_per_chip_gb": out["weights_per_chip_gb"],
            "activation_per_chip_gb": out["activation_per_chip_gb"],
            "kv_cache_per_chip_gb": out["kv_cache_per_chip_gb"],
            "total_weights_gb": out["weights_per_chip_gb"] * n,
            "total_activation_gb": out["activation_per_chip_gb"] * n,
            "total_kv_cache_gb": out["kv_cache_per_chip_gb"] * n,
        },
        "compute": {
            "flops_per_chip_tflops": out["flops_per_chip_tflops"],
            "total_flops_tflops": out["flops_per_chip_tflops"] * n,
        },
        "bottleneck": {
            "compute_pct": out["compute_pct"],
            "memory_pct": out["memory_pct"],
            "communication_pct": out["communication_pct"],
        },
        "phase": "decode" if decode else "prefill",
        "time_per_instance_ms": out["time_ms"],
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


def notes(model, hw, flat: dict) -> list[str]:
    """Plain-language caveats of one configuration: dtype fallbacks and contexts past the model's limit."""
    out = []
    for layer_type in layout.LAYER_TYPES:
        dtype = flat[f"layers.{layer_type}.dtype"]
        compute = hw.compute_dtype(dtype)
        if compute and compute != dtype and not (dtype == "int4" and compute == "int8"):
            out.append(f"{layer_type}: {hw.chip} has no faster native {dtype} path; computed in {compute} "
                       f"(weights stored in {dtype})")
    replicas = flat.get("replicas", 1)
    if replicas > 1:
        out.append(f"{replicas} replicas of the layout: each serves {-(-flat['batch_size'] // replicas)} of the "
                   f"{flat['batch_size']} sequences; throughput and memory totals are summed over them")
    context = flat.get("input_seq", 0) + flat.get("output_seq", 0)
    if model.max_position_embeddings and context > model.max_position_embeddings:
        out.append(f"context {context} exceeds {model.name}'s max_position_embeddings "
                   f"{model.max_position_embeddings}")
    return out
