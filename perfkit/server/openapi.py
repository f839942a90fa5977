"""``GET /openapi.json`` (OpenAPI 3.1, built from the same constants that check requests) and the ``/`` page.

Every enum and bound below comes from :mod:`perfkit.inputs`, :mod:`perfkit.dtypes` and the catalogs, so
the description cannot drift from what the server accepts.
"""
from __future__ import annotations

from functools import cache
from html import escape

from flask import Blueprint, Response

from .. import __version__, catalog
from ..dtypes import DTYPES
from ..engine.layout import DEGREES, LAYER_TYPES
from ..engine.system import SERVING_MODES
from ..engine import load
from . import openapi_disagg
from ..inputs import LAYER_OPTIONAL, LAYER_REQUIRED, LIMITS, PHASES, REAL_LIMITS, SYSTEM_OPTIONAL, SYSTEM_REQUIRED

bp = Blueprint("docs", __name__)

EXAMPLE_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
EXAMPLE_HARDWARE = "nvidia_gb200_single"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required=(), extra: bool = False, **more) -> dict:
    out = {"type": "object", "properties": properties, "required": list(required), **more}
    if not extra:
        out["additionalProperties"] = False
    return out


def _size(name: str) -> dict:
    return {"type": "integer", "minimum": 1, "maximum": LIMITS[name]}


def _numbers(*names: str) -> dict:
    return _obj({n: {"type": "number", "minimum": 0} for n in names}, names, extra=True)


#: The real-valued request fields (bounds from perfkit.inputs.REAL_LIMITS).
REAL_FIELDS = {
    "arrival_rate_qps": "open-loop Poisson arrivals per second over the whole deployment (needs serving_mode "
                        "'continuous'); adds the 'load' object",
    "input_seq_cv": "coefficient of variation of the prompt lengths of the open-loop load (default 0: fixed)",
    "output_seq_cv": "coefficient of variation of the output lengths of the open-loop load (default 0: fixed)",
    "price_per_chip_hour": "USD per chip-hour (no default); adds usd_per_million_output_tokens",
}


def _real(key: str, description: str) -> dict:
    lo, hi, closed = REAL_LIMITS[key]
    bound = {"minimum": lo} if closed else {"exclusiveMinimum": lo}
    return {"type": "number", **bound, "maximum": hi, "description": description}


def _load_schema() -> dict:
    numbers = {k: {"type": ["number", "null"]} for k in load.FIELDS if k not in ("bound", "saturated")}
    return _obj({**numbers, "bound": {"type": "string", "enum": list(load.BOUNDS)},
                 "saturated": {"type": "boolean"}}, load.FIELDS,
                description="open-loop load at arrival_rate_qps: TTFT/TPOT percentiles in ms (null when "
                            "saturated), achieved requests/s and output tokens/s, mean running sequences, "
                            "utilisation (rate / capacity), the capacity in requests/s and what bounds it")


