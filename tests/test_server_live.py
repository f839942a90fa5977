"""``perfkit serve`` for real: a waitress process on a free loopback port, spoken to over HTTP by the seed's
old ("Before") and new ("After", comparison mode) frontends; and the command's options."""
from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import perfkit
from perfkit import cli
from perfkit.server import cli as serve_cli

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
ROOT = Path(perfkit.__file__).resolve().parent.parent


def _serve(*options: str, secret: str | None = "live-test"):
    """``perfkit serve --port 0`` in a subprocess; yields its base URL, then stops it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("PERFKIT_SECRET_KEY", None)
    if secret:
        env["PERFKIT_SECRET_KEY"] = secret
    proc = subprocess.Popen([sys.executable, "-m", "perfkit.cli", "serve", "--port", "0", "--offline", *options],
                            env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for line in proc.stderr:  # the log line that names the bound port
            if "perfkit API on " in line:
                base = line.split("perfkit API on ")[1].split()[0].rstrip("/")
                break
        assert base, "perfkit serve exited before it was listening"
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe from filling
        _wait_healthy(base)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    yield from _serve("--threads", "4", "--workers", "1")


def _wait_healthy(base: str) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=5) as r:
                if json.load(r)["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server never answered /api/health")


class Frontend:
    """A browser-like client: JSON requests and a cookie jar (what axios gets from the browser)."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, method: str, path: str, body=None, params=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), json.load(r)
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), json.load(err)


def test_before_frontend_over_http(server):
    old = Frontend(server)
    status, headers, _ = old.call("POST", "/config/load", {"model_id": TINY, "hardware_config": "nvidia_gb200_single"})
    assert status == 200 and headers["Deprecation"].startswith("@")
    status, _, layers = old.call("GET", "/config/layers")
    assert status == 200 and layers["layers"] == perfkit.layers(TINY)["layers"]
    status, headers, metrics = old.call("POST", "/config/layer-metrics",
                                        {"layer_type": "attention", "batch_size": 1, "seq_length": 2048})
    assert status == 200 and metrics["num_instances"] == 22
    assert headers["Link"] == '</config/layer-metrics>; rel="successor-version"'
    other = Frontend(server)  # a second browser has loaded nothing
    status, _, error = other.call("GET", "/config/layers")
    assert status == 409 and "POST /config/load" in error["error"]


def test_after_and_comparison_frontend_over_http(server):
    new = Frontend(server)
    status, _, layers = new.call("GET", "/api/layers", params={"model_id": TINY})
    assert status == 200 and layers == perfkit.layers(TINY)
    request = {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
               "batch_size": 1, "seq_length": 2048, "dtype": "bf16", "tensor_parallel": 4, "context_parallel": 2,
               "sequence_parallel": 1}
    status, headers, metrics = new.call("POST", "/config/layer-metrics", request)
    assert status == 200 and metrics == perfkit.layer_metrics(request) and "Deprecation" not in headers
    configs = [
        {"model_id": TINY, "hardware_config": "nvidia_gb200_single", "batch_size": 1, "input_seq": 2048,
         "output_seq": 128, "layers": {"attention": {"tensor_parallel": 4, "context_parallel": 2},
                                       "feedforward": {"tensor_parallel": 8}}},
        {"model_id": "meta-llama/Llama-3.3-70B-Instruct", "hardware_config": "nvidia_nvl72_rack", "batch_size": 1,
         "input_seq": 2048, "output_seq": 128, "layers": {"attention": {"tensor_parallel": 8},
                                                          "feedforward": {"tensor_parallel": 8}}},
    ]
    answers = [new.call("POST", "/config/system-metrics", c) for c in configs]
    assert [a[0] for a in answers] == [200, 200]
    assert [a[2] for a in answers] == [perfkit.system_metrics(c) for c in configs]


def test_workers_share_the_session_key():
    """With --workers 2 and no secret in the environment, every worker still reads every client's cookie."""
    for base in _serve("--workers", "2", "--threads", "2", secret=None):
        old = Frontend(base)
        assert old.call("POST", "/config/load", {"model_id": TINY, "hardware_config": "nvidia_h100_hgx"})[0] == 200
        statuses = {old.call("GET", "/config/layers")[0] for _ in range(20)}  # spread over both workers
        assert statuses == {200}


def test_bad_input_over_http_is_json(server):
    client = Frontend(server)
    status, _, body = client.call("POST", "/config/system-metrics", {
        "model_id": "../../etc/passwd", "hardware_config": "nvidia_h100_hgx", "batch_size": 1, "input_seq": 8,
        "output_seq": 8})
    assert status == 400 and body["field"] == "model_id"
    req = urllib.request.Request(server + "/config/system-metrics", data=b"x" * 200_000, method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 413 and set(json.load(err.value)) == {"error", "field"}


# -- the command's options (no server started) -------------------------------------------------------------


@pytest.fixture
def fake_waitress(monkeypatch):
    """Replace the production server's loop with a recorder: what ``perfkit serve`` would have served, and how."""
    from perfkit.server import wsgi

    seen = {}

    def serve(app, sock, limits, announce):
        host, port = sock.getsockname()[:2]
        seen.update(app=app, host=host, port=port, limits=limits, ran=True)
        announce(host, port, "recorded")

    monkeypatch.setattr(wsgi, "serve", serve)
    monkeypatch.setenv("PERFKIT_SECRET_KEY", "k")
    return seen


def test_serve_defaults_to_loopback_and_the_hardened_waitress(fake_waitress):
    from perfkit.server.wsgi import default_workers

    assert cli.main(["serve", "--port", "0"]) == 0
    seen = fake_waitress
    assert seen["host"] == "127.0.0.1" and seen["ran"]
    limits = seen["limits"]
    assert limits.workers == default_workers() and limits.threads == 4
    assert limits.max_body_bytes == seen["app"].config["MAX_CONTENT_LENGTH"]
    assert limits.request_timeout_s > 0 and limits.idle_timeout_s >= 1
    assert seen["app"].name == "perfkit.server.app"
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "0", "--threads", "3", "--workers", "1",
                     "--request-timeout", "2", "--idle-timeout", "5", "--client-connection-limit", "7"]) == 0
    limits = seen["limits"]
    assert (limits.threads, limits.workers, limits.request_timeout_s, limits.idle_timeout_s,
            limits.client_connection_limit) == (3, 1, 2.0, 5, 7)


def test_serve_cors_allow_list(fake_waitress):
    assert cli.main(["serve", "--port", "0", "--cors-origin", "https://a.example", "--cors-origin",
                     "https://b.example"]) == 0
    client = fake_waitress["app"].test_client()
    for origin in ("https://a.example", "https://b.example"):
        assert client.get("/api/health", headers={"Origin": origin}).headers["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Origin" not in client.get("/api/health", headers={"Origin": "https://c.example"}).headers


def test_serve_offline_flag(fake_waitress, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test
    assert cli.main(["serve", "--offline", "--port", "0"]) == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_serve_debug_uses_the_flask_server(monkeypatch):
    from flask import Flask

    seen = {}
    monkeypatch.setattr(Flask, "run", lambda self, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("PERFKIT_SECRET_KEY", "k")
    assert cli.main(["serve", "--debug", "--port", "5001"]) == 0
    assert seen["debug"] is True and seen["host"] == "127.0.0.1" and seen["port"] == 5001


def test_serve_rejects_bad_options(capsys):
    assert cli.main(["serve", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert "serve" in cli.build_parser().format_help() and serve_cli.register
