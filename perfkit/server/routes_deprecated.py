"""The deprecated stateful flow (the seed's "Before"), kept for old frontends without server state.

What a client loaded and configured lives in its own signed session cookie, so two clients never see each
other's choices and any replica sharing the secret key can answer. Every response here carries
``Deprecation`` and ``Link: <successor>; rel="successor-version"`` headers.

``POST /config/load`` takes ``{"model_id", "hardware_config"}`` and resets the layer settings.
``POST /config/layer-parallelism`` takes one layer's settings,
``{"layer_type": "attention", "tensor_parallel": 4, "context_parallel": 2, "dtype": "bf16"}``, or several at
once, ``{"layers": {"attention": {...}, "feedforward": {...}}}``; each layer named replaces its previous
settings (a degree left out is 1, a dtype left out is the model's). Each layer is checked by the same code
as ``POST /config/layer-metrics``, so a layout the model or hardware cannot run is refused and the session
is left as it was.
"""
from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, g, session

from .. import api, catalog
from ..engine.layout import DEGREES
from ..errors import PerfkitError
from ..inputs import check_fields, check_layer_type
from .bodies import json_body, query
from .errors import NoSessionError

bp = Blueprint("deprecated", __name__)

#: When the stateful flow was deprecated (RFC 9745 ``Deprecation: @<unix seconds>``): perfkit 0.1.0.
DEPRECATED_SINCE = 1795651200  # 2026-11-26T00:00:00Z

#: The stateless endpoint that replaces each deprecated one.
SUCCESSORS = {
    "load": "/api/layers",
    "layers": "/api/layers",
    "layer_parallelism": "/config/layer-metrics",
    "layer_metrics": "/config/layer-metrics",
}


def mark_deprecated(successor: str) -> None:
    """Ask :func:`add_deprecation_headers` to label this request's response, errors included."""
    g.perfkit_successor = successor


def add_deprecation_headers(response):
    successor = g.get("perfkit_successor")
    if successor:
        response.headers["Deprecation"] = f"@{DEPRECATED_SINCE}"
        response.headers["Link"] = f'<{successor}>; rel="successor-version"'
    return response


@bp.post("/config/load")
def load():
    mark_deprecated(SUCCESSORS["load"])
    body = json_body()
    check_fields(body, ("model_id", "hardware_config"), ())
    catalog.model_spec(body["model_id"])
    catalog.hardware_spec(body["hardware_config"])
    session.clear()
    session.update(model_id=body["model_id"], hardware_config=body["hardware_config"], layers={})
    return {"status": "loaded", "model_id": body["model_id"], "hardware_config": body["hardware_config"],
            "layers": {}}


@bp.get("/config/layers")
def loaded_layers():
    mark_deprecated(SUCCESSORS["layers"])
    query()
    loaded = _loaded("GET /config/layers")
    return {**api.layers(loaded["model_id"]), "model_id": loaded["model_id"],
            "hardware_config": loaded["hardware_config"], "layer_parallelism": loaded["layers"]}


@bp.post("/config/layer-parallelism")
def layer_parallelism():
    mark_deprecated(SUCCESSORS["layer_parallelism"])
    body = json_body()
    loaded = _loaded("POST /config/layer-parallelism")
    if "layers" in body:
        check_fields(body, ("layers",), ())
        if not isinstance(body["layers"], Mapping):
            raise PerfkitError("layers must be an object keyed by layer type", field="layers")
        changes = {check_layer_type(t, f"layers.{t}"): s for t, s in body["layers"].items()}
        prefix = "layers.{}."
    else:
        check_fields(body, ("layer_type",), (*DEGREES, "dtype"))
        layer_type = check_layer_type(body["layer_type"])
        changes = {layer_type: {k: v for k, v in body.items() if k != "layer_type"}}
        prefix = ""
    for layer_type, settings in changes.items():
        _check_layer(loaded, layer_type, settings, prefix.format(layer_type))
    layers = {**loaded["layers"], **changes}
    session["layers"] = layers
    return {"model_id": loaded["model_id"], "hardware_config": loaded["hardware_config"], "layers": layers}


def session_layer_metrics(body: dict) -> dict:
    """``POST /config/layer-metrics`` with the old body (no ``model_id``): the context comes from the session."""
    mark_deprecated(SUCCESSORS["layer_metrics"])
    loaded = _loaded("POST /config/layer-metrics without model_id")
    layer_type = body.get("layer_type")
    settings = loaded["layers"].get(layer_type, {}) if isinstance(layer_type, str) else {}
    return api.layer_metrics({"model_id": loaded["model_id"], "hardware_config": loaded["hardware_config"],
                              **settings, **body})


def _loaded(call: str) -> dict:
    """The session's model, hardware and layer settings; a session without them says what to call first."""
    layers = session.get("layers", {})
    # the cookie is signed, yet its contents are still checked: a secret that leaked must not become a 500
    valid = (isinstance(session.get("model_id"), str) and isinstance(session.get("hardware_config"), str)
             and isinstance(layers, Mapping)
             and all(isinstance(k, str) and isinstance(v, Mapping) for k, v in layers.items()))
    if not valid:
        raise NoSessionError(
            f"{call} needs a loaded model: call POST /config/load with {{\"model_id\", \"hardware_config\"}} "
            "first (this stateful flow is deprecated: send model_id and hardware_config with each request "
            "to the stateless endpoints instead)",
            field="model_id",
        )
    return {"model_id": session["model_id"], "hardware_config": session["hardware_config"],
            "layers": dict(layers)}


def _check_layer(loaded: dict, layer_type: str, settings, where: str) -> None:
    """Refuse settings that ``POST /config/layer-metrics`` would refuse (same code path)."""
    check_fields(settings, (), (*DEGREES, "dtype"), where)
    try:
        api.layer_metrics({"model_id": loaded["model_id"], "hardware_config": loaded["hardware_config"],
                           "layer_type": layer_type, "batch_size": 1, "seq_length": 1, **settings})
    except PerfkitError as exc:
        field = exc.field if not where or not exc.field or exc.field.startswith("layers.") else where + exc.field
        raise type(exc)(exc.message, field=field) from None