def _schemas() -> dict:
    degree = {"type": "integer", "minimum": 1, "maximum": LIMITS["degree"]}
    settings = {**{d: _ref("Degree") for d in DEGREES}, "dtype": _ref("Dtype")}
    # Every request field perfkit.inputs accepts must have a schema here (a KeyError otherwise).
    fields = {
        "model_id": _ref("ModelId"), "hardware_config": _ref("HardwareId"), "layer_type": _ref("LayerType"),
        "batch_size": _size("batch_size"), "seq_length": _size("seq_length"), "input_seq": _size("input_seq"),
        "output_seq": _size("output_seq"), **settings, "pipeline_parallel": _ref("Degree"),
        "replicas": {**degree, "default": 1,
                     "description": "whole copies of the layout; batch_size is split evenly over them"},
        "kv_dtype": _ref("Dtype"), "phase": {"type": "string", "enum": list(PHASES), "default": "prefill"},
        "layers": _obj({t: _ref("LayerSettings") for t in LAYER_TYPES}),
        "serving_mode": {"type": "string", "enum": list(SERVING_MODES), "default": SERVING_MODES[0]},
        "serving_engine": {"type": "string", "enum": catalog.list_serving_engines(), "default": "generic"},
        "uncertainty": {"type": "boolean", "default": False,
                        "description": "add p10/p90 bands of TTFT and TPOT to the response"},
        **{key: _real(key, text) for key, text in REAL_FIELDS.items()},
    }
    layer_request = {k: fields[k] for k in (*LAYER_REQUIRED, *LAYER_OPTIONAL)}
    old_layer_request = {k: v for k, v in layer_request.items() if k != "model_id"}
    layer_entry = _obj({
        "type": _ref("LayerType"), "count": {"type": "integer", "minimum": 1},
        "available_parallelism": {"type": "array", "items": {"type": "string", "enum": list(DEGREES)}},
        "available_dtypes": {"type": "array", "items": _ref("Dtype")},
        "kind": {"type": "string"}, "experts": {"type": "object"},
    }, ("type", "count", "available_parallelism", "available_dtypes"), extra=True)
    layers_body = _obj({"layers": {"type": "array", "items": layer_entry},
                        "deployment": {"type": "object", "additionalProperties": {"type": "string"},
                                       "description": "what the deployment-wide fields (pipeline_parallel, "
                                                      "replicas) split"}},
                       ("layers",), extra=True)
    session_layers = {"type": "object", "propertyNames": _ref("LayerType"),
                      "additionalProperties": _ref("LayerSettings")}
    summary = _obj({
        "name": {"type": "string"}, "description": {"type": "string"}, "chip": {"type": "string"},
        "chips_per_node": {"type": "integer"}, "max_chips": {"type": ["integer", "null"]},
        "memory_gb": {"type": "number"}, "hbm_tb_s": {"type": "number"},
        "peak_tflops": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
        "scaleup_gb_s": {"type": "number"}, "scaleout_gb_s": {"type": ["number", "null"]},
    }, ("name", "chip", "chips_per_node", "memory_gb", "hbm_tb_s", "peak_tflops"), extra=True)
    model = _obj({"id": {"type": "string"}, "num_layers": {"type": "integer"},
                  "hidden_size": {"type": "integer"}}, ("id", "num_layers", "hidden_size"), extra=True)
    return {
        "Error": _obj({"error": {"type": "string"}, "field": {"type": ["string", "null"]}}, ("error", "field")),
        "ModelId": {"type": "string", "pattern": catalog.MODEL_ID_PATTERN, "maxLength": 193,
                    "description": "a Hugging Face id 'org/name' (not a path or URL)", "examples": [EXAMPLE_MODEL]},
        "HardwareId": {"type": "string", "enum": catalog.list_hardware()},
        "LayerType": {"type": "string", "enum": list(LAYER_TYPES)},
        "Dtype": {"type": "string", "enum": list(DTYPES)},
        "Degree": {**degree, "default": 1,
                   "description": "a degree above 1 must be one the layer offers (GET /api/layers)"},
        "LayerSettings": _obj(settings),
        "LayersResponse": layers_body,
        "LayerMetricsRequest": _obj(layer_request, LAYER_REQUIRED),
        "DeprecatedLayerMetricsRequest": _obj(
            old_layer_request, [k for k in LAYER_REQUIRED if k not in ("model_id", "hardware_config")],
            description="deprecated: no model context; model, hardware and the layer's settings come from "
                        "the session set by POST /config/load and POST /config/layer-parallelism"),
        "LayerMetricsResponse": _obj({
            "layer_type": _ref("LayerType"), "num_instances": {"type": "integer"},
            "num_chips": {"type": "integer", "minimum": 1},
            "parallelism": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
            "memory": _numbers("weights_per_chip_gb", "activation_per_chip_gb", "kv_cache_per_chip_gb",
                               "total_weights_gb", "total_activation_gb", "total_kv_cache_gb"),
            "compute": _numbers("flops_per_chip_tflops", "total_flops_tflops"),
            "bottleneck": _numbers("compute_pct", "memory_pct", "communication_pct"),
            "phase": {"type": "string", "enum": list(PHASES)}, "time_per_instance_ms": {"type": "number", "minimum": 0},
            "hbm_traffic_per_instance_gb": {"type": "number", "minimum": 0},
        }, ("layer_type", "num_instances", "num_chips", "parallelism", "memory", "compute", "bottleneck"),
            extra=True),
        "SystemMetricsRequest": _obj({k: fields[k] for k in (*SYSTEM_REQUIRED, *SYSTEM_OPTIONAL)},
                                     SYSTEM_REQUIRED),
        "DisaggregatedSystemMetricsRequest": openapi_disagg.request_schema(fields),
        "SystemMetricsResponse": _obj({
            "ttft_ms": {"type": "number", "minimum": 0}, "tpot_ms": {"type": "number", "minimum": 0},
            "throughput_tokens_s": {"type": "number", "minimum": 0},
            "total_latency_ms": {"type": "number", "minimum": 0},
            "memory": _numbers("weight_memory_gb", "activation_memory_gb", "kv_cache_gb", "total_memory_gb",
                               "memory_per_chip_gb", "hw_capacity_gb"),
            "system": _obj({
                "num_chips": {"type": "integer", "minimum": 1},
                "bottleneck": {"type": "string", "enum": ["compute", "memory", "communication"]},
                "fits_on_hardware": {"type": "boolean"}, "num_nodes": {"type": "integer", "minimum": 1},
                "notes": {"type": "array", "items": {"type": "string"}},
            }, ("num_chips", "bottleneck", "fits_on_hardware"), extra=True),
            "disaggregated": openapi_disagg.response_schema(),
            "uncertainty": _numbers("ttft_ms_p10", "ttft_ms_p90", "tpot_ms_p10", "tpot_ms_p90"),
            "load": _load_schema(),
            "cost": _obj({"joules_per_output_token": {"type": ["number", "null"]},
                          "usd_per_million_output_tokens": {"type": ["number", "null"]}},
                         ("joules_per_output_token",),
                         description="per output token at the served rate: joules with every chip at its TDP "
                                     "(an upper bound; null where the hardware file gives no TDP) and, with "
                                     "price_per_chip_hour, USD per million"),
        }, ("ttft_ms", "tpot_ms", "throughput_tokens_s", "total_latency_ms", "memory", "system"), extra=True),
        "ModelsResponse": _obj({"models": {"type": "array", "items": model}}, ("models",)),
        "HardwareResponse": _obj({"hardware": {"type": "array", "items": summary}}, ("hardware",)),
        "HealthResponse": _obj({"status": {"const": "ok"}, "version": {"type": "string"},
                                "models": {"type": "integer"}, "hardware": {"type": "integer"}},
                               ("status", "version"), extra=True),
        "HealthDegraded": _obj({"status": {"const": "degraded"}, "version": {"type": "string"},
                                "catalog_errors": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                               ("status", "version", "catalog_errors")),
        "LoadRequest": _obj({"model_id": _ref("ModelId"), "hardware_config": _ref("HardwareId")},
                            ("model_id", "hardware_config")),
        "SessionState": _obj({"status": {"type": "string"}, "model_id": {"type": "string"},
                              "hardware_config": {"type": "string"}, "layers": session_layers},
                             ("model_id", "hardware_config", "layers")),
        "LayerParallelismRequest": {"anyOf": [
            _obj({"layer_type": _ref("LayerType"), **settings}, ("layer_type",)),
            _obj({"layers": _obj({t: _ref("LayerSettings") for t in LAYER_TYPES})}, ("layers",)),
        ]},
        "SessionLayersResponse": {"allOf": [layers_body, _obj({
            "model_id": {"type": "string"}, "hardware_config": {"type": "string"},
            "layer_parallelism": session_layers}, ("model_id", "hardware_config", "layer_parallelism"),
            extra=True)]},
    }


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(ok: str, *errors: int, headers: dict | None = None) -> dict:
    reasons = {400: "bad input: the message names the value and the valid choices",
               404: "unknown model or hardware id", 409: "no model loaded in this session",
               413: "request body too large", 415: "the body is not declared application/json",
               422: "the prediction came out NaN, infinite or a negative time (never sent as a number)",
               500: "a catalog file is broken (the message names the entry and field) or a bug"}
    out = {"200": {"description": "OK", "content": _json(_ref(ok))}}
    if headers:
        out["200"]["headers"] = headers
    for status in errors:
        out[str(status)] = {"description": reasons[status], "content": _json(_ref("Error"))}
    return out


def _op(summary: str, ok: str, errors: tuple, body: dict | None = None, params: list | None = None,
        deprecated: bool = False) -> dict:
    op = {"summary": summary, "responses": _responses(ok, *errors)}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        op["parameters"] = params
    if deprecated:
        op["deprecated"] = True
        op["responses"]["200"]["headers"] = {
            "Deprecation": {"schema": {"type": "string"}, "description": "RFC 9745: @<unix seconds>"},
            "Link": {"schema": {"type": "string"}, "description": '<successor>; rel="successor-version"'},
        }
    return op


POST_ERRORS = (400, 404, 413, 415, 422)


def _health_op() -> dict:
    op = _op("Liveness, and whether every catalog entry loads", "HealthResponse", (400,))
    op["responses"]["503"] = {"description": "a catalog entry is broken: catalog_errors names each",
                              "content": _json(_ref("HealthDegraded"))}
    return op


@cache
def spec() -> dict:
    """The OpenAPI 3.1 description of every endpoint, request and response."""
    model_param = {"name": "model_id", "in": "query", "required": True, "schema": _ref("ModelId")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "perfkit", "version": __version__,
                 "description": "Predict LLM serving performance: memory per chip, TTFT, TPOT, throughput "
                                "and bottleneck for a model, hardware and parallelism."},
        "paths": {
            "/api/layers": {"get": _op("Layer types of a model, their counts, parallelism and dtypes",
                                       "LayersResponse", (400, 404), params=[model_param])},
            "/config/layer-metrics": {"post": _op(
                "One layer type's memory, FLOPs and bottleneck shares (the body without model_id is the "
                "deprecated stateful form)", "LayerMetricsResponse", (*POST_ERRORS, 409),
                body={"anyOf": [_ref("LayerMetricsRequest"), _ref("DeprecatedLayerMetricsRequest")]})},
            "/config/system-metrics": {"post": _op(
                "TTFT, TPOT, throughput, memory and bottleneck of a whole configuration",
                "SystemMetricsResponse", POST_ERRORS,
                body={"anyOf": [_ref("SystemMetricsRequest"), _ref("DisaggregatedSystemMetricsRequest")]})},
            "/api/models": {"get": _op("Bundled models and their key figures", "ModelsResponse", (400,))},
            "/api/hardware": {"get": _op("Hardware systems and their key specs", "HardwareResponse", (400,))},
            "/api/health": {"get": _health_op()},
            "/config/load": {"post": _op("Deprecated: load a model and hardware into this client's session",
                                         "SessionState", POST_ERRORS, body=_ref("LoadRequest"),
                                         deprecated=True)},
            "/config/layer-parallelism": {"post": _op(
                "Deprecated: set layer parallelism and dtype in this client's session", "SessionState",
                (*POST_ERRORS, 409), body=_ref("LayerParallelismRequest"), deprecated=True)},
            "/config/layers": {"get": _op("Deprecated: the layers of the model loaded in this session",
                                          "SessionLayersResponse", (400, 404, 409), deprecated=True)},
            "/openapi.json": {"get": {"summary": "This description (OpenAPI 3.1)", "responses": {
                "200": {"description": "OK", "content": _json({"type": "object", "required": ["openapi"]})}}}},
            "/": {"get": {"summary": "A page that links the endpoints", "responses": {
                "200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": _schemas()},
    }


@bp.get("/openapi.json")
def openapi_json():
    return spec()


@bp.get("/")
def index():
    return Response(_page(), mimetype="text/html")


@cache
def _page() -> str:
    rows = []
    for path, ops in spec()["paths"].items():
        for method, op in ops.items():
            href = f"{path}?model_id={EXAMPLE_MODEL}" if path == "/api/layers" else path
            name = (f'<a href="{escape(href)}">{escape(path)}</a>' if method == "get" and path != "/config/layers"
                    else escape(path))
            note = " <em>(deprecated)</em>" if op.get("deprecated") else ""
            rows.append(f"<li><code>{method.upper()} {name}</code>: {escape(op['summary'])}{note}</li>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>perfkit API</title></head><body>"
            f"<h1>perfkit {escape(__version__)}</h1><p>Predict LLM serving performance. The full description is "
            "<a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p><ul>" + "".join(rows) + "</ul></body></html>")
