"""Checking request bodies and turning them into the engine's flat configuration.

A flat configuration maps request paths to scalars: ``model_id``, ``hardware_config``, ``batch_size``,
``input_seq``, ``output_seq``, ``pipeline_parallel``, ``replicas``, ``kv_dtype`` and
``layers.<type>.<degree|dtype>``.
Every bad value raises :class:`PerfkitError` naming the field, the value and the valid choices.
"""
from __future__ import annotations

import math
from numbers import Integral
from typing import Any, Mapping

import numpy as np

from . import catalog
from .dtypes import DTYPES, INDEX
from .engine.layout import DEGREES, LAYER_TYPES, available_parallelism
from .engine.system import SERVING_MODES
from .errors import PerfkitError, choices_text
from .specs import ModelSpec

#: Upper bounds that keep a request physical (and the server safe from absurd inputs).
LIMITS = {"batch_size": 1 << 20, "input_seq": 1 << 24, "output_seq": 1 << 24, "seq_length": 1 << 24,
          "degree": 1 << 16}

SYSTEM_REQUIRED = ("model_id", "hardware_config", "batch_size", "input_seq", "output_seq")
#: Documented fields beyond the seed (see README "Request fields").
SYSTEM_OPTIONAL = ("layers", "kv_dtype", "pipeline_parallel", "replicas", "serving_mode", "serving_engine",
                   "uncertainty", "arrival_rate_qps", "input_seq_cv", "output_seq_cv", "price_per_chip_hour")
#: Real-valued fields (open-loop load, cost): checked by :func:`check_real`, passed to the engine as float64.
#: ``(lower bound, upper bound, whether the lower bound itself is allowed)``.
REAL_LIMITS = {"arrival_rate_qps": (0.0, 1e7, False), "input_seq_cv": (0.0, 10.0, True),
               "output_seq_cv": (0.0, 10.0, True), "price_per_chip_hour": (0.0, 1e6, False)}
LAYER_REQUIRED = ("model_id", "hardware_config", "layer_type", "batch_size", "seq_length")
LAYER_OPTIONAL = ("dtype", *DEGREES, "pipeline_parallel", "kv_dtype", "phase")
PHASES = ("prefill", "decode")


def check_fields(body: Any, required: tuple, optional: tuple, where: str = "") -> None:
    """The body is an object with every required field and no unknown one."""
    if type(body) is not dict and not isinstance(body, Mapping):
        name = where.rstrip(".")
        raise PerfkitError(f"{name or 'the request body'} must be a JSON object, got {type(body).__name__}",
                           field=name or None)
    allowed = (*required, *optional)
    for key in body:
        if key not in allowed:  # a Python caller may pass a key that is not a string
            raise PerfkitError(f"unknown field {where + str(key)!r}; " + choices_text(key, allowed),
                               field=where + str(key))
    for key in required:
        if key not in body:
            raise PerfkitError(f"missing required field {where + key!r}", field=where + key)


def check_int(value: Any, field: str, limit: int) -> int:
    """A positive integer no larger than ``limit`` (a bool or a float is not an integer)."""
    if type(value) is int and 1 <= value <= limit:  # the common case, without the slower ABC checks
        return value
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            hint = f" (write {int(value)})"
        else:
            hint = ""
        raise PerfkitError(f"{field} must be a positive integer, got {value!r}{hint}", field=field)
    if not 1 <= value <= limit:
        raise PerfkitError(f"{field} must be between 1 and {limit}, got {value}", field=field)
    return int(value)


def check_real(value: Any, field: str) -> float:
    """A finite number within the field's bounds (:data:`REAL_LIMITS`); a bool is not a number."""
    lo, hi, closed = REAL_LIMITS[field]
    if isinstance(value, bool) or not isinstance(value, (Integral, float)) or not math.isfinite(value):
        raise PerfkitError(f"{field} must be a finite number, got {value!r}", field=field)
    if not (value >= lo if closed else value > lo) or value > hi:
        low = f"at least {lo:g}" if closed else f"above {lo:g}"
        raise PerfkitError(f"{field} must be {low} and at most {hi:g}, got {value!r}", field=field)
    return float(value)


