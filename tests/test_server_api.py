"""The HTTP API through Flask's test client: the seed's flows (Before, After, comparison), the deprecated
stateful flow per client, discovery endpoints, headers, CORS and the secret key."""
from __future__ import annotations

import logging

import pytest

import perfkit
from perfkit.server import create_app
from perfkit.server.openapi import spec

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
LLAMA8B = "meta-llama/Llama-3.1-8B"

# The seed's request bodies, verbatim (SEED-stateless-api.md).
SEED_LAYER_REQUEST = {
    "model_id": TINY, "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
    "batch_size": 1, "seq_length": 2048, "dtype": "bf16",
    "tensor_parallel": 4, "context_parallel": 2, "sequence_parallel": 1,
}
SEED_LAYERS = {
    "attention": {"tensor_parallel": 4, "context_parallel": 2, "sequence_parallel": 1, "dtype": "bf16"},
    "feedforward": {"tensor_parallel": 8, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
    "norm": {"tensor_parallel": 1, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
    "embedding": {"tensor_parallel": 1, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
}
SEED_SYSTEM_REQUEST = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "batch_size": 1,
                       "input_seq": 2048, "output_seq": 128, "layers": SEED_LAYERS}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def app():
    return create_app({"SECRET_KEY": "test-secret", "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def _assert_system_arithmetic(body: dict, request: dict) -> None:
    """The seed's arithmetic (DESIGN.md), whatever the engine's numbers are."""
    assert body["total_latency_ms"] == pytest.approx(body["ttft_ms"] + request["output_seq"] * body["tpot_ms"])
    assert body["throughput_tokens_s"] == pytest.approx(request["batch_size"] * 1000 / body["tpot_ms"])
    m = body["memory"]
    assert m["total_memory_gb"] == pytest.approx(m["weight_memory_gb"] + m["activation_memory_gb"] + m["kv_cache_gb"])
    assert body["system"]["bottleneck"] in ("compute", "memory", "communication")
    assert body["system"]["fits_on_hardware"] == (m["memory_per_chip_gb"] <= m["hw_capacity_gb"])


def _assert_layer_arithmetic(body: dict) -> None:
    n, m = body["num_instances"], body["memory"]
    assert m["total_weights_gb"] == pytest.approx(m["weights_per_chip_gb"] * n)
    assert m["total_kv_cache_gb"] == pytest.approx(m["kv_cache_per_chip_gb"] * n)
    assert body["compute"]["total_flops_tflops"] == pytest.approx(body["compute"]["flops_per_chip_tflops"] * n)
    assert sum(body["bottleneck"].values()) == pytest.approx(100)


# -- the seed's "After" and comparison-mode frontends --------------------------------------------------------


def test_after_flow_get_layers_is_the_library_answer(client):
    r = client.get("/api/layers", query_string={"model_id": TINY})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.json == perfkit.layers(TINY)
    attention = r.json["layers"][0]
    assert attention["type"] == "attention" and attention["count"] == 22
    assert "Deprecation" not in r.headers


def test_after_flow_layer_metrics_is_the_library_answer(client):
    r = client.post("/config/layer-metrics", json=SEED_LAYER_REQUEST)
    assert r.status_code == 200
    assert r.json == perfkit.layer_metrics(SEED_LAYER_REQUEST)
    assert r.json["layer_type"] == "attention" and r.json["num_instances"] == 22
    assert r.json["parallelism"]["tensor_parallel"] == 4 and r.json["parallelism"]["context_parallel"] == 2
    _assert_layer_arithmetic(r.json)
    assert "Deprecation" not in r.headers and "Set-Cookie" not in r.headers


def test_comparison_mode_two_configs_without_conflict(client):
    config2 = {"model_id": "meta-llama/Llama-3.3-70B-Instruct", "hardware_config": "nvidia_nvl72_rack",
               "batch_size": 8, "input_seq": 4096, "output_seq": 512,
               "layers": {"attention": {"tensor_parallel": 8}, "feedforward": {"tensor_parallel": 8},
                          "embedding": {"tensor_parallel": 8}}}
    first = client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST)
    second = client.post("/config/system-metrics", json=config2)
    again = client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST)
    assert first.status_code == second.status_code == 200
    assert first.json == again.json == perfkit.system_metrics(SEED_SYSTEM_REQUEST)
    assert second.json == perfkit.system_metrics(config2)
    assert first.json["system"]["num_chips"] == 8 and second.json["system"]["num_chips"] == 8
    # 70B weights dwarf TinyLlama's (DESIGN.md: ~141 GB vs ~2.2 GB in bf16)
    assert second.json["memory"]["weight_memory_gb"] > 30 * first.json["memory"]["weight_memory_gb"]
    _assert_system_arithmetic(first.json, SEED_SYSTEM_REQUEST)
    _assert_system_arithmetic(second.json, config2)


# -- the seed's "Before" frontend (deprecated, stateful per client) ------------------------------------------


def test_before_flow_exact_calls(client):
    load = client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    assert load.status_code == 200 and load.json["model_id"] == TINY
    layers = client.get("/config/layers")
    assert layers.status_code == 200
    assert layers.json["layers"] == perfkit.layers(TINY)["layers"]
    metrics = client.post("/config/layer-metrics", json={"layer_type": "attention", "batch_size": 1,
                                                         "seq_length": 2048})
    assert metrics.status_code == 200
    expected = perfkit.layer_metrics({"model_id": TINY, "hardware_config": "nvidia_gb200_single",
                                      "layer_type": "attention", "batch_size": 1, "seq_length": 2048})
    assert metrics.json == expected
    for r in (load, layers, metrics):
        assert r.headers["Deprecation"].startswith("@")
        assert 'rel="successor-version"' in r.headers["Link"]
    assert layers.headers["Link"] == '</api/layers>; rel="successor-version"'
    assert metrics.headers["Link"] == '</config/layer-metrics>; rel="successor-version"'


def test_layer_parallelism_feeds_old_layer_metrics(client):
    client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    r = client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 4,
                                                       "context_parallel": 2, "dtype": "fp8"})
    assert r.status_code == 200
    assert r.json["layers"]["attention"] == {"tensor_parallel": 4, "context_parallel": 2, "dtype": "fp8"}
    r = client.post("/config/layer-parallelism", json={"layers": {"feedforward": {"tensor_parallel": 2}}})
    assert set(r.json["layers"]) == {"attention", "feedforward"}
    old = client.post("/config/layer-metrics", json={"layer_type": "attention", "batch_size": 2, "seq_length": 512})
    new = client.post("/config/layer-metrics", json={
        "model_id": TINY, "hardware_config": "nvidia_gb200_single", "layer_type": "attention", "batch_size": 2,
        "seq_length": 512, "tensor_parallel": 4, "context_parallel": 2, "dtype": "fp8"})
    assert old.status_code == new.status_code == 200
    assert old.json == new.json
    assert client.get("/config/layers").json["layer_parallelism"]["feedforward"] == {"tensor_parallel": 2}


