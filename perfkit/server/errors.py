"""JSON answers for every failure: bad input, unknown routes, oversized bodies and bugs alike.

A :class:`~perfkit.errors.PerfkitError` becomes its ``status`` and ``{"error": ..., "field": ...}``; Werkzeug's
HTTP errors (404, 405, 413, ...) get the same shape; anything else is logged with its traceback on the
server and answered with a bare 500 that reveals nothing about the code.
"""
from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from ..errors import PerfkitError

log = logging.getLogger(__name__)


class UnsupportedMediaTypeError(PerfkitError):
    """A request body that is not declared as JSON (HTTP 415)."""

    status = 415


class NotFiniteError(PerfkitError):
    """A prediction that came out NaN, infinite or a negative time (HTTP 422): never sent as a number."""

    status = 422


class NoSessionError(PerfkitError):
    """A deprecated stateful call made before ``POST /config/load`` (HTTP 409)."""

    status = 409


def error_response(app: Flask, message: str, field: str | None, status: int) -> Response:
    response = app.json.response({"error": message, "field": field})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error of ``app`` as JSON (never HTML, never a traceback)."""

    @app.errorhandler(PerfkitError)
    def _bad_input(exc: PerfkitError):
        return error_response(app, exc.message, exc.field, exc.status)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if (exc.code or 500) >= 500:  # a bug Flask wrapped (e.g. while building the response): say nothing
            log.error("server error: %r", getattr(exc, "original_exception", exc))
            return error_response(app, "internal error; the server log has the details", None, exc.code or 500)
        response = error_response(app, f"{exc.name}: {exc.description}", None, exc.code or 500)
        for name, value in exc.get_headers():  # e.g. 405 keeps ``Allow``
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error")
        return error_response(app, "internal error; the server log has the details", None, 500)
