"""Tables for the charts and panels: API responses reshaped into pandas DataFrames.

Nothing here models performance: every number comes from :func:`perfkit.system_metrics`,
:func:`perfkit.layer_metrics` or the hardware catalog; these functions only rename, divide totals by chip
counts and take differences, so that plots and widgets can stay free of arithmetic. System frames use the
column names of :func:`perfkit.sweep` (``ttft_ms``, ``memory_per_chip_gb``, ``bottleneck``, ...), so a chart
drawn from a comparison and one drawn from a sweep read the same columns.

>>> frame = system_frame({"A": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
...                             "batch_size": 1, "input_seq": 1024, "output_seq": 128}})
>>> int(frame.loc["A", "num_chips"]), frame.loc["A", "bottleneck"]
(1, 'memory')
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .. import api, catalog
from ..engine.layout import LAYER_TYPES

#: Request fields echoed into a system frame (the configuration half of a row).
REQUEST_COLUMNS = ("model_id", "hardware_config", "batch_size", "input_seq", "output_seq", "replicas")
#: The figures a comparison shows first, in reading order, with the words a table shows for them.
HEADLINE = {
    "ttft_ms": "TTFT (ms)",
    "tpot_ms": "TPOT (ms)",
    "ttft_ms_p10": "TTFT p10 (ms)",
    "ttft_ms_p90": "TTFT p90 (ms)",
    "tpot_ms_p10": "TPOT p10 (ms)",
    "tpot_ms_p90": "TPOT p90 (ms)",
    "throughput_tokens_s": "throughput (tokens/s)",
    "total_latency_ms": "total latency (ms)",
    "memory_per_chip_gb": "memory per chip (GB)",
    "hw_capacity_gb": "chip capacity (GB)",
    "weight_memory_gb": "weights, all chips (GB)",
    "kv_cache_gb": "KV cache, all chips (GB)",
    "activation_memory_gb": "activations, all chips (GB)",
    "total_memory_gb": "memory, all chips (GB)",
    "num_chips": "chips",
    "num_nodes": "nodes",
    "bottleneck": "bottleneck",
    "fits_on_hardware": "fits on hardware",
}


def flatten(response: Mapping) -> dict:
    """One system-metrics response as a flat row (``memory`` and ``system`` entries lifted to the top, the
    ``notes`` list joined); keys the engine adds later come along unchanged."""
    row = {}
    for key, value in response.items():
        if isinstance(value, Mapping):
            row.update({k: v for k, v in value.items() if k != "notes"})
            if "notes" in value:
                row["notes"] = "; ".join(value["notes"])
        else:
            row[key] = value
    return row


def system_frame(requests: Mapping[str, Mapping], responses: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """One row per labelled configuration: its request fields, then every figure of its response.

    ``responses`` are computed with :func:`perfkit.system_metrics` when not given (a bad request raises
    :class:`perfkit.PerfkitError`).
    """
    rows = {}
    for label, request in requests.items():
        response = responses[label] if responses is not None else api.system_metrics(dict(request))
        rows[label] = {**{k: request[k] for k in REQUEST_COLUMNS if k in request}, **flatten(response)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "config"
    return frame


def comparison_table(frame: pd.DataFrame, figures=tuple(HEADLINE)) -> pd.DataFrame:
    """Figures as rows, configurations as columns, then each configuration's difference from the first one
    (``B - A``) and their ratio (``B / A``) for the numeric figures."""
    figures = [f for f in figures if f in frame.columns]
    table = frame[figures].T
    table.index = [HEADLINE.get(f, f) for f in figures]
    base = frame.index[0]
    numeric = [HEADLINE.get(f, f) for f in figures
               if pd.api.types.is_numeric_dtype(frame[f]) and not pd.api.types.is_bool_dtype(frame[f])]
    for label in frame.index[1:]:
        values = pd.to_numeric(table.loc[numeric, label])
        reference = pd.to_numeric(table.loc[numeric, base])
        table[f"{label} - {base}"] = values - reference
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{label} / {base}"] = values / reference.replace(0, np.nan)
    return table


def captions(frame: pd.DataFrame) -> pd.Series:
    """Label -> one line saying what each configuration is (``A: Llama-3.1-8B on nvidia_h100_hgx, 8 chips``)."""
    return pd.Series({label: f"{label}: {row['model_id'].split('/')[-1]} on {row['hardware_config']}, "
                             f"{row['num_chips']} chip{'s' if row['num_chips'] != 1 else ''}, batch {row['batch_size']}"
                      for label, row in frame.iterrows()}, dtype=object)


def memory_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Memory of one chip by part (the response's all-chip totals divided by ``num_chips``), with the busiest
    chip's footprint and the chip's capacity, for the stacked memory chart."""
    chips = frame["num_chips"]
    return pd.DataFrame({
        "weights_gb": frame["weight_memory_gb"] / chips,
        "kv_cache_gb": frame["kv_cache_gb"] / chips,
        "activation_gb": frame["activation_memory_gb"] / chips,
        "memory_per_chip_gb": frame["memory_per_chip_gb"],
        "hw_capacity_gb": frame["hw_capacity_gb"],
    }, index=frame.index)


