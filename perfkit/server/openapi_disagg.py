"""The OpenAPI schemas of a disaggregated system-metrics request and of the response's ``disaggregated``
object (built from :mod:`perfkit.inputs_disagg` and :mod:`perfkit.api_disagg`, so they cannot drift)."""
from __future__ import annotations

from ..api_disagg import POOL_KEYS
from ..engine.disagg import POOLS
from ..inputs_disagg import OPTIONAL, POOL_NAMES, POOL_OPTIONAL, POOL_REQUIRED, REQUIRED


def _obj(properties: dict, required=(), **more) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False,
            **more}


def request_schema(fields: dict) -> dict:
    """``DisaggregatedSystemMetricsRequest``: the aggregated request's fields less the layout ones, plus
    ``disaggregated`` (one layout, replica count and batch per pool). ``fields`` are openapi.py's field schemas."""
    pool = _obj({k: fields[k] for k in (*POOL_REQUIRED, *POOL_OPTIONAL)}, POOL_REQUIRED,
                description="one pool's layout: its layers (and pipeline_parallel), its replicas and batch_size, "
                            "the sequences it serves at once, split over its replicas; model_id, if given, must "
                            "be the request's")
    pools = _obj({name: pool for name in POOL_NAMES}, POOL_NAMES,
                 description="separate prefill and decode pools on consecutive chips (the top-level layers, "
                             "batch_size, replicas and pipeline_parallel are refused with it); decode.batch_size "
                             "is the requests in flight")
    return _obj({**{k: fields[k] for k in REQUIRED if k != "disaggregated"}, "disaggregated": pools,
                 **{k: fields[k] for k in OPTIONAL}}, REQUIRED)


def response_schema() -> dict:
    """The response's ``disaggregated`` object."""
    number = {"type": "number", "minimum": 0}
    types = {"num_chips": {"type": "integer", "minimum": 1}, "replicas": {"type": "integer", "minimum": 1},
             "batch_size": {"type": "integer", "minimum": 1}, "fits_on_hardware": {"type": "boolean"},
             "bottleneck": {"type": "string", "enum": ["compute", "memory", "communication"]},
             "utilisation": {"type": "number", "minimum": 0, "maximum": 1}}
    pool = _obj({k: types.get(k, number) for k in POOL_KEYS}, [k for k in POOL_KEYS if k not in ("ttft_ms", "tpot_ms")],
                description="one pool's own figures: ttft_ms (prefill pool: one pass of a replica's batch) or "
                            "tpot_ms (decode pool), throughput_tokens_s (prompt tokens / output tokens per "
                            "second), requests_s (its capacity), utilisation, memory and fit")
    return _obj({
        "limiting_pool": {"type": "string", "enum": list(POOLS)},
        "kv_transfer_ms": number, "kv_transfer_scaleout_share": {"type": "number", "minimum": 0, "maximum": 1},
        "prefill_wait_ms": number, "decoding_sequences": number, **{name: pool for name in POOL_NAMES},
    }, ("limiting_pool", "kv_transfer_ms", "kv_transfer_scaleout_share", "prefill_wait_ms", "decoding_sequences",
         *POOL_NAMES),
        description="with a disaggregated request: which pool limits the throughput, one request's KV-cache "
                    "transfer (ms) and the share of it over the scale-out network, the wait in the prefill pool, "
                    "and each pool's figures")
