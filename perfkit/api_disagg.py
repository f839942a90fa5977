"""The system-metrics response of a disaggregated deployment (a request with ``disaggregated``): one engine
call (:func:`perfkit.engine.disagg.evaluate_disaggregated`), nested like the aggregated response plus the
documented ``disaggregated`` object."""
from __future__ import annotations

import numpy as np

from . import catalog
from .engine import layout, load
from .engine.disagg import POOL_FIGURES, POOLS, evaluate_disaggregated
from .errors import PerfkitError
from .inputs import to_arrays
from .inputs_disagg import POOL_NAMES, disaggregated_config

#: The keys of each pool's object in the response (``disaggregated.prefill`` / ``disaggregated.decode``).
POOL_KEYS = ("num_chips", "replicas", "batch_size", "ttft_ms", "tpot_ms", "throughput_tokens_s", "requests_s",
             "utilisation", "memory_per_chip_gb", "weight_memory_gb", "activation_memory_gb", "kv_cache_gb",
             "fits_on_hardware", "bottleneck")


def evaluate_request(request: dict):
    """The checked pool configurations, the specs and the engine's figures (scalars) of a disaggregated
    request; structural problems raise :class:`PerfkitError` naming the pool's field."""
    pre_flat, dec_flat = disaggregated_config(request)
    model = catalog.model_spec(dec_flat["model_id"])
    hw = catalog.hardware_spec(dec_flat["hardware_config"])
    profile = catalog.serving_profile(dec_flat["serving_engine"])
    transfer = catalog.transfer_profile(dec_flat["serving_engine"])
    figures = evaluate_disaggregated(model, hw, to_arrays(pre_flat), to_arrays(dec_flat), profile, transfer)
    out = {k: v.item() if isinstance(v, (np.ndarray, np.generic)) else v for k, v in figures.items()}
    _raise_structural(model, hw, out, pre_flat, dec_flat)
    return pre_flat, dec_flat, model, hw, out


def system_metrics(request: dict) -> dict:
    """The body of ``POST /config/system-metrics`` for a disaggregated request: the deployment's figures
    (both pools' chips and memory; TTFT through the prefill pool and the KV transfer; TPOT of the decode pool;
    the slower pool's throughput) and ``disaggregated``: ``limiting_pool``, ``kv_transfer_ms``,
    ``prefill_wait_ms``, ``kv_transfer_scaleout_share`` and each pool's own figures.

    >>> layers = {"all": {}}
    >>> r = system_metrics({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...     "input_seq": 2048, "output_seq": 256, "disaggregated": {
    ...         "prefill": {"replicas": 2, "batch_size": 2, "layers": {"attention": {"tensor_parallel": 1}}},
    ...         "decode": {"batch_size": 64, "layers": {"attention": {"tensor_parallel": 2},
    ...                                                   "feedforward": {"tensor_parallel": 2}}}}})
    >>> r["system"]["num_chips"], r["disaggregated"]["limiting_pool"]
    (4, 'decode')
    """
    from .api import notes, rounded, system_response

    pre_flat, dec_flat, model, hw, out = evaluate_request(request)
    caveats = [_fit_note(name, hw, out) for name in POOL_NAMES if not out[f"{name}.fits_on_hardware"]]
    caveats += notes(model, hw, {**dec_flat, "replicas": 1})
    if out.get("load_saturated"):
        caveats.append(load.saturation_note({**dec_flat, **out}))
    row = {**out, "batch_size": dec_flat["batch_size"], "output_seq": dec_flat["output_seq"]}
    body = system_response(row, caveats, uncertainty=dec_flat["uncertainty"])
    body["throughput_tokens_s"] = rounded(out["throughput_tokens_s"])  # the slower pool's, not the decode batch's
    pools = {}
    for name, flat in zip(POOL_NAMES, (pre_flat, dec_flat)):
        figures = {"replicas": flat["replicas"], "batch_size": flat["batch_size"],
                   **{k: out[f"{name}.{k}"] for k in POOL_FIGURES}}
        pools[name] = _pool_object(figures)
    body["disaggregated"] = {
        "limiting_pool": str(POOLS[int(out["limiting_pool"])]),
        "kv_transfer_ms": rounded(out["kv_transfer_ms"]),
        "kv_transfer_scaleout_share": rounded(out["kv_transfer_crossing"]),
        "prefill_wait_ms": rounded(out["prefill_wait_ms"]),
        "decoding_sequences": rounded(out["decoding_sequences"]),
        **pools,
    }
    return body


def _pool_object(figures: dict) -> dict:
    from .api import _bottleneck_name, rounded

    pool = {}
    for key in POOL_KEYS:
        value = figures[key]
        if key in ("num_chips", "replicas", "batch_size"):
            pool[key] = int(value)
        elif key == "fits_on_hardware":
            pool[key] = bool(value)
        elif key == "bottleneck":
            pool[key] = _bottleneck_name(value)
        elif np.isfinite(value):
            pool[key] = rounded(float(value))
    return pool


def _fit_note(name: str, hw, out: dict) -> str:
    return (f"disaggregated.{name} does not fit: {out[f'{name}.memory_per_chip_gb']:.1f} GB per chip > "
            f"{hw.memory_bytes / 1e9:.1f} GB of one {hw.chip} (give the pool more chips per replica, fewer "
            "sequences or a smaller dtype)")


def _raise_structural(model, hw, out: dict, pre_flat: dict, dec_flat: dict) -> None:
    """The first structural problem of either pool (its field under ``disaggregated.<pool>.``), then those of
    the deployment: a KV hand-off that must leave a node of hardware without a scale-out network, more chips
    than the hardware has."""
    from .api import _chips

    for name, flat in zip(POOL_NAMES, (pre_flat, dec_flat)):
        code = int(out[f"{name}.code"]) & layout.STRUCTURAL
        if code:
            problems = layout.reasons(model, hw, code, {**flat, **_chips(flat),
                                                         "memory_per_chip_gb": out[f"{name}.memory_per_chip_gb"]})
            if problems:
                field, message = problems[0]
                raise PerfkitError(f"disaggregated.{name}: {message}", field=f"disaggregated.{name}.{field}")
    code = int(out["code"])
    chips = int(out["num_chips"])
    if code & layout.NO_SCALEOUT:
        raise PerfkitError(
            f"disaggregated: the two pools need {chips} chips, more than one {hw.name} node of {hw.chips_per_node}, "
            f"so the KV cache would cross nodes, and {hw.name} gives no scale-out network; place both pools in one "
            f"node (at most {hw.chips_per_node} chips in all)", field="disaggregated")
    if code & layout.MAX_CHIPS:
        raise PerfkitError(f"disaggregated: the two pools need {chips} chips but {hw.name} has at most "
                           f"{hw.max_chips}", field="disaggregated")
