"""The seed's stateless endpoints and the discovery endpoints: each handler reads, calls perfkit, answers."""
from __future__ import annotations

import logging

from flask import Blueprint

from .. import __version__, api, catalog
from ..errors import SpecError
from . import routes_deprecated
from .bodies import finite, json_body, query

log = logging.getLogger(__name__)

bp = Blueprint("stateless", __name__)


@bp.get("/api/layers")
def layers():
    return finite(api.layers(query(required=("model_id",))["model_id"]))


@bp.post("/config/layer-metrics")
def layer_metrics():
    body = json_body()
    if "model_id" not in body:  # the deprecated body: model context comes from the client's session
        return finite(routes_deprecated.session_layer_metrics(body))
    return finite(api.layer_metrics(body))


@bp.post("/config/system-metrics")
def system_metrics():
    return finite(api.system_metrics(json_body()))


@bp.get("/api/models")
def models():
    query()
    return {"models": _loadable(catalog.model_spec, catalog.list_models())}


@bp.get("/api/hardware")
def hardware():
    query()
    return {"hardware": _loadable(catalog.hardware_spec, catalog.list_hardware())}


@bp.get("/api/health")
def health():
    query()
    problems = catalog.catalog_problems()
    if problems:  # 503, so that a load balancer's probe sees it; the body says what is broken
        return {"status": "degraded", "version": __version__, "catalog_errors": problems}, 503
    return {"status": "ok", "version": __version__, "models": len(catalog.list_models()),
            "hardware": len(catalog.list_hardware())}


def _loadable(load, names: list[str]) -> list[dict]:
    """The summaries of the entries that load; a broken one is left out (``/api/health`` names it)."""
    out = []
    for name in names:
        try:
            out.append(load(name).summary())
        except SpecError as exc:
            log.warning("left out of the listing: %s", exc.message)
    return out
