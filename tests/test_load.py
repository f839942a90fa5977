"""Open-loop load (``arrival_rate_qps``): input checks, and the physics of the queue.

References: Little's law (L = lambda W); M/G/1 waits grow as 1/(1 - rho) (Pollaczek-Khinchine), so TTFT
diverges as the rate approaches the layout's capacity; percentiles are ordered.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import perfkit
from perfkit.errors import PerfkitError

BASE = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "batch_size": 128,
        "input_seq": 2048, "output_seq": 128, "serving_mode": "continuous"}


def load_of(rate, **extra):
    return perfkit.system_metrics({**BASE, "arrival_rate_qps": rate, **extra})["load"]


@pytest.fixture(scope="module")
def capacity():
    return load_of(1.0)["capacity_qps"]


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf"), 1e12, True, "5"])
def test_bad_rate_names_the_field(rate):
    with pytest.raises(PerfkitError, match="arrival_rate_qps") as info:
        load_of(rate)
    assert info.value.field == "arrival_rate_qps"


def test_rate_needs_continuous_batching():
    with pytest.raises(PerfkitError, match="serving_mode 'continuous'") as info:
        perfkit.system_metrics({**BASE, "serving_mode": "static", "arrival_rate_qps": 1.0})
    assert info.value.field == "serving_mode"


def test_length_spread_needs_a_rate_and_bounds():
    with pytest.raises(PerfkitError, match="give arrival_rate_qps") as info:
        perfkit.system_metrics({**BASE, "input_seq_cv": 0.5})
    assert info.value.field == "input_seq_cv"
    with pytest.raises(PerfkitError, match="output_seq_cv must be at least 0"):
        load_of(1.0, output_seq_cv=-0.1)


def test_no_rate_no_load_object():
    assert "load" not in perfkit.system_metrics(BASE)


def test_percentiles_are_ordered(capacity):
    for u in (0.05, 0.3, 0.6, 0.9):
        body = load_of(u * capacity, input_seq_cv=0.5, output_seq_cv=0.5)
        for figure in ("ttft_ms", "tpot_ms"):
            p50, p90, p99 = (body[f"{figure}_p{p}"] for p in (50, 90, 99))
            assert 0 < p50 <= p90 <= p99, (u, figure)
        assert body["e2e_ms_p99"] >= body["ttft_ms_p99"]
        assert body["e2e_ms_mean"] == pytest.approx(body["ttft_ms_mean"] + 127 * body["tpot_ms_mean"])


def test_ttft_grows_with_rate_and_diverges_near_capacity(capacity):
    loads = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 0.97, 0.995])
    df = perfkit.sweep({**BASE, "arrival_rate_qps": list(loads * capacity)})
    ttft, tpot = df["load_ttft_ms_mean"].to_numpy(), df["load_tpot_ms_mean"].to_numpy()
    assert np.all(np.diff(ttft) > 0) and np.all(np.diff(tpot) > 0)
    assert np.all(np.diff(df["load_ttft_ms_p99"].to_numpy()) > 0)
    # the queueing part of the wait grows like 1 / (1 - rho): at 99.5% it dwarfs the wait at 60%
    assert ttft[-1] - ttft[0] > 20 * (ttft[3] - ttft[0])
    assert not df["load_saturated"].any()
    assert df["load_utilisation"].to_numpy() == pytest.approx(loads)


def test_above_capacity_is_saturated_with_a_note(capacity):
    body = perfkit.system_metrics({**BASE, "arrival_rate_qps": 1.5 * capacity})
    load = body["load"]
    assert load["saturated"] is True and load["ttft_ms_p99"] is None and load["tpot_ms_mean"] is None
    assert load["achieved_requests_s"] == pytest.approx(capacity)
    assert any(note.startswith("saturated:") and load["bound"] in note.replace("KV-cache", "kv_cache")
               .replace("prompt lane (prefill", "prefill") for note in body["system"]["notes"])
    json.dumps(body, allow_nan=False)  # no Infinity or NaN in the response


def test_littles_law(capacity):
    # mean running sequences = achieved rate x mean time holding a slot (own prefill + decode)
    for u in (0.2, 0.7):
        load = load_of(u * capacity)
        assert load["achieved_requests_s"] == pytest.approx(u * capacity)
        assert load["output_tokens_s"] == pytest.approx(u * capacity * BASE["output_seq"])
        in_slot_s = load["mean_running_sequences"] / load["achieved_requests_s"]
        # the slot is held from the first prompt chunk to the last token: less than e2e, more than the decode
        assert 127 * load["tpot_ms_mean"] / 1e3 < in_slot_s < load["e2e_ms_mean"] / 1e3


def test_zero_load_limit_is_one_request_alone(capacity):
    # at a vanishing rate no request waits: TTFT is the overhead and the own prefill, TPOT a batch-1 step
    load = load_of(1e-4 * capacity)
    assert load["ttft_ms_p99"] == pytest.approx(load["ttft_ms_p50"], rel=1e-2)
    assert load["tpot_ms_p99"] == pytest.approx(load["tpot_ms_p50"], rel=1e-2)
    closed = perfkit.system_metrics({**BASE, "batch_size": 1, "serving_mode": "static"})
    assert load["tpot_ms_mean"] == pytest.approx(closed["tpot_ms"], rel=0.05)


def test_sweep_rows_equal_single_requests(capacity):
    rng = np.random.default_rng(11)
    grid = {**BASE, "arrival_rate_qps": [0.3 * capacity, 0.8 * capacity, 2.0 * capacity],
            "input_seq": [512, 2048], "batch_size": [32, 128], "input_seq_cv": [0.0, 0.4]}
    df = perfkit.sweep(grid)
    for i in rng.choice(len(df), 6, replace=False):
        single = perfkit.system_metrics(perfkit.sweeps.request_of(df, i))["load"]
        for key, value in single.items():
            column = df.loc[i, "load_" + key]
            if value is None:
                assert math.isinf(column)
            elif isinstance(value, float):
                assert column == pytest.approx(value), key
            else:
                assert column == value, key


def test_replicas_split_the_rate():
    try:
        two = perfkit.system_metrics({**BASE, "arrival_rate_qps": 4.0, "replicas": 2, "batch_size": 256})["load"]
    except PerfkitError as exc:
        pytest.skip(f"replicas not in this build: {exc}")
    one = load_of(2.0)
    assert two["ttft_ms_p99"] == pytest.approx(one["ttft_ms_p99"])
    assert two["achieved_requests_s"] == pytest.approx(2 * one["achieved_requests_s"])
    assert two["capacity_qps"] == pytest.approx(2 * one["capacity_qps"])


def test_http_api_answers_the_load_fields():
    pytest.importorskip("flask")
    from perfkit.server import create_app

    client = create_app({"TESTING": True, "SECRET_KEY": "t"}).test_client()
    ok = client.post("/config/system-metrics", json={**BASE, "arrival_rate_qps": 2.0, "price_per_chip_hour": 2.0})
    assert ok.status_code == 200 and ok.get_json()["load"]["achieved_requests_s"] == pytest.approx(2.0)
    assert ok.get_json()["cost"]["usd_per_million_output_tokens"] > 0
    saturated = client.post("/config/system-metrics", json={**BASE, "arrival_rate_qps": 1000.0})
    assert saturated.status_code == 200 and saturated.get_json()["load"]["ttft_ms_p99"] is None
    bad = client.post("/config/system-metrics", json={**BASE, "arrival_rate_qps": -1})
    assert bad.status_code == 400 and bad.get_json()["field"] == "arrival_rate_qps"
    spec = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert "arrival_rate_qps" in spec["SystemMetricsRequest"]["properties"]
    assert "load" in spec["SystemMetricsResponse"]["properties"]


def test_a_list_sweep_gives_the_rate_to_all_or_none():
    with pytest.raises(PerfkitError, match="request 1 lacks arrival_rate_qps, unlike the requests before it") as info:
        perfkit.sweep([{**BASE, "arrival_rate_qps": 1.0}, BASE])
    assert info.value.field == "arrival_rate_qps"
    df = perfkit.sweep([{**BASE, "arrival_rate_qps": 1.0}, {**BASE, "arrival_rate_qps": 3.0}])
    assert list(df["load_achieved_requests_s"]) == pytest.approx([1.0, 3.0])


def test_load_columns_export(tmp_path):
    from perfkit.sweeps import export

    rows = export.write({**BASE, "arrival_rate_qps": [1.0, 1000.0]}, tmp_path / "load.csv")
    text = (tmp_path / "load.csv").read_text()
    assert rows == 2 and "load_ttft_ms_p99" in text.splitlines()[0] and "inf" in text


def test_sweep_cli_takes_rates_and_prices(tmp_path, capsys):
    from perfkit.cli import main

    out = tmp_path / "load.csv"
    rc = main(["sweep", "--model", BASE["model_id"], "--hardware", BASE["hardware_config"], "--batch", "64",
               "--input-seq", "1024", "--output-seq", "128", "--serving-mode", "continuous", "--rate", "1,5.5",
               "--price-per-chip-hour", "2.5", "--no-progress", "-o", str(out)])
    header, *rows = out.read_text().splitlines()
    assert rc == 0 and len(rows) == 2 and "load_ttft_ms_p99" in header and "usd_per_million_output_tokens" in header
    assert main(["sweep", "--model", BASE["model_id"], "--hardware", BASE["hardware_config"], "--batch", "64",
                 "--input-seq", "1024", "--output-seq", "128", "--serving-mode", "continuous",
                 "--rate", "fast"]) == 2
    assert "--rate (arrival_rate_qps) takes numbers" in capsys.readouterr().err


def test_rows_that_cannot_run_have_no_load_or_cost_figures():
    df = perfkit.sweep({**BASE, "hardware_config": "nvidia_l40s_server", "batch_size": [8, 4096],
                        "input_seq": 8192, "arrival_rate_qps": 1.0, "price_per_chip_hour": 1.0})
    bad = df[~df["valid"]]
    assert len(bad) == 1
    assert bad[["load_ttft_ms_p99", "load_capacity_qps", "usd_per_million_output_tokens"]].isna().all(axis=None)
    assert df.loc[df["valid"], "load_ttft_ms_p99"].notna().all()