def test_old_body_fields_override_the_session(client):
    client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 4})
    r = client.post("/config/layer-metrics", json={"layer_type": "attention", "batch_size": 1, "seq_length": 64,
                                                   "tensor_parallel": 2})
    assert r.json["parallelism"]["tensor_parallel"] == 2


def test_refused_parallelism_leaves_the_session_unchanged(client):
    client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 4})
    r = client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 3})
    assert r.status_code == 400 and "valid choices" in r.json["error"]
    assert r.headers["Deprecation"].startswith("@")
    assert client.get("/config/layers").json["layer_parallelism"] == {"attention": {"tensor_parallel": 4}}


def test_load_resets_layer_settings(client):
    client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 4})
    client.post("/config/load", json={"model_id": LLAMA8B, "hardware_config": "nvidia_h100_hgx"})
    r = client.get("/config/layers")
    assert r.json["model_id"] == LLAMA8B and r.json["layer_parallelism"] == {}
    assert r.json["layers"][0]["count"] == 32


def test_two_interleaved_clients_keep_separate_state(app):
    a, b = app.test_client(), app.test_client()
    assert a.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"}).status_code == 200
    assert b.post("/config/load", json={"model_id": LLAMA8B, "hardware_config": "nvidia_h100_hgx"}).status_code == 200
    a.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 4})
    b.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 8})
    old_body = {"layer_type": "attention", "batch_size": 1, "seq_length": 2048}
    ra, rb = a.post("/config/layer-metrics", json=old_body), b.post("/config/layer-metrics", json=old_body)
    assert (ra.json["num_instances"], ra.json["parallelism"]["tensor_parallel"]) == (22, 4)
    assert (rb.json["num_instances"], rb.json["parallelism"]["tensor_parallel"]) == (32, 8)
    assert a.get("/config/layers").json["model_id"] == TINY
    assert b.get("/config/layers").json["model_id"] == LLAMA8B
    fresh = app.test_client()  # a third client has loaded nothing
    assert fresh.get("/config/layers").status_code == 409


def test_any_replica_with_the_same_secret_answers():
    one, two = create_app({"SECRET_KEY": "shared"}), create_app({"SECRET_KEY": "shared"})
    other = create_app({"SECRET_KEY": "different"})
    c1 = one.test_client()
    c1.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    cookie = c1.get_cookie("perfkit_session")
    assert cookie is not None and TINY not in cookie.value  # signed and encoded, not plain JSON
    c2, c3 = two.test_client(), other.test_client()
    c2.set_cookie("perfkit_session", cookie.value)
    c3.set_cookie("perfkit_session", cookie.value)
    assert c2.get("/config/layers").json["model_id"] == TINY
    assert c3.get("/config/layers").status_code == 409  # a cookie signed by another key is ignored


def test_old_flow_without_load_says_what_to_call_first(client):
    for r in (client.get("/config/layers"),
              client.post("/config/layer-parallelism", json={"layer_type": "attention", "tensor_parallel": 2}),
              client.post("/config/layer-metrics", json={"layer_type": "attention", "batch_size": 1,
                                                         "seq_length": 8})):
        assert r.status_code == 409
        assert "POST /config/load" in r.json["error"] and r.json["field"] == "model_id"
        assert r.headers["Deprecation"].startswith("@")


