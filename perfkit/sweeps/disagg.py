"""Sweeps of disaggregated requests: a request with ``disaggregated`` whose values may be lists (inside the
pools too: ``disaggregated.decode.batch_size: [16, 64, 256]``), or a list of such requests, into one DataFrame.

Every list is an axis named by its dotted path and the sweep is their Cartesian product, as for aggregated
grids. Each configuration is checked like a request (:func:`perfkit.inputs_disagg.disaggregated_config`: a
malformed one raises :class:`PerfkitError`); the configurations of one (model, hardware, serving engine) go
to the engine in one call (:func:`perfkit.engine.disagg.evaluate_disaggregated`). A configuration that cannot
run is a row with ``valid == False`` and a ``reason``.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import catalog
from ..engine import layout
from ..engine.disagg import POOL_FIGURES, POOLS, evaluate_disaggregated
from ..engine.system import SERVING_MODES
from ..errors import PerfkitError
from ..inputs import to_arrays
from ..inputs_disagg import disaggregated_config

#: The deployment's columns (then ``prefill.<figure>`` / ``decode.<figure>`` of :data:`POOL_FIGURES`).
FIGURES = ("ttft_ms", "tpot_ms", "throughput_tokens_s", "total_latency_ms", "weight_memory_gb",
           "activation_memory_gb", "kv_cache_gb", "total_memory_gb", "memory_per_chip_gb", "hw_capacity_gb",
           "num_chips", "num_nodes", "fits_on_hardware", "kv_transfer_ms", "kv_transfer_crossing", "prefill_wait_ms",
           "decoding_sequences", "limiting_pool", "joules_per_output_token")


def is_disaggregated_spec(spec: Any) -> bool:
    """Whether a sweep spec (a grid or a list of requests) describes disaggregated deployments."""
    if isinstance(spec, Mapping):
        return "disaggregated" in spec
    return isinstance(spec, (list, tuple)) and bool(spec) and all(
        isinstance(s, Mapping) and "disaggregated" in s for s in spec)


def _axes(node: Any, path: str = "") -> list[tuple[str, list]]:
    """(dotted path, values) of every list-valued leaf of a nested grid."""
    if isinstance(node, Mapping):
        return [axis for key, value in node.items() for axis in _axes(value, f"{path}{key}.")]
    if isinstance(node, list):
        if not node:
            raise PerfkitError(f"{path.rstrip('.')} is an empty list: an axis needs at least one value",
                               field=path.rstrip("."))
        return [(path.rstrip("."), node)]
    return []


def _with(node: Any, values: Mapping[str, Any], path: str = "") -> Any:
    """``node`` with each list-valued leaf replaced by its value in ``values``."""
    if isinstance(node, Mapping):
        return {key: _with(value, values, f"{path}{key}.") for key, value in node.items()}
    if isinstance(node, list):
        return values[path.rstrip(".")]
    return node


def requests(spec) -> tuple[list[dict], list[str], list[dict]]:
    """The requests of a spec, the axis names and each request's axis values."""
    if isinstance(spec, Mapping):
        axes = _axes(spec)
        names = [name for name, _ in axes]
        combos = [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in axes))]
        return [_with(spec, combo) for combo in combos], names, combos
    return [dict(s) for s in spec], [], [{} for _ in spec]


def sweep(spec) -> pd.DataFrame:
    """The table of a disaggregated sweep (see the module docstring): the axes, then :data:`FIGURES`, each
    pool's figures, the ``load_*`` columns under an ``arrival_rate_qps``, ``valid`` and ``reason``. Each row's
    figures are those :func:`perfkit.system_metrics` answers for its request.

    >>> import perfkit
    >>> from perfkit.examples import DISAGGREGATED
    >>> df = perfkit.sweep({**DISAGGREGATED, "disaggregated": {**DISAGGREGATED["disaggregated"],
    ...     "decode": {**DISAGGREGATED["disaggregated"]["decode"], "batch_size": [16, 64, 256]}}})
    >>> df.attrs["axes"], bool(df["tpot_ms"].is_monotonic_increasing)
    (['disaggregated.decode.batch_size'], True)
    """
    bodies, names, combos = requests(spec)
    if not bodies:
        raise PerfkitError("a sweep needs at least one request", field=None)
    flats = [disaggregated_config(body) for body in bodies]
    rows: list[dict] = [dict(combo) for combo in combos]
    groups: dict[tuple, list[int]] = {}
    for i, (pre, _) in enumerate(flats):
        groups.setdefault((pre["model_id"], pre["hardware_config"], pre["serving_engine"]), []).append(i)
    for (model_id, hw_name, engine), members in groups.items():
        model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hw_name)
        profile, transfer = catalog.serving_profile(engine), catalog.transfer_profile(engine)
        pre, dec = (_stack([flats[i][side] for i in members]) for side in (0, 1))
        with np.errstate(all="ignore"):
            fig = evaluate_disaggregated(model, hw, to_arrays(pre), to_arrays(dec), profile, transfer)
        n = len(members)
        columns = {k: np.broadcast_to(v, (n,)) for k, v in fig.items() if np.ndim(v) <= 1}
        for j, i in enumerate(members):
            row = rows[i]
            row.update({k: v[j].item() if hasattr(v[j], "item") else v[j] for k, v in columns.items()})
            row["limiting_pool"] = str(POOLS[int(row["limiting_pool"])])
            row["valid"], row["reason"] = _valid(model, hw, bodies[i], row)
    out = pd.DataFrame(rows)
    keep = [*names, *[c for c in FIGURES if c in out], *[f"{p}.{k}" for p in ("prefill", "decode")
                                                        for k in POOL_FIGURES if k != "code"],
            *sorted(c for c in out if c.startswith("load_")),
            *[c for c in ("usd_per_million_output_tokens",) if c in out], "valid", "reason"]
    out = out[[c for c in dict.fromkeys(keep) if c in out]]
    out.attrs["axes"] = names
    return out


def _stack(flats: list[dict]) -> dict:
    """One flat configuration from several with the same keys (one engine call): a setting they share stays a
    scalar, one that differs becomes an array over them."""
    out = {}
    for key in flats[0]:
        values = [f[key] for f in flats]
        if all(v == values[0] for v in values):
            out[key] = values[0]
        elif key == "serving_mode":
            out[key] = np.asarray([SERVING_MODES.index(v) for v in values])
        else:
            out[key] = np.asarray(values)
    return out


def _valid(model, hw, body: dict, row: dict) -> tuple[bool, str]:
    if not (int(row["code"]) & layout.STRUCTURAL):
        return True, ""
    from ..api_disagg import system_metrics

    try:
        system_metrics(body)
    except PerfkitError as exc:
        return False, exc.message
    return False, "cannot run"
