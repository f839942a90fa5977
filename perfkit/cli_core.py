"""Sub-commands over the three API responses: ``layers``, ``metrics``, ``models``, ``hardware``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import api, catalog
from .errors import PerfkitError


def register(sub) -> None:
    p = sub.add_parser("layers", help="the body of GET /api/layers for a model")
    p.add_argument("model_id")
    p.set_defaults(func=lambda a: _print(api.layers(a.model_id)))

    p = sub.add_parser("metrics", help="system or layer metrics for a JSON request (file or - for stdin)")
    p.add_argument("request", help="path of a JSON request body, or - to read standard input")
    p.set_defaults(func=_metrics)

    p = sub.add_parser("models", help="bundled model ids")
    p.set_defaults(func=lambda a: print("\n".join(catalog.list_models())))

    p = sub.add_parser("hardware", help="hardware systems and their key specs")
    p.set_defaults(func=lambda a: _print([catalog.hardware_spec(n).summary() for n in catalog.list_hardware()]))


def _print(obj) -> int:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _metrics(args) -> int:
    text = sys.stdin.read() if args.request == "-" else _read(args.request)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PerfkitError(f"request is not valid JSON: {exc}") from None
    is_layer = isinstance(body, dict) and "layer_type" in body
    return _print(api.layer_metrics(body) if is_layer else api.system_metrics(body))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PerfkitError(f"cannot read request file {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