def test_stateless_endpoints_set_no_cookie(client):
    for r in (client.get("/api/layers", query_string={"model_id": TINY}),
              client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST),
              client.post("/config/layer-metrics", json=SEED_LAYER_REQUEST)):
        assert r.status_code == 200 and "Set-Cookie" not in r.headers


# -- discovery ---------------------------------------------------------------------------------------------


def test_models_hardware_health(client):
    models = client.get("/api/models").json["models"]
    assert [m["id"] for m in models] == perfkit.list_models()
    tiny = next(m for m in models if m["id"] == TINY)
    assert tiny["num_layers"] == 22 and tiny["hidden_size"] == 2048
    hardware = client.get("/api/hardware").json["hardware"]
    assert [h["name"] for h in hardware] == perfkit.list_hardware()
    assert all(h["memory_gb"] > 0 and h["chips_per_node"] >= 1 for h in hardware)
    health = client.get("/api/health").json
    assert health["status"] == "ok" and health["version"] == perfkit.__version__


def test_openapi_describes_every_route(app, client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"} if rule.endpoint != "static"}
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == described
    for path, ops in doc["paths"].items():
        for op in ops.values():
            if path in ("/", "/openapi.json"):
                continue
            assert "200" in op["responses"] and "400" in op["responses"]
            if "requestBody" in op:
                assert "413" in op["responses"] and "415" in op["responses"]
    deprecated = {path for path, ops in doc["paths"].items() if any(o.get("deprecated") for o in ops.values())}
    assert deprecated == {"/config/load", "/config/layer-parallelism", "/config/layers"}


def test_openapi_request_fields_are_the_checked_fields(client):
    from perfkit import inputs

    schemas = client.get("/openapi.json").json["components"]["schemas"]
    system = schemas["SystemMetricsRequest"]
    assert set(system["properties"]) == {*inputs.SYSTEM_REQUIRED, *inputs.SYSTEM_OPTIONAL}
    assert set(system["required"]) == set(inputs.SYSTEM_REQUIRED)
    layer = schemas["LayerMetricsRequest"]
    assert set(layer["properties"]) == {*inputs.LAYER_REQUIRED, *inputs.LAYER_OPTIONAL}
    assert set(schemas["DeprecatedLayerMetricsRequest"]["properties"]) == set(layer["properties"]) - {"model_id"}


def test_uncertainty_bands_are_described(client):
    r = client.post("/config/system-metrics", json={**SEED_SYSTEM_REQUEST, "uncertainty": True})
    assert r.status_code == 200
    bands = r.json["uncertainty"]
    assert bands["ttft_ms_p10"] <= r.json["ttft_ms"] <= bands["ttft_ms_p90"]
    described = client.get("/openapi.json").json["components"]["schemas"]["SystemMetricsResponse"]
    assert set(described["properties"]["uncertainty"]["required"]) == set(bands)


def test_openapi_enums_follow_the_catalog(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert schemas["HardwareId"]["enum"] == perfkit.list_hardware()
    assert schemas["Dtype"]["enum"] == list(perfkit.dtypes.DTYPES)


def test_index_page_links_the_endpoints(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    for href in ("/openapi.json", "/api/models", "/api/hardware", "/api/health", "/api/layers?model_id="):
        assert f'href="{href}' in page or f"href='{href}" in page


# -- configuration -----------------------------------------------------------------------------------------


def test_secret_from_environment_or_generated_with_warning(monkeypatch, caplog):
    monkeypatch.setenv("PERFKIT_SECRET_KEY", "from-env")
    with caplog.at_level(logging.WARNING, logger="perfkit.server.app"):
        assert create_app().secret_key == "from-env"
    assert not caplog.records
    monkeypatch.delenv("PERFKIT_SECRET_KEY")
    with caplog.at_level(logging.WARNING, logger="perfkit.server.app"):
        first, second = create_app(), create_app()
    assert first.secret_key and first.secret_key != second.secret_key
    assert any("PERFKIT_SECRET_KEY" in r.getMessage() for r in caplog.records)


def test_cors_off_by_default(client):
    r = client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_allow_list():
    client = create_app({"SECRET_KEY": "t"}, cors_origins=["https://ui.example"]).test_client()
    ok = client.get("/api/health", headers={"Origin": "https://ui.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert "Deprecation" in ok.headers["Access-Control-Expose-Headers"]
    other = client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/config/system-metrics", headers={
        "Origin": "https://ui.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


def test_cors_from_environment(monkeypatch):
    monkeypatch.setenv("PERFKIT_CORS_ORIGINS", "https://a.example, https://b.example")
    client = create_app({"SECRET_KEY": "t"}).test_client()
    r = client.get("/api/health", headers={"Origin": "https://b.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://b.example"


def test_spec_is_cached_and_json_serialisable():
    import json

    assert spec() is spec()
    assert json.loads(json.dumps(spec(), allow_nan=False)) == spec()
