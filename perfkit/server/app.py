"""The Flask application: the seed's endpoints over :mod:`perfkit.api`, stateless on the server.

>>> app = create_app({"SECRET_KEY": "doc"})
>>> app.test_client().get("/api/layers?model_id=TinyLlama/TinyLlama-1.1B-Chat-v1.0").json["layers"][0]["count"]
22
"""
from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface

from . import cache, openapi, routes_deprecated, routes_stateless
from .errors import register_error_handlers

log = logging.getLogger(__name__)

#: Environment variables read by :func:`create_app`.
SECRET_ENV = "PERFKIT_SECRET_KEY"
CORS_ENV = "PERFKIT_CORS_ORIGINS"

#: Request bodies larger than this get 413 (the largest valid request is well under 2 KiB).
MAX_BODY_BYTES = 64 * 1024


class StrictJSONProvider(DefaultJSONProvider):
    """Keeps the seed's key order and never writes ``NaN``/``Infinity`` (which are not JSON)."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


class CheckedSessionInterface(SecureCookieSessionInterface):
    """A cookie whose signature is valid but whose contents are not a session (a list, a bad tagged value:
    what a leaked secret could forge) opens as an empty session instead of failing the request."""

    def open_session(self, app, request):
        # the stateless API: no serializer to build (and no Cookie header: none to parse either)
        if "HTTP_COOKIE" not in request.environ or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        try:
            return super().open_session(app, request)
        except Exception:  # noqa: BLE001 - any undecodable payload means "no session"
            log.warning("a signed session cookie could not be decoded; treating it as no session")
            return self.session_class()


def create_app(config: Mapping[str, Any] | None = None, cors_origins: Iterable[str] | None = None) -> Flask:
    """The perfkit HTTP API.

    ``config`` overrides Flask settings (``SECRET_KEY``, ``MAX_CONTENT_LENGTH``, ...). The secret that signs
    the deprecated flow's session cookie comes from ``PERFKIT_SECRET_KEY``; without it a random one is made
    for this process (sessions then do not survive a restart nor cross replicas, and a warning is logged).
    CORS is off unless ``cors_origins`` (or ``PERFKIT_CORS_ORIGINS``, comma-separated) lists origins.
    Repeated stateless requests are answered from a bounded cache of ``PERFKIT_RESPONSE_CACHE`` entries
    (default 1024; 0 turns it off; see :mod:`perfkit.server.cache`).
    """
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.session_interface = CheckedSessionInterface()
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_NAME="perfkit_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config[cache.CONFIG_KEY] = cache.DEFAULT_SIZE
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key()
    if cors_origins is None:
        cors_origins = [o.strip() for o in os.environ.get(CORS_ENV, "").split(",")]
    origins = frozenset(o for o in cors_origins if o)

    register_error_handlers(app)
    for blueprint in (routes_stateless.bp, routes_deprecated.bp, openapi.bp):
        app.register_blueprint(blueprint)
    app.after_request(routes_deprecated.add_deprecation_headers)
    if origins:
        app.after_request(lambda response: _allow_origin(response, origins))
    size = app.config[cache.CONFIG_KEY]
    if size:
        app.wsgi_app = app.extensions[cache.CONFIG_KEY] = cache.ResponseCache(app.wsgi_app, size=size)
    return app


def _secret_key() -> str:
    key = os.environ.get(SECRET_ENV)
    if key:
        return key
    log.warning("%s is not set: signing session cookies with a random per-process key, so the deprecated "
                "stateful flow does not survive restarts or work across replicas", SECRET_ENV)
    return secrets.token_hex(32)


def _allow_origin(response, origins: frozenset[str]):
    """CORS for the listed origins only (cookies included, for the deprecated flow)."""
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    if origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = "Deprecation, Link"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
    return response
