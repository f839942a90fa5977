"""A catalogue of hostile requests: each gets a 4xx JSON body ``{"error", "field"}``, never a 500 or a traceback."""
from __future__ import annotations

import json

import pytest

from perfkit.server import create_app

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
SYSTEM = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "batch_size": 1, "input_seq": 128,
          "output_seq": 16}
LAYER = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
         "batch_size": 1, "seq_length": 128}


def system(**changes) -> dict:
    return {**SYSTEM, **changes}


def attention(**settings) -> dict:
    return system(layers={"attention": settings})


def layer(**changes) -> dict:
    return {**LAYER, **changes}


def without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


def raw(data: bytes | str, content_type: str | None = "application/json") -> dict:
    return {"data": data, "content_type": content_type}


POST_SYSTEM, POST_LAYER = ("POST", "/config/system-metrics"), ("POST", "/config/layer-metrics")
GET_LAYERS = ("GET", "/api/layers")

# (id, (method, path), request kwargs for the test client, status, field): field None = not checked,
# "prefix*" = starts with prefix
CATALOGUE = [
    # query strings
    ("layers-no-model", GET_LAYERS, {}, 400, "model_id"),
    ("layers-path-traversal", GET_LAYERS, {"query_string": {"model_id": "../../etc/passwd"}}, 400, "model_id"),
    ("layers-absolute-path", GET_LAYERS, {"query_string": {"model_id": "/etc/passwd"}}, 400, "model_id"),
    ("layers-url", GET_LAYERS, {"query_string": {"model_id": "https://evil.example/x/y"}}, 400, "model_id"),
    ("layers-dotdot-in-id", GET_LAYERS, {"query_string": {"model_id": "org/..%2F..%2Fsecret"}}, 400, "model_id"),
    ("layers-unknown-model", GET_LAYERS, {"query_string": {"model_id": "nobody/no-such-model"}}, 404, "model_id"),
    ("layers-empty-model", GET_LAYERS, {"query_string": {"model_id": ""}}, 400, "model_id"),
    ("layers-nul-byte", GET_LAYERS, {"query_string": {"model_id": "org/na\x00me"}}, 400, "model_id"),
    ("layers-huge-id", GET_LAYERS, {"query_string": {"model_id": "a/" + "b" * 5000}}, 400, "model_id"),
    ("layers-unicode-id", GET_LAYERS, {"query_string": {"model_id": "оrg/modеl"}}, 400, "model_id"),
    ("layers-trailing-space", GET_LAYERS, {"query_string": {"model_id": TINY + " "}}, 400, "model_id"),
    ("layers-repeated-param", GET_LAYERS, {"query_string": [("model_id", TINY), ("model_id", TINY)]}, 400,
     "model_id"),
    ("layers-unknown-param", GET_LAYERS, {"query_string": {"model_id": TINY, "modle_id": "x"}}, 400, "modle_id"),
    ("health-unknown-param", ("GET", "/api/health"), {"query_string": {"debug": "1"}}, 400, "debug"),
    # bodies that are not JSON objects
    ("invalid-json", POST_SYSTEM, raw('{"model_id": '), 400, None),
    ("empty-body", POST_SYSTEM, raw(b""), 400, None),
    ("array-body", POST_SYSTEM, raw("[1, 2]"), 400, None),
    ("string-body", POST_SYSTEM, raw('"hello"'), 400, None),
    ("null-body", POST_SYSTEM, raw("null"), 400, None),
    ("number-body", POST_LAYER, raw("42"), 400, None),
    ("nan", POST_SYSTEM, raw(json.dumps(system()).replace('"batch_size": 1', '"batch_size": NaN')), 400, None),
    ("infinity", POST_SYSTEM, raw(json.dumps(system()).replace('"input_seq": 128', '"input_seq": Infinity')), 400,
     None),
    ("minus-infinity", POST_LAYER, raw(json.dumps(layer()).replace('"seq_length": 128', '"seq_length": -Infinity')),
     400, None),
    ("float-overflow", POST_SYSTEM, raw(json.dumps(system()).replace('"batch_size": 1', '"batch_size": 1e999')), 400,
     None),
    ("huge-integer-literal", POST_SYSTEM, raw('{"batch_size": ' + "9" * 5000 + "}"), 400, None),
    ("duplicate-key", POST_SYSTEM, raw('{"batch_size": 1, "batch_size": 2}'), 400, "batch_size"),
    ("not-utf8", POST_SYSTEM, raw(b'{"model_id": "\xff\xfe"}'), 400, None),
    ("deep-nesting", POST_SYSTEM, raw("[" * 40000 + "]" * 40000), 413, None),
    ("deep-nesting-small", POST_SYSTEM, raw("[" * 30000), 400, None),
    ("text-plain", POST_SYSTEM, raw(json.dumps(SYSTEM), "text/plain"), 415, None),
    ("no-content-type", POST_SYSTEM, raw(json.dumps(SYSTEM), None), 415, None),
    ("form-encoded", POST_LAYER, {"data": {"model_id": TINY}}, 415, None),
    ("oversized", POST_SYSTEM, raw(json.dumps(system(pad="x" * 100_000))), 413, None),
    # fields
    ("missing-batch", POST_SYSTEM, {"json": without(SYSTEM, "batch_size")}, 400, "batch_size"),
    ("missing-model", POST_SYSTEM, {"json": without(SYSTEM, "model_id")}, 400, "model_id"),
    ("unknown-top-field", POST_SYSTEM, {"json": system(temperature=0.7)}, 400, "temperature"),
    ("typo-degree", POST_SYSTEM, {"json": attention(tensor_paralel=2)}, 400, "layers.attention.tensor_paralel"),
    ("unknown-layer-type", POST_SYSTEM, {"json": system(layers={"mlp": {}})}, 400, "layers.mlp"),
    ("layers-list", POST_SYSTEM, {"json": system(layers=[{"tensor_parallel": 2}])}, 400, "layers"),
    ("layer-settings-number", POST_SYSTEM, {"json": system(layers={"attention": 4})}, 400, "layers.attention*"),
    # types and sizes
    ("bool-batch", POST_SYSTEM, {"json": system(batch_size=True)}, 400, "batch_size"),
    ("string-batch", POST_SYSTEM, {"json": system(batch_size="1")}, 400, "batch_size"),
    ("float-batch", POST_SYSTEM, {"json": system(batch_size=1.5)}, 400, "batch_size"),
    ("integral-float-batch", POST_SYSTEM, {"json": system(batch_size=2.0)}, 400, "batch_size"),
    ("zero-batch", POST_SYSTEM, {"json": system(batch_size=0)}, 400, "batch_size"),
    ("negative-seq", POST_SYSTEM, {"json": system(input_seq=-4)}, 400, "input_seq"),
    ("absurd-batch", POST_SYSTEM, {"json": system(batch_size=10**30)}, 400, "batch_size"),
    ("absurd-output", POST_SYSTEM, {"json": system(output_seq=2**40)}, 400, "output_seq"),
    ("null-seq", POST_SYSTEM, {"json": system(input_seq=None)}, 400, "input_seq"),
    ("list-degree", POST_SYSTEM, {"json": attention(tensor_parallel=[2])}, 400, "layers.attention.tensor_parallel"),
    ("zero-degree", POST_SYSTEM, {"json": attention(tensor_parallel=0)}, 400, "layers.attention.tensor_parallel"),
    ("absurd-degree", POST_SYSTEM, {"json": attention(data_parallel=10**9)}, 400, "layers.attention.data_parallel"),
    ("bad-dtype", POST_SYSTEM, {"json": attention(dtype="bf17")}, 400, "layers.attention.dtype"),
    ("numeric-dtype", POST_SYSTEM, {"json": attention(dtype=16)}, 400, "layers.attention.dtype"),
    ("bad-kv-dtype", POST_SYSTEM, {"json": system(kv_dtype="fp64")}, 400, "kv_dtype"),
    ("model-id-number", POST_SYSTEM, {"json": system(model_id=7)}, 400, "model_id"),
    ("model-id-object", POST_SYSTEM, {"json": system(model_id={"$ne": ""})}, 400, "model_id"),
    ("model-id-path", POST_SYSTEM, {"json": system(model_id="../../../etc/passwd")}, 400, "model_id"),
    ("unknown-hardware", POST_SYSTEM, {"json": system(hardware_config="nvidia_h900")}, 404, "hardware_config"),
    ("hardware-path", POST_SYSTEM, {"json": system(hardware_config="../hardware/nvidia_h100_hgx")}, 404,
     "hardware_config"),
    ("hardware-list", POST_SYSTEM, {"json": system(hardware_config=["nvidia_h100_hgx"])}, 404, "hardware_config"),
    # parallelism the model or hardware cannot run
    ("degree-not-offered", POST_SYSTEM, {"json": attention(sequence_parallel=2)}, 400,
     "layers.attention.sequence_parallel"),
    ("expert-on-dense", POST_SYSTEM, {"json": system(layers={"feedforward": {"expert_parallel": 2}})}, 400,
     "layers.feedforward.expert_parallel"),
    ("tp-not-dividing-heads", POST_SYSTEM, {"json": attention(tensor_parallel=3)}, 400,
     "layers.attention.tensor_parallel"),
    ("chips-not-dividing", POST_SYSTEM, {"json": system(layers={"attention": {"tensor_parallel": 4},
                                                                "feedforward": {"sequence_parallel": 3}})}, 400,
     "layers"),
    ("beyond-max-size", POST_SYSTEM, {"json": system(hardware_config="google_tpu_v5e_pod",
                                                     layers={"attention": {"tensor_parallel": 8, "data_parallel": 64}})},
     400, "layers"),
    ("pipeline-too-deep", POST_SYSTEM, {"json": system(pipeline_parallel=1000)}, 400, "pipeline_parallel"),
    # layer metrics
    ("layer-bad-type", POST_LAYER, {"json": layer(layer_type="mlp")}, 400, "layer_type"),
    ("layer-type-list", POST_LAYER, {"json": layer(layer_type=["attention"])}, 400, "layer_type"),
    ("layer-zero-seq", POST_LAYER, {"json": layer(seq_length=0)}, 400, "seq_length"),
    ("layer-bad-phase", POST_LAYER, {"json": layer(phase="train")}, 400, "phase"),
    ("layer-unknown-field", POST_LAYER, {"json": layer(input_seq=5)}, 400, "input_seq"),
    ("layer-degree-not-offered", POST_LAYER, {"json": layer(layer_type="norm", tensor_parallel=2)}, 400,
     "tensor_parallel"),
    # the deprecated flow without a session, and with a forged one
    ("old-metrics-no-load", POST_LAYER, {"json": without(LAYER, "model_id")}, 409, "model_id"),
    ("old-metrics-unhashable-type", POST_LAYER, {"json": {"layer_type": {"a": 1}, "batch_size": 1,
                                                          "seq_length": 8}}, 409, "model_id"),
    ("old-layers-no-load", ("GET", "/config/layers"), {}, 409, "model_id"),
    ("old-parallelism-no-load", ("POST", "/config/layer-parallelism"),
     {"json": {"layer_type": "attention", "tensor_parallel": 2}}, 409, "model_id"),
    ("forged-session", ("GET", "/config/layers"),
     {"headers": {"Cookie": "perfkit_session=eyJtb2RlbF9pZCI6IngveSJ9.forged.signature"}}, 409, "model_id"),
    ("load-missing-hardware", ("POST", "/config/load"), {"json": {"model_id": TINY}}, 400, "hardware_config"),
    ("load-unknown-model", ("POST", "/config/load"),
     {"json": {"model_id": "nobody/nothing", "hardware_config": "nvidia_h100_hgx"}}, 404, "model_id"),
    ("load-extra-field", ("POST", "/config/load"),
     {"json": {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "trust_remote_code": True}}, 400,
     "trust_remote_code"),
    # routes and methods
    ("unknown-route", ("GET", "/api/secrets"), {}, 404, None),
    ("get-on-post-route", ("GET", "/config/system-metrics"), {}, 405, None),
    ("delete", ("DELETE", "/api/layers"), {}, 405, None),
    ("put-load", ("PUT", "/config/load"), {"json": {}}, 405, None),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def app():
    return create_app({"SECRET_KEY": "hostile-test"})


def test_catalogue_is_large_and_ids_are_unique():
    ids = [case[0] for case in CATALOGUE]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("name, route, kwargs, status, field", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_hostile_request(app, name, route, kwargs, status, field):
    method, path = route
    r = app.test_client().open(path, method=method, **kwargs)
    text = r.get_data(as_text=True)
    assert r.status_code == status, text
    assert r.mimetype == "application/json"
    body = json.loads(text)
    assert set(body) == {"error", "field"} and isinstance(body["error"], str) and body["error"]
    if field is not None:
        if field.endswith("*"):
            assert body["field"].startswith(field[:-1])
        else:
            assert body["field"] == field
    assert "Traceback" not in text and 'File "' not in text and "/perfkit/" not in text


def test_bad_values_are_named_in_the_message(app):
    client = app.test_client()
    assert "bf17" in client.post("/config/system-metrics", json=attention(dtype="bf17")).json["error"]
    message = client.post("/config/system-metrics", json=attention(tensor_paralel=2)).json["error"]
    assert "tensor_paralel" in message and "tensor_parallel" in message  # the typo and the valid choice
    message = client.post("/config/system-metrics", json=system(hardware_config="nvidia_h900")).json["error"]
    assert "nvidia_h900" in message and "nvidia_h100_hgx" in message


def test_method_not_allowed_lists_the_allowed(app):
    r = app.test_client().delete("/api/layers")
    assert "GET" in r.headers["Allow"]


def test_a_bug_is_a_bare_json_500(monkeypatch):
    """Even an unexpected exception leaks nothing: a generic JSON 500 (the traceback goes to the log)."""
    from perfkit import api

    def boom(_request):
        raise KeyError("secret internals")

    monkeypatch.setattr(api, "system_metrics", boom)
    app = create_app({"SECRET_KEY": "t"})
    r = app.test_client().post("/config/system-metrics", json=SYSTEM)
    assert r.status_code == 500 and set(r.json) == {"error", "field"}
    assert "secret internals" not in r.get_data(as_text=True)


def test_server_survives_the_catalogue(app):
    client = app.test_client()
    for _name, (method, path), kwargs, _status, _field in CATALOGUE:
        client.open(path, method=method, **kwargs)
    r = client.post("/config/system-metrics", json=SYSTEM)
    assert r.status_code == 200 and r.json["system"]["num_chips"] == 1
