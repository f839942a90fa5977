"""A catalogue of hostile requests: each gets a 4xx JSON body ``{"error", "field"}``, never a 500 or a traceback."""
from __future__ import annotations

import json

import pytest

from perfkit import PerfkitError
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
    ("layers-trailing-newline", GET_LAYERS, {"query_string": {"model_id": TINY + "\n"}}, 400, "model_id"),
    ("layers-trailing-crlf", GET_LAYERS, {"query_string": {"model_id": TINY + "\r\n"}}, 400, "model_id"),
    ("model-id-newline", POST_SYSTEM, {"json": system(model_id=TINY + "\n")}, 400, "model_id"),
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


# -- issue 13: answers that could have been a 500 --------------------------------------------------------------

FORGED_SESSIONS = [
    [1, 2], "text", 7, None, {"model_id": 5, "hardware_config": "nvidia_h100_hgx"},
    {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layers": [1]},
    {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layers": {"attention": 3}},
    {"model_id": TINY, "hardware_config": ["nvidia_h100_hgx"], "layers": {}},
    {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layers": {"attention": {"tensor_parallel": "x"}}},
    {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layers": {"mlp": {"tensor_parallel": 10**40}}},
    {"model_id": "../../etc/passwd", "hardware_config": "nvidia_h100_hgx", "layers": {}},
]


@pytest.mark.parametrize("payload", FORGED_SESSIONS, ids=range(len(FORGED_SESSIONS)))
def test_a_cookie_forged_with_the_real_secret_is_never_a_500(app, payload):
    cookie = app.session_interface.get_signing_serializer(app).dumps(payload)
    client = app.test_client()
    client.set_cookie("perfkit_session", cookie)
    for method, path, body in [("GET", "/config/layers", None),
                               ("POST", "/config/layer-metrics", {"layer_type": "attention", "batch_size": 1,
                                                                  "seq_length": 8}),
                               ("POST", "/config/layer-parallelism", {"layer_type": "attention", "tensor_parallel": 2})]:
        r = client.open(path, method=method, json=body)
        assert r.status_code < 500 and r.mimetype == "application/json", (path, r.get_data(as_text=True))


def test_a_signed_cookie_with_an_undecodable_tag_is_no_session(app):
    """Flask's tagged JSON (`{" t": ["d", ...]}` for dates) with a bad value failed the request before."""
    import hashlib

    from itsdangerous import URLSafeTimedSerializer

    class Raw:
        dumps = staticmethod(lambda _obj: '{" t": ["d", "not a date"]}')

    forged = URLSafeTimedSerializer("hostile-test", salt="cookie-session", serializer=Raw,
                                    signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1})
    client = app.test_client()
    client.set_cookie("perfkit_session", forged.dumps(None))
    r = client.get("/config/layers")
    assert r.status_code == 409 and r.json["field"] == "model_id"


def test_a_nan_never_reaches_a_response(monkeypatch):
    from perfkit import api

    real = api.system_metrics

    def nan_figures(request):
        body = real(request)
        body["memory"]["kv_cache_gb"] = float("nan")
        return body

    monkeypatch.setattr(api, "system_metrics", nan_figures)
    r = create_app({"SECRET_KEY": "t"}).test_client().post("/config/system-metrics", json=SYSTEM)
    assert r.status_code == 422 and r.json["field"] == "memory.kv_cache_gb"
    assert "NaN" not in r.get_data(as_text=True) and "nan" in r.json["error"]


def test_a_negative_time_never_reaches_a_response(monkeypatch):
    from perfkit import api

    real = api.system_metrics
    monkeypatch.setattr(api, "system_metrics", lambda request: {**real(request), "ttft_ms": -895967.0})
    r = create_app({"SECRET_KEY": "t"}).test_client().post("/config/system-metrics", json=SYSTEM)
    assert r.status_code == 422 and r.json["field"] == "ttft_ms"


def test_openapi_carries_the_model_id_pattern_the_server_enforces(app):
    import re

    from perfkit import catalog

    schema = app.test_client().get("/openapi.json").json["components"]["schemas"]["ModelId"]
    assert schema["pattern"] == catalog.MODEL_ID_PATTERN
    pattern = re.compile(schema["pattern"])
    for candidate in (TINY, TINY + "\n", "a/b", "a/b/c", "../a/b", "a/" + "b" * 96, "a/" + "b" * 97, "-x/y", "x/y."):
        try:
            catalog.check_model_id(candidate)
            enforced = True
        except PerfkitError:
            enforced = False
        documented = bool(pattern.search(candidate)) and len(candidate) <= schema["maxLength"]
        assert documented == enforced or ".." in candidate, candidate


@pytest.fixture
def broken_hardware(tmp_path, monkeypatch):
    from perfkit import catalog

    from pathlib import Path

    folder = tmp_path / "hardware"
    folder.mkdir()
    for path in (Path(catalog.__file__).resolve().parent.parent / "hardware").glob("*.yaml"):
        text = path.read_text()
        if path.stem == "nvidia_h100_hgx":
            text = text.replace("memory_bytes: 85520809984", "memory_bytes: .nan")
        (folder / path.name).write_text(text)
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(folder))
    caches = (catalog._hardware_root, catalog._hardware_files, catalog._hardware_spec)
    for c in caches:
        c.cache_clear()
    yield folder
    for c in caches:
        c.cache_clear()


def test_one_broken_hardware_file_breaks_only_itself(broken_hardware):
    client = create_app({"SECRET_KEY": "t"}).test_client()
    names = [h["name"] for h in client.get("/api/hardware").json["hardware"]]
    assert "nvidia_h100_hgx" not in names and "nvidia_h200_hgx" in names and len(names) >= 10
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json["status"] == "degraded"
    assert r.json["catalog_errors"] == ["hardware 'nvidia_h100_hgx': memory_bytes must be a finite number, got nan"]
    r = client.post("/config/system-metrics", json=system(hardware_config="nvidia_h100_hgx"))
    assert r.status_code == 500 and "hardware 'nvidia_h100_hgx': memory_bytes" in r.json["error"]
    for text in (r.get_data(as_text=True), client.get("/api/health").get_data(as_text=True)):
        assert str(broken_hardware) not in text and ".yaml" not in text
    assert client.post("/config/system-metrics", json=system(hardware_config="nvidia_h200_hgx")).status_code == 200


def test_broken_local_config_answers_without_its_path(tmp_path, monkeypatch):
    from perfkit import catalog

    (tmp_path / "x--y_config.json").write_text('["not", "an", "object"]')
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    catalog._model_spec.cache_clear()
    try:
        r = create_app({"SECRET_KEY": "t"}).test_client().post("/config/system-metrics", json=system(model_id="x/y"))
        assert r.status_code == 500 and r.json["error"] == "model 'x/y': config.json must hold an object"
        assert str(tmp_path) not in r.get_data(as_text=True)
    finally:
        catalog._model_spec.cache_clear()
