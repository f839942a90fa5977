"""Schema fuzzing: requests drawn from ``/openapi.json`` (valid, mutated and arbitrary) never get a 5xx,
every status is one the description lists, and every JSON body is valid against its response schema.
1,000 cases, derandomized (the same cases every run), in the Flask test client: seconds, not minutes."""
from __future__ import annotations

import json
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from perfkit import catalog, list_models
from perfkit.server import create_app
from perfkit.server.openapi import spec

DOC = spec()
URI = "urn:perfkit:openapi"
REGISTRY = Registry().with_resource(URI, DRAFT202012.create_resource(DOC))
OPERATIONS = sorted((path, method) for path, ops in DOC["paths"].items() for method in ops)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(schema: dict) -> st.SearchStrategy:
    """Values valid against the subset of JSON Schema that ``/openapi.json`` uses (defaults and small numbers
    favoured, so that many requests reach the engine instead of stopping at a check)."""
    schema = _resolve(schema)
    if "default" in schema:
        return st.just(schema["default"]) | from_schema({k: v for k, v in schema.items() if k != "default"})
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("type") == "integer":
        low, high = schema.get("minimum", -2**31), schema.get("maximum", 2**31)
        return st.integers(low, min(high, 8)) | st.integers(low, high)
    if schema.get("type") == "string":
        return st.text(max_size=20)
    if schema.get("type") == "boolean":
        return st.booleans()
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        required = schema.get("required", [])
        return st.fixed_dictionaries({k: from_schema(props[k]) for k in required},
                                     optional={k: from_schema(v) for k, v in props.items() if k not in required})
    return json_values


#: Cases per run of the schema fuzz (issue 13: at least 1,000).
FUZZ_CASES = 1000


def _model_ids() -> st.SearchStrategy:
    """Bundled ids, ids of the right form that no catalog knows, near misses (a trailing newline) and noise."""
    well_formed = st.from_regex(catalog._MODEL_ID, fullmatch=True)
    return (st.sampled_from(list_models()) | well_formed | well_formed.map(lambda m: m + "\n")
            | st.text(max_size=30))


@st.composite
def mutated(draw, schema: dict):
    """A valid body with one field dropped, replaced by an arbitrary value, or added."""
    body = draw(from_schema(schema))
    if not isinstance(body, dict):
        return body
    action = draw(st.sampled_from(["drop", "replace", "add"]))
    if action == "add" or not body:
        body[draw(st.text(max_size=12))] = draw(json_values)
    else:
        key = draw(st.sampled_from(sorted(body)))
        if action == "drop":
            del body[key]
        else:
            body[key] = draw(json_values)
    return body


@st.composite
def requests(draw):
    path, method = draw(st.sampled_from(OPERATIONS))
    op = DOC["paths"][path][method]
    kwargs = {}
    if "parameters" in op:
        params = {p["name"]: draw(_model_ids()) for p in op["parameters"] if draw(st.booleans()) or p["required"]}
        kwargs["query_string"] = params
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        body = draw(from_schema(schema) | mutated(schema) | json_values)
        if isinstance(body, dict) and "model_id" in body and draw(st.booleans()):  # reach the engine
            body["model_id"] = draw(st.sampled_from(list_models()))
        kwargs["data"] = json.dumps(body)
        kwargs["content_type"] = "application/json"
    return path, method, kwargs


@lru_cache(maxsize=None)
def _validator(path: str, method: str, status: int) -> Draft202012Validator:
    pointer = "/".join(["#", "paths", path.replace("~", "~0").replace("/", "~1"), method, "responses",
                        str(status), "content", "application~1json", "schema"])
    return Draft202012Validator({"$ref": URI + pointer}, registry=REGISTRY)


@pytest.fixture(scope="module")
def client():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    client = create_app({"SECRET_KEY": "fuzz"}).test_client()
    # a loaded session, so that the deprecated endpoints are exercised past their 409
    assert client.post("/config/load", json={"model_id": "meta-llama/Llama-3.1-8B",
                                             "hardware_config": "nvidia_h100_hgx"}).status_code == 200
    return client


@settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests())
def test_schema_fuzz(client, request):
    path, method, kwargs = request
    r = client.open(path, method=method.upper(), **kwargs)
    event(f"{method.upper()} {path} -> {r.status_code}")
    assert r.status_code < 500, r.get_data(as_text=True)
    documented = DOC["paths"][path][method]["responses"]
    assert str(r.status_code) in documented, (r.status_code, r.get_data(as_text=True))
    if r.mimetype == "application/json":
        errors = sorted(_validator(path, method, r.status_code).iter_errors(r.json), key=str)
        assert not errors, (r.json, [e.message for e in errors[:3]])


def test_response_validator_bites(client):
    seed = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
            "input_seq": 8, "output_seq": 8}
    r = client.post("/config/system-metrics", json=seed)
    validator = _validator("/config/system-metrics", "post", 200)
    assert r.status_code == 200 and not list(validator.iter_errors(r.json))
    assert list(validator.iter_errors({**r.json, "ttft_ms": "fast"}))
    assert list(validator.iter_errors({k: v for k, v in r.json.items() if k != "memory"}))
