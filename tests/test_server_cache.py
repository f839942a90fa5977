"""The response cache of the stateless POST endpoints (perfkit/server/cache.py): a cached answer is the
uncached one byte for byte, the cache stays within its bound, and errors, cookies and oversized bodies are
never kept."""
from __future__ import annotations

import json
import threading

import pytest

from perfkit import api
from perfkit.server import create_app
from perfkit.server.cache import CONFIG_KEY, ResponseCache, response_cache

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
# The seed's request bodies (SEED-stateless-api.md).
SEED_LAYER_REQUEST = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
                      "batch_size": 1, "seq_length": 2048, "dtype": "bf16", "tensor_parallel": 4,
                      "context_parallel": 2, "sequence_parallel": 1}
SEED_SYSTEM_REQUEST = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "batch_size": 1,
                       "input_seq": 2048, "output_seq": 128,
                       "layers": {"attention": {"tensor_parallel": 4, "context_parallel": 2, "dtype": "bf16"},
                                  "feedforward": {"tensor_parallel": 8, "dtype": "bf16"}}}


def _app(size=None, **config):
    settings = {"SECRET_KEY": "cache-test", **config}
    if size is not None:
        settings[CONFIG_KEY] = size
    return create_app(settings)


def _system(**changes) -> dict:
    return {**SEED_SYSTEM_REQUEST, **changes}


@pytest.mark.parametrize("path, body", [
    ("/config/system-metrics", SEED_SYSTEM_REQUEST),
    ("/config/system-metrics", _system(batch_size=64, serving_mode="continuous", uncertainty=True)),
    ("/config/system-metrics", _system(model_id="meta-llama/Llama-3.1-8B", hardware_config="nvidia_h100_hgx",
                                       layers={}, batch_size=512, input_seq=32768)),  # a "does not fit" note
    ("/config/layer-metrics", SEED_LAYER_REQUEST),
])
def test_a_cached_answer_is_the_uncached_answer(path, body):
    cached, plain = _app().test_client(), _app(size=0).test_client()
    first, again, reference = (c.post(path, json=body) for c in (cached, cached, plain))
    assert reference.status_code == 200
    for r in (first, again):
        assert r.status_code == 200 and r.data == reference.data
        assert sorted(r.headers.items()) == sorted(reference.headers.items())
    assert response_cache(cached.application).info()["hits"] == 1


def test_the_cache_is_off_at_size_zero():
    assert response_cache(_app(size=0)) is None
    with pytest.raises(ValueError, match="at least 1 entry"):
        ResponseCache(lambda environ, start_response: [], size=0)


def test_the_cache_holds_at_most_size_entries_least_recent_out_first():
    app = _app(size=3)
    client, cache = app.test_client(), response_cache(app)
    answers = {}
    for batch in range(1, 11):
        r = client.post("/config/system-metrics", json=_system(batch_size=batch))
        assert r.status_code == 200 and r.json["throughput_tokens_s"] == pytest.approx(batch * 1000 / r.json["tpot_ms"])
        answers[batch] = r.data
        assert cache.info()["entries"] == min(batch, 3)
    assert cache.info() == {"entries": 3, "size": 3, "hits": 0, "misses": 10}
    # 8, 9 and 10 are kept; 1 was dropped long ago: asking again recomputes it (the same answer)
    assert client.post("/config/system-metrics", json=_system(batch_size=10)).data == answers[10]
    assert cache.info()["hits"] == 1
    assert client.post("/config/system-metrics", json=_system(batch_size=1)).data == answers[1]
    assert cache.info()["hits"] == 1 and cache.info()["entries"] == 3


def test_errors_are_never_cached():
    app = _app()
    client, cache = app.test_client(), response_cache(app)
    for _ in range(2):
        r = client.post("/config/system-metrics", json=_system(batch_size=0))
        assert r.status_code == 400 and r.json["field"] == "batch_size"
    assert client.post("/config/system-metrics", data="{", content_type="application/json").status_code == 400
    assert client.post("/config/system-metrics", data=json.dumps(SEED_SYSTEM_REQUEST),
                       content_type="text/plain").status_code == 415
    assert cache.info()["entries"] == 0 and cache.info()["hits"] == 0


def test_a_failure_is_not_served_to_a_later_request(monkeypatch):
    app = _app()
    client, cache = app.test_client(), response_cache(app)
    real = api.system_metrics
    monkeypatch.setattr(api, "system_metrics", lambda body: 1 / 0)  # a bug for the first request only
    assert client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST).status_code == 500
    monkeypatch.setattr(api, "system_metrics", real)
    r = client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST)
    assert r.status_code == 200 and r.json == real(SEED_SYSTEM_REQUEST)
    assert cache.info() == {"entries": 1, "size": cache.size, "hits": 0, "misses": 2}


def test_cookies_and_the_session_flow_bypass_the_cache():
    app = _app()
    client, cache = app.test_client(), response_cache(app)
    load = client.post("/config/load", json={"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    assert load.status_code == 200 and "perfkit_session" in load.headers.get("Set-Cookie", "")
    body = {k: v for k, v in SEED_LAYER_REQUEST.items() if k not in ("model_id", "hardware_config")}
    for _ in range(2):  # the deprecated body: its answer depends on the cookie, so it is never kept
        assert client.post("/config/layer-metrics", json=body).status_code == 200
    assert client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST).status_code == 200  # cookie sent
    assert cache.info()["entries"] == 0 and cache.info()["misses"] == 0


def test_the_origin_is_part_of_the_key():
    app = create_app({"SECRET_KEY": "t"}, cors_origins=["https://ui.example"])
    client = app.test_client()
    for _ in range(2):
        allowed = client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST, headers={"Origin": "https://ui.example"})
        other = client.post("/config/system-metrics", json=SEED_SYSTEM_REQUEST, headers={"Origin": "https://evil.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        assert "Access-Control-Allow-Origin" not in other.headers
    assert response_cache(app).info()["entries"] == 2 and response_cache(app).info()["hits"] == 2


def test_large_bodies_are_answered_but_not_kept():
    app = _app()
    client, cache = app.test_client(), response_cache(app)
    padded = json.dumps(SEED_SYSTEM_REQUEST) + " " * (cache.max_body_bytes + 1)  # valid JSON, too long to keep
    for _ in range(2):
        r = client.post("/config/system-metrics", data=padded, content_type="application/json")
        assert r.status_code == 200 and r.json == api.system_metrics(SEED_SYSTEM_REQUEST)
    assert cache.info()["entries"] == 0


def test_threads_sharing_a_small_cache_get_their_own_answers():
    app = _app(size=2)
    expected = {b: api.system_metrics(_system(batch_size=b)) for b in range(1, 6)}
    wrong = []

    def client_thread(offset: int) -> None:
        client = app.test_client()
        for i in range(30):
            batch = (i + offset) % 5 + 1
            r = client.post("/config/system-metrics", json=_system(batch_size=batch))
            if r.status_code != 200 or r.json != expected[batch]:
                wrong.append((batch, r.status_code))

    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    info = response_cache(app).info()
    assert not wrong and info["entries"] <= 2 and info["hits"] + info["misses"] == 180
