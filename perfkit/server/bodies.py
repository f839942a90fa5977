"""Reading requests strictly: JSON objects only, no NaN or Infinity, no duplicate keys, no stray parameters.

The standard library's ``json`` accepts ``NaN``, ``Infinity`` and ``1e999`` (which becomes ``inf``) and keeps the
last of two equal keys; a request that relies on any of them is malformed, so each is rejected here with a
message that says what was wrong.
"""
from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from ..errors import PerfkitError
from .errors import NotFiniteError, UnsupportedMediaTypeError


def _reject_constant(name: str):
    raise PerfkitError(f"{name} is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PerfkitError(f"the number {text[:40]} is out of range; send a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise PerfkitError(f"field {key!r} appears twice in one object", field=key)
        out[key] = value
    return out


def parse_json(data: bytes) -> Any:
    """The JSON value of a request body; malformed text is a :class:`PerfkitError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PerfkitError(f"the request body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except PerfkitError:
        raise
    except json.JSONDecodeError as exc:
        raise PerfkitError(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno}") from None
    except RecursionError:
        raise PerfkitError("the request body is nested too deeply") from None
    except ValueError:  # an integer literal longer than Python's digit limit
        raise PerfkitError("the request body holds a number with too many digits") from None


def json_body() -> dict:
    """The current request's body: declared ``application/json``, valid JSON, and an object."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaTypeError(
            f"Content-Type {request.content_type or '(none)'!r} is not supported; send application/json")
    body = parse_json(request.get_data(cache=False))
    if not isinstance(body, dict):
        raise PerfkitError(f"the request body must be a JSON object, got {_json_type(body)}")
    return body


def query(required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> dict[str, str]:
    """The query parameters of the current request: each at most once, none unknown, the required present."""
    args = request.args
    allowed = (*required, *optional)
    for key in args:
        if key not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            raise PerfkitError(f"unknown query parameter {key!r}; valid parameters: {valid}", field=key)
        if len(args.getlist(key)) > 1:
            raise PerfkitError(f"query parameter {key!r} is given more than once", field=key)
    for key in required:
        if key not in args:
            raise PerfkitError(f"missing required query parameter {key!r}", field=key)
    return {key: args[key] for key in args}


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def finite(body: Any) -> Any:
    """``body`` if every number in it is finite and no time (a ``*_ms`` key) is negative; else a
    :class:`~perfkit.errors.PerfkitError` (422) naming the first bad figure, so that no answer ever carries
    ``NaN``, ``Infinity`` or a negative time."""
    bad = _first_bad(body)
    if bad is not None:
        path = ".".join(str(k) for k in bad)
        value = _at(body, bad)
        raise NotFiniteError(f"the prediction for this configuration has {path} = {value!r}, which is not a "
                             "physical value; the configuration is outside what perfkit can model", field=path)
    return body


def _first_bad(value: Any) -> list | None:
    """The keys leading to the first non-finite number or negative ``*_ms`` time, or None (per request: the
    path is only built when something is wrong)."""
    items = value.items() if type(value) is dict else enumerate(value) if type(value) is list else ()
    for key, item in items:
        kind = type(item)
        if kind is float:
            if not -math.inf < item < math.inf or (item < 0 and isinstance(key, str) and key.endswith("_ms")):
                return [key]
        elif kind is dict or kind is list:
            sub = _first_bad(item)
            if sub is not None:
                return [key, *sub]
    return None


def _at(body: Any, keys: list) -> Any:
    for key in keys:
        body = body[key]
    return body