def layer_requests(request: Mapping, phase: str = "prefill") -> dict[str, dict]:
    """The layer-metrics request of every layer type that matches one system-metrics request: a prefill
    over ``input_seq`` tokens, or (``phase="decode"``) one decode step at a context of ``input_seq``."""
    out = {}
    for layer_type in LAYER_TYPES:
        settings = dict(request.get("layers", {}).get(layer_type, {}))
        body = {"model_id": request["model_id"], "hardware_config": request["hardware_config"],
                "layer_type": layer_type, "batch_size": request["batch_size"],
                "seq_length": request["input_seq"], "phase": phase, **settings}
        for key in ("pipeline_parallel", "kv_dtype"):
            if key in request:
                body[key] = request[key]
        out[layer_type] = body
    return out


def layer_responses(request: Mapping, phases=("prefill", "decode")) -> dict[tuple[str, str], dict]:
    """The layer-metrics response of every (layer type, phase) of a system-metrics request."""
    return {(layer_type, phase): api.layer_metrics(body)
            for phase in phases for layer_type, body in layer_requests(request, phase).items()}


def layer_frame(request: Mapping, responses: Mapping[tuple[str, str], Mapping] | None = None) -> pd.DataFrame:
    """One row per (layer type, phase) of a system-metrics request: the layer-metrics figures, the bytes the
    layer holds per chip, the bytes it moves through HBM, its FLOPs per byte moved (arithmetic intensity)
    and its attained TFLOP/s, with the chip's roofs (peak
    TFLOP/s of the layer's dtype and HBM TB/s) for the roofline chart. ``responses`` are those of
    :func:`layer_responses` (computed when not given)."""
    hw = catalog.hardware_spec(request["hardware_config"])
    model = catalog.model_spec(request["model_id"])
    responses = layer_responses(request) if responses is None else responses
    rows = []
    for (layer_type, phase), r in responses.items():
        held_gb = sum(r["memory"][k] for k in ("weights_per_chip_gb", "activation_per_chip_gb",
                                               "kv_cache_per_chip_gb"))
        tflop = r["compute"]["flops_per_chip_tflops"]
        seconds = r["time_per_instance_ms"] / 1e3
        dtype = request.get("layers", {}).get(layer_type, {}).get("dtype") or model.default_dtype(layer_type)
        peak = hw.peak_flops_per_s.get(hw.compute_dtype(dtype) or "", None)
        moved_gb = r["hbm_traffic_per_instance_gb"]
        rows.append({
            "layer_type": layer_type, "phase": phase, "num_instances": r["num_instances"],
            "num_chips": r["num_chips"], **r["memory"], **r["compute"], **r["bottleneck"],
            "time_per_instance_ms": r["time_per_instance_ms"],
            "bytes_per_chip_gb": held_gb,
            "hbm_traffic_gb": moved_gb,
            # arithmetic intensity: FLOPs per byte *moved* through HBM (what the memory roof bounds)
            "flops_per_byte": tflop * 1e12 / (moved_gb * 1e9) if moved_gb else np.nan,
            "attained_tflops_s": tflop / seconds if seconds else np.nan,
            "peak_tflops_s": (peak or np.nan) / 1e12,
            "hbm_tb_s": hw.hbm_bytes_per_s / 1e12,
            "chip": hw.chip,
        })
    return pd.DataFrame(rows)


def sweep_table(grid: Mapping) -> pd.DataFrame:
    """:func:`perfkit.sweep` of ``grid``, plus the figures the sweep's analysis derives (throughput per chip)
    as columns, so that charts can read them."""
    from ..sweeps import sweep
    from ..sweeps.analysis import DERIVED

    table = sweep(dict(grid))
    return table.assign(**{name: derive(table) for name, derive in DERIVED.items()})


def heatmap_table(table: pd.DataFrame, x: str, y: str, value: str, best: str = "min") -> pd.DataFrame:
    """``value`` of the configurations that run, pivoted with ``y`` down and ``x`` across; where other axes
    vary, each cell holds the best (``"min"`` or ``"max"``) of them. Empty cells: nothing runs there."""
    runs = table[table["valid"].astype(bool)] if "valid" in table.columns else table
    return runs.pivot_table(index=y, columns=x, values=value, aggfunc=best).sort_index().sort_index(axis=1)