def check_choice(value: Any, field: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise PerfkitError(f"{field}={value!r} is not valid; " + choices_text(value, choices), field=field)
    return value


def check_layer_type(value: Any, field: str = "layer_type") -> str:
    return check_choice(value, field, LAYER_TYPES)


def layer_settings(model: ModelSpec, layer_type: str, settings: Mapping, where: str) -> dict:
    """Degrees and dtype of one layer type; a degree above 1 the layer does not offer is an error."""
    check_fields(settings, (), (*DEGREES, "dtype"), where)
    offered = available_parallelism(model, layer_type)
    out = {}
    for degree in DEGREES:
        value = check_int(settings.get(degree, 1), where + degree, LIMITS["degree"])
        if value > 1 and degree not in offered:
            raise PerfkitError(
                f"{where}{degree}={value}: the {layer_type} layer of {model.name} does not offer {degree}; "
                f"it offers {', '.join(offered)} (other degrees must be 1)",
                field=where + degree,
            )
        out[f"layers.{layer_type}.{degree}"] = value
    out[f"layers.{layer_type}.dtype"] = check_choice(settings.get("dtype", model.default_dtype(layer_type)), where + "dtype", DTYPES)
    return out


def system_config(body: Any) -> dict:
    """The flat configuration of a system-metrics request body."""
    check_fields(body, SYSTEM_REQUIRED, SYSTEM_OPTIONAL)
    model = catalog.model_spec(body["model_id"])
    catalog.hardware_spec(body["hardware_config"])
    flat = {"model_id": body["model_id"], "hardware_config": body["hardware_config"]}
    for key in ("batch_size", "input_seq", "output_seq"):
        flat[key] = check_int(body[key], key, LIMITS[key])
    flat["pipeline_parallel"] = check_int(body.get("pipeline_parallel", 1), "pipeline_parallel", LIMITS["degree"])
    flat["replicas"] = check_int(body.get("replicas", 1), "replicas", LIMITS["degree"])
    layers = body.get("layers", {})
    if type(layers) is not dict and not isinstance(layers, Mapping):
        raise PerfkitError(f"layers must be an object keyed by layer type, got {type(layers).__name__}",
                           field="layers")
    for key in layers:
        check_layer_type(key, field=f"layers.{key}")
    for layer_type in LAYER_TYPES:
        flat.update(layer_settings(model, layer_type, layers.get(layer_type, {}), f"layers.{layer_type}."))
    kv = body.get("kv_dtype", flat["layers.attention.dtype"])
    flat["kv_dtype"] = check_choice(kv, "kv_dtype", DTYPES)
    flat["serving_mode"] = check_choice(body.get("serving_mode", "static"), "serving_mode", SERVING_MODES)
    flat["serving_engine"] = check_choice(body.get("serving_engine", "generic"), "serving_engine",
                                          catalog.list_serving_engines())
    uncertainty = body.get("uncertainty", False)
    if not isinstance(uncertainty, bool):
        raise PerfkitError(f"uncertainty must be true or false, got {uncertainty!r}", field="uncertainty")
    flat["uncertainty"] = uncertainty
    flat.update(load_settings(body, flat["serving_mode"]))
    return flat


def load_settings(body: Mapping, serving_mode: str) -> dict:
    """The open-loop load and cost fields of a request (absent fields stay absent: no invented defaults)."""
    out = {key: check_real(body[key], key) for key in REAL_LIMITS if key in body}
    given = [key for key in ("input_seq_cv", "output_seq_cv") if key in out]
    if "arrival_rate_qps" in out:
        if serving_mode != "continuous":
            raise PerfkitError("arrival_rate_qps needs serving_mode 'continuous' (an open-loop load is served by "
                               f"continuous batching), got serving_mode {serving_mode!r}", field="serving_mode")
        out.setdefault("input_seq_cv", 0.0)
        out.setdefault("output_seq_cv", 0.0)
    elif given:
        raise PerfkitError(f"{given[0]} describes the lengths of an open-loop load; give arrival_rate_qps too",
                           field=given[0])
    return out


def layer_config(body: Any) -> tuple[dict, str, bool]:
    """The flat configuration of a layer-metrics request, its layer type and whether it is a decode step."""
    check_fields(body, LAYER_REQUIRED, LAYER_OPTIONAL)
    model = catalog.model_spec(body["model_id"])
    catalog.hardware_spec(body["hardware_config"])
    layer_type = check_layer_type(body["layer_type"])
    flat = {"model_id": body["model_id"], "hardware_config": body["hardware_config"],
            "batch_size": check_int(body["batch_size"], "batch_size", LIMITS["batch_size"]),
            "seq_length": check_int(body["seq_length"], "seq_length", LIMITS["seq_length"]),
            "pipeline_parallel": check_int(body.get("pipeline_parallel", 1), "pipeline_parallel",
                                           LIMITS["degree"])}
    settings = {k: body[k] for k in (*DEGREES, "dtype") if k in body}
    own = layer_settings(model, layer_type, settings, "")
    for other in LAYER_TYPES:
        # the other layer types do not enter this layer's figures; giving them its dtype keeps their
        # default (gemma-2's fp32, say) from failing a request on a chip that lacks that format
        flat.update(layer_settings(model, other, {"dtype": own[f"layers.{layer_type}.dtype"]}, f"layers.{other}."))
    flat.update(own)
    flat["kv_dtype"] = check_choice(body.get("kv_dtype", flat["layers.attention.dtype"]), "kv_dtype", DTYPES)
    phase = check_choice(body.get("phase", "prefill"), "phase", PHASES)
    return flat, layer_type, phase == "decode"


_NOT_ENGINE = frozenset(("model_id", "hardware_config", "serving_engine", "uncertainty"))


def to_arrays(flat: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Engine inputs: numbers as int64 arrays, dtypes as indices into ``DTYPES``. A single request's plain
    ints become numpy scalars (``np.int64``), on which the engine's arithmetic is several times faster than
    on 0-d arrays; they broadcast like them."""
    out = {}
    for key, value in flat.items():
        if key in _NOT_ENGINE:
            continue
        if type(value) is int:
            out[key] = np.int64(value)
        elif key == "serving_mode":
            out[key] = np.int64(SERVING_MODES.index(value)) if isinstance(value, str) else np.asarray(value, dtype=np.int64)
        elif key in REAL_LIMITS:
            out[key] = np.asarray(value, dtype=np.float64)
        elif key.endswith("dtype"):
            if isinstance(value, str):
                out[key] = np.int64(INDEX[value])
            else:
                out[key] = np.vectorize(INDEX.__getitem__, otypes=[np.int64])(value) if np.ndim(value) else np.int64(INDEX[value])
        else:
            out[key] = np.asarray(value, dtype=np.int64)
    return out
