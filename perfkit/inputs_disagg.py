"""Checking a disaggregated system-metrics request (the ``disaggregated`` field) into two flat configurations.

``{"disaggregated": {"prefill": {"replicas": 2, "batch_size": 1, "layers": {...}},
"decode": {"replicas": 1, "batch_size": 64, "layers": {...}}}}`` gives each pool its own layout (``layers``,
optionally ``pipeline_parallel``), ``replicas`` and ``batch_size`` (the sequences the pool serves at once,
split over its replicas). The top-level ``layers``, ``batch_size``, ``replicas`` and ``pipeline_parallel`` then
describe nothing and are refused. Each pool is checked exactly as a whole request is
(:func:`perfkit.inputs.system_config`), its errors naming ``disaggregated.<pool>.<field>``.
"""
from __future__ import annotations

from typing import Any, Mapping

from .errors import PerfkitError
from .inputs import SYSTEM_OPTIONAL, SYSTEM_REQUIRED, check_fields, system_config

POOL_NAMES = ("prefill", "decode")
#: What a pool's object may hold (``batch_size`` is required). ``model_id``, when given, must be the request's:
#: both pools serve one model (the KV cache of one cannot feed another).
POOL_REQUIRED = ("batch_size",)
POOL_OPTIONAL = ("replicas", "layers", "pipeline_parallel", "model_id")
#: Fields of a normal request that a pool's layout replaces.
PER_POOL = ("layers", "batch_size", "replicas", "pipeline_parallel")
REQUIRED = ("disaggregated", *(k for k in SYSTEM_REQUIRED if k not in PER_POOL))
OPTIONAL = tuple(k for k in SYSTEM_OPTIONAL if k not in PER_POOL)


def is_disaggregated(body: Any) -> bool:
    """Whether a request body asks for a disaggregated deployment."""
    return isinstance(body, Mapping) and "disaggregated" in body


def disaggregated_config(body: Any) -> tuple[dict, dict]:
    """The flat configurations (as :func:`perfkit.inputs.system_config` gives) of the prefill and the decode
    pool of a disaggregated request body; both share the request's model, hardware, sequence lengths, KV dtype
    (the prefill pool's attention dtype unless ``kv_dtype`` is given: one format travels between the pools),
    serving engine and load fields."""
    for key in PER_POOL:
        if key in body:
            raise PerfkitError(f"{key} describes one aggregated layout; with disaggregated, give each pool its own "
                               f"(disaggregated.prefill.{key}, disaggregated.decode.{key})", field=key)
    check_fields(body, REQUIRED, OPTIONAL)
    pools = body["disaggregated"]
    check_fields(pools, POOL_NAMES, (), "disaggregated.")
    common = {k: v for k, v in body.items() if k != "disaggregated"}
    flats = []
    for name in POOL_NAMES:
        where = f"disaggregated.{name}."
        pool = pools[name]
        check_fields(pool, POOL_REQUIRED, POOL_OPTIONAL, where)
        if "model_id" in pool and pool["model_id"] != body["model_id"]:
            raise PerfkitError(f"{where}model_id={pool['model_id']!r} differs from model_id={body['model_id']!r}: "
                               "both pools serve one model (the decode pool continues the prefill pool's KV "
                               f"cache); valid choices: {body['model_id']!r}", field=where + "model_id")
        request = {**common, **{k: v for k, v in pool.items() if k != "model_id"}}
        if name == "decode" and "kv_dtype" not in common:
            request["kv_dtype"] = flats[0]["kv_dtype"]
        flats.append(_pool_config(request, where))
    return flats[0], flats[1]


def _pool_config(request: dict, where: str) -> dict:
    """:func:`system_config` of one pool, its errors re-raised with the pool's field path."""
    try:
        return system_config(request)
    except PerfkitError as exc:
        field = exc.field
        if field in PER_POOL or (field or "").startswith("layers."):
            message = exc.message.replace(field, where + field, 1) if field and field in exc.message else exc.message
            raise type(exc)(message if where in message else f"{where.rstrip('.')}: {message}",
                            field=where + field) from None
        raise
