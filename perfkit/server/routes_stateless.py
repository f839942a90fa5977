"""The seed's stateless endpoints and the discovery endpoints: each handler reads, calls perfkit, answers."""
from __future__ import annotations

from flask import Blueprint

from .. import __version__, api, catalog
from . import routes_deprecated
from .bodies import json_body, query

bp = Blueprint("stateless", __name__)


@bp.get("/api/layers")
def layers():
    return api.layers(query(required=("model_id",))["model_id"])


@bp.post("/config/layer-metrics")
def layer_metrics():
    body = json_body()
    if "model_id" not in body:  # the deprecated body: model context comes from the client's session
        return routes_deprecated.session_layer_metrics(body)
    return api.layer_metrics(body)


@bp.post("/config/system-metrics")
def system_metrics():
    return api.system_metrics(json_body())


@bp.get("/api/models")
def models():
    query()
    return {"models": [catalog.model_spec(m).summary() for m in catalog.list_models()]}


@bp.get("/api/hardware")
def hardware():
    query()
    return {"hardware": [catalog.hardware_spec(h).summary() for h in catalog.list_hardware()]}


@bp.get("/api/health")
def health():
    query()
    return {"status": "ok", "version": __version__, "models": len(catalog.list_models()),
            "hardware": len(catalog.list_hardware())}
