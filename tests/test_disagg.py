"""Disaggregated prefill / decode pools (issue 15): the response adds up, each pool is the engine's ordinary
layout, the KV hand-off follows the links it crosses, and bad requests are 400s naming the field."""
from __future__ import annotations

from pathlib import Path

import pytest

import perfkit
from perfkit import catalog
from perfkit.errors import PerfkitError
from perfkit.server import create_app

REPO = Path(__file__).resolve().parent.parent
LLAMA8B = "meta-llama/Llama-3.1-8B"
LLAMA70B = "meta-llama/Llama-3.1-70B"


def tp(n: int) -> dict:
    return {t: {"tensor_parallel": n} for t in ("attention", "feedforward", "embedding")}


def disagg(model=LLAMA8B, hardware="nvidia_h100_hgx", pre=(2, 2, 1), dec=(1, 64, 2), isl=2048, osl=256, **extra):
    """A disaggregated request: ``pre`` / ``dec`` are (replicas, batch_size, tensor_parallel)."""
    pools = {name: {"replicas": r, "batch_size": b, "layers": tp(t)} for name, (r, b, t) in
             (("prefill", pre), ("decode", dec))}
    return {"model_id": model, "hardware_config": hardware, "input_seq": isl, "output_seq": osl,
            "disaggregated": pools, **extra}


def agg(model, hardware, replicas, batch, t, isl=2048, osl=256) -> dict:
    return {"model_id": model, "hardware_config": hardware, "batch_size": batch, "input_seq": isl,
            "output_seq": osl, "replicas": replicas, "layers": tp(t)}


@pytest.fixture
def client():
    return create_app({"SECRET_KEY": "test-secret", "TESTING": True}).test_client()


def test_deployment_figures_are_both_pools():
    r = perfkit.system_metrics(disagg())
    d = r["disaggregated"]
    pre, dec = d["prefill"], d["decode"]
    assert r["system"]["num_chips"] == pre["num_chips"] + dec["num_chips"] == 2 * 1 + 1 * 2
    m = r["memory"]
    for key in ("weight_memory_gb", "kv_cache_gb", "activation_memory_gb"):
        assert m[key] == pytest.approx(pre[key] + dec[key])
    assert m["total_memory_gb"] == pytest.approx(m["weight_memory_gb"] + m["activation_memory_gb"] + m["kv_cache_gb"])
    assert m["memory_per_chip_gb"] == max(pre["memory_per_chip_gb"], dec["memory_per_chip_gb"])
    assert r["system"]["fits_on_hardware"] == (pre["fits_on_hardware"] and dec["fits_on_hardware"])
    assert r["total_latency_ms"] == pytest.approx(r["ttft_ms"] + 256 * r["tpot_ms"])
    # the slower pool limits: output tokens/s = output_seq x the smaller capacity in requests/s
    slower = min(pre["requests_s"], dec["requests_s"])
    assert r["throughput_tokens_s"] == pytest.approx(256 * slower)
    assert d["limiting_pool"] == ("decode" if dec["requests_s"] < pre["requests_s"] else "prefill")
    # TTFT = request overhead + wait + a prefill pass + the KV hand-off
    overhead_ms = catalog.serving_profile("generic").request_overhead_s * 1e3
    assert r["ttft_ms"] == pytest.approx(overhead_ms + d["prefill_wait_ms"] + pre["ttft_ms"] + d["kv_transfer_ms"])


def test_each_pool_is_the_ordinary_layout():
    """TPOT is the decode pool's static step at the sequences decoding at once; the prefill pass is the static
    TTFT of the prefill layout: the same engine passes as an aggregated request (no second formula), times the
    disaggregated profile's fitted scales."""
    r = perfkit.system_metrics(disagg(pre=(2, 4, 1), dec=(2, 64, 2)))
    transfer = catalog.transfer_profile("generic")
    decoding = r["disaggregated"]["decoding_sequences"]
    assert 1 <= decoding <= 64
    per_replica = -(-decoding // 2)
    decode_alone = perfkit.system_metrics(agg(LLAMA8B, "nvidia_h100_hgx", 2, 2 * int(per_replica), 2))
    prefill_alone = perfkit.system_metrics(agg(LLAMA8B, "nvidia_h100_hgx", 2, 4, 1))
    assert r["tpot_ms"] == pytest.approx(transfer.decode_step_scale * decode_alone["tpot_ms"], rel=1e-12)
    assert r["disaggregated"]["decode"]["tpot_ms"] == r["tpot_ms"]
    assert r["disaggregated"]["prefill"]["ttft_ms"] == pytest.approx(
        transfer.prefill_pass_scale * prefill_alone["ttft_ms"], rel=1e-12)
    decode_alone = perfkit.system_metrics(agg(LLAMA8B, "nvidia_h100_hgx", 2, 64, 2))
    # weights are the layouts' own: a pool's weights do not depend on what the other pool runs
    assert r["disaggregated"]["decode"]["weight_memory_gb"] == decode_alone["memory"]["weight_memory_gb"]
    # the decode pool never runs a prefill of its batch: its activations are a decode step's
    assert r["disaggregated"]["decode"]["activation_memory_gb"] < decode_alone["memory"]["activation_memory_gb"]


def test_kv_bytes_per_decode_chip():
    """One request's prompt KV cache, per decode chip: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes
    (bf16) = 131,072 bytes per token for Llama-3.1-8B (config.json), split over the decode pool's TP."""
    from perfkit.engine.disagg import _kv_bytes_per_chip as kv_bytes_per_chip
    from perfkit.inputs import to_arrays
    from perfkit.inputs_disagg import disaggregated_config

    _, dec = disaggregated_config(disagg(dec=(1, 64, 2), isl=1000))
    model, hw = catalog.model_spec(LLAMA8B), catalog.hardware_spec("nvidia_h100_hgx")
    assert float(kv_bytes_per_chip(model, hw, catalog.serving_profile(), to_arrays(dec))) == 131072 * 1000 / 2


def test_kv_transfer_over_two_nodes_costs_more_than_inside_nvl72():
    """Issue 15's test: the same 8 + 8 GPU split of Llama-3.1-70B hands its KV cache over NVLink inside one
    NVL72 rack (1.8 TB/s per GPU) but over 400 Gb/s NICs between two 8-GPU HGX servers (50 GB/s per GPU)."""
    body = dict(model=LLAMA70B, pre=(1, 1, 8), dec=(1, 64, 8), isl=8192)
    rack = perfkit.system_metrics(disagg(hardware="nvidia_nvl72_rack", **body))
    hgx = perfkit.system_metrics(disagg(hardware="nvidia_h200_hgx", **body))
    assert rack["system"]["num_nodes"] == 1 and hgx["system"]["num_nodes"] == 2
    assert rack["disaggregated"]["kv_transfer_scaleout_share"] == 0
    assert hgx["disaggregated"]["kv_transfer_scaleout_share"] == 1
    assert hgx["disaggregated"]["kv_transfer_ms"] > 2 * rack["disaggregated"]["kv_transfer_ms"]
    # the same GB200 chips, 4 + 4: across two 4-GPU trays (scale-out) vs inside one NVL72 domain
    body = dict(model=LLAMA70B, pre=(1, 1, 4), dec=(1, 16, 4), isl=8192)
    trays = perfkit.system_metrics(disagg(hardware="nvidia_gb200_single", **body))
    one_rack = perfkit.system_metrics(disagg(hardware="nvidia_nvl72_rack", **body))
    assert trays["disaggregated"]["kv_transfer_ms"] > one_rack["disaggregated"]["kv_transfer_ms"]
    assert trays["tpot_ms"] == one_rack["tpot_ms"]  # same chips, each pool inside one node: only the hand-off differs


def test_a_pool_that_shares_a_node_hands_off_partly_over_scale_out():
    """Pools on consecutive chips: prefill on GPUs 0-3, decode on 4-11 of 8-GPU servers: half the decode chips
    share the prefill pool's node."""
    r = perfkit.system_metrics(disagg(pre=(1, 1, 4), dec=(1, 64, 8), model=LLAMA70B))
    assert r["disaggregated"]["kv_transfer_scaleout_share"] == 0.5
    assert r["system"]["num_nodes"] == 2


def test_kv_transfer_grows_with_the_prompt():
    short = perfkit.system_metrics(disagg(isl=1024))["disaggregated"]["kv_transfer_ms"]
    long = perfkit.system_metrics(disagg(isl=8192))["disaggregated"]["kv_transfer_ms"]
    assert long > short


def test_a_slow_prefill_pool_limits_and_queues():
    """One TP-1 prefill replica for 256 decoding sequences of 8k prompts: prefill limits, and the closed loop
    piles the requests up in front of it (TTFT far above one prefill pass)."""
    r = perfkit.system_metrics(disagg(pre=(1, 1, 1), dec=(1, 256, 4), isl=8192, osl=128))
    d = r["disaggregated"]
    assert d["limiting_pool"] == "prefill"
    assert d["prefill"]["utilisation"] > 0.85  # the queue in front of it holds the rest: it seldom idles
    assert d["decoding_sequences"] < 0.1 * 256  # and few requests reach the decode pool at once
    assert r["ttft_ms"] > 10 * d["prefill"]["ttft_ms"]
    more = perfkit.system_metrics(disagg(pre=(4, 4, 1), dec=(1, 256, 4), isl=8192, osl=128))
    assert more["ttft_ms"] < r["ttft_ms"] and more["throughput_tokens_s"] > r["throughput_tokens_s"]


def test_a_pool_that_does_not_fit_is_reported_per_pool():
    r = perfkit.system_metrics(disagg(model=LLAMA70B, pre=(1, 1, 8), dec=(1, 8, 1)))
    assert r["disaggregated"]["prefill"]["fits_on_hardware"] is True
    assert r["disaggregated"]["decode"]["fits_on_hardware"] is False
    assert r["system"]["fits_on_hardware"] is False
    assert any(n.startswith("disaggregated.decode does not fit") for n in r["system"]["notes"])


def test_http_answer_is_the_library_answer(client):
    body = disagg(serving_engine="trtllm", price_per_chip_hour=2.0)
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 200
    assert r.json == perfkit.system_metrics(body)
    assert set(r.json["disaggregated"]) >= {"limiting_pool", "kv_transfer_ms", "prefill", "decode"}


@pytest.mark.parametrize("change, field, message", [
    (lambda b: b.update(layers=tp(2)), "layers", r"layers describes one aggregated layout"),
    (lambda b: b.update(batch_size=8), "batch_size", r"batch_size describes one aggregated layout"),
    (lambda b: b.update(replicas=2), "replicas", r"give each pool its own"),
    (lambda b: b["disaggregated"]["decode"].update(model_id=LLAMA70B), "disaggregated.decode.model_id",
     r"differs from model_id"),
    (lambda b: b["disaggregated"]["prefill"]["layers"]["attention"].update(tensor_parallel=3),
     "disaggregated.prefill.layers.attention.tensor_parallel", r"does not split"),
    (lambda b: b["disaggregated"]["decode"].update(batch_size=0), "disaggregated.decode.batch_size",
     r"batch_size must be between 1"),
    (lambda b: b["disaggregated"]["decode"]["layers"]["attention"].update(context_paralel=2),
     "disaggregated.decode.layers.attention.context_paralel", r"unknown field"),
    (lambda b: b["disaggregated"].update(middle={}), "disaggregated.middle", r"unknown field"),
    (lambda b: b["disaggregated"].pop("decode"), "disaggregated.decode", r"missing required field"),
    (lambda b: b["disaggregated"]["prefill"].update(speed=1), "disaggregated.prefill.speed", r"unknown field"),
])
def test_bad_disaggregated_requests_are_400s_naming_the_field(client, change, field, message):
    body = disagg()
    change(body)
    with pytest.raises(PerfkitError, match=message) as info:
        perfkit.system_metrics(body)
    assert info.value.field == field
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 400 and r.json["field"] == field


def test_a_pool_with_the_same_model_id_is_accepted():
    body = disagg()
    body["disaggregated"]["decode"]["model_id"] = LLAMA8B
    assert perfkit.system_metrics(body)["tpot_ms"] == perfkit.system_metrics(disagg())["tpot_ms"]


@pytest.fixture
def no_scaleout(tmp_path, monkeypatch):
    """The H100 server's file without a scale-out network (``scaleout_*: null``), as ``h100_island``."""
    folder = tmp_path / "hardware"
    folder.mkdir()
    for path in (REPO / "hardware").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    lines = []
    for line in (REPO / "hardware" / "nvidia_h100_hgx.yaml").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("scaleout_bytes_per_s", "scaleout_latency_s"):
            line = f"{key}: null"
        elif key == "name":
            line = "name: h100_island"
        lines.append(line)
    (folder / "h100_island.yaml").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(folder))
    caches = ("_hardware_root", "_hardware_files", "_hardware_spec")
    for name in caches:
        getattr(catalog, name).cache_clear()
    yield "h100_island"
    for name in caches:
        getattr(catalog, name).cache_clear()


def test_a_transfer_path_the_hardware_lacks_is_a_400(no_scaleout, client):
    inside = perfkit.system_metrics(disagg(hardware=no_scaleout, pre=(1, 1, 4), dec=(1, 64, 4)))
    assert inside["disaggregated"]["kv_transfer_scaleout_share"] == 0
    body = disagg(hardware=no_scaleout, pre=(1, 1, 4), dec=(1, 64, 8))
    with pytest.raises(PerfkitError, match=r"KV cache would cross nodes.*no scale-out network") as info:
        perfkit.system_metrics(body)
    assert info.value.field == "disaggregated"
    r = client.post("/config/system-metrics", json=body)
    assert r.status_code == 400 and r.json["field"] == "disaggregated"


def test_open_loop_load_fills_both_pools():
    """Poisson arrivals: each pool's utilisation grows with the rate, the deployment saturates at the smaller
    pool's capacity, and TTFT/TPOT percentiles are ordered."""
    low, high = (perfkit.system_metrics(disagg(serving_mode="continuous", arrival_rate_qps=rate))
                 for rate in (1.0, 8.0))
    for r in (low, high):
        load = r["load"]
        assert load["ttft_ms_p50"] <= load["ttft_ms_p90"] <= load["ttft_ms_p99"]
        assert load["tpot_ms_p50"] <= load["tpot_ms_p99"]
        assert not load["saturated"]
    for pool in ("prefill", "decode"):
        assert high["disaggregated"][pool]["utilisation"] > low["disaggregated"][pool]["utilisation"]
    assert high["load"]["ttft_ms_p99"] > low["load"]["ttft_ms_p99"]
    capacity = low["load"]["capacity_qps"]
    assert capacity <= low["disaggregated"]["prefill"]["requests_s"] * (1 + 1e-9)
    over = perfkit.system_metrics(disagg(serving_mode="continuous", arrival_rate_qps=2 * capacity))
    assert over["load"]["saturated"] and over["load"]["ttft_ms_p99"] is None
    assert any(n.startswith("saturated") for n in over["system"]["notes"])


def test_arrival_rate_needs_continuous_serving():
    with pytest.raises(PerfkitError, match="arrival_rate_qps needs serving_mode 'continuous'"):
        perfkit.system_metrics(disagg(arrival_rate_qps=1.0))


def test_a_sweep_row_is_the_single_answer():
    """A disaggregated sweep over axes inside the pools: each row equals perfkit.system_metrics of its request
    (DESIGN: a single request is a sweep of one)."""
    from perfkit.sweeps.disagg import requests

    grid = disagg(pre=(1, 1, 1), dec=(1, 64, 2))
    grid["disaggregated"]["prefill"]["replicas"] = [1, 2]
    grid["disaggregated"]["decode"]["batch_size"] = [16, 256]
    grid["disaggregated"]["decode"]["layers"]["attention"]["tensor_parallel"] = [2, 3]  # 3 cannot split 32 heads
    df = perfkit.sweep(grid)
    assert len(df) == 8 and df.attrs["axes"] == [
        "disaggregated.prefill.replicas", "disaggregated.decode.batch_size",
        "disaggregated.decode.layers.attention.tensor_parallel"]
    bodies, _, _ = requests(grid)
    for i, body in enumerate(bodies):
        row = df.iloc[i]
        if body["disaggregated"]["decode"]["layers"]["attention"]["tensor_parallel"] == 3:
            assert not row["valid"] and "does not split" in row["reason"]
            continue
        answer = perfkit.system_metrics(body)
        assert row["valid"]
        assert answer["ttft_ms"] == pytest.approx(row["ttft_ms"], rel=1e-12)
        assert answer["tpot_ms"] == pytest.approx(row["tpot_ms"], rel=1e-12)
        assert answer["system"]["num_chips"] == row["num_chips"]
        assert answer["disaggregated"]["limiting_pool"] == row["limiting_pool"]
        assert answer["disaggregated"]["decode"]["memory_per_chip_gb"] == pytest.approx(
            row["decode.memory_per_chip_gb"], rel=1e-12)


def test_cli_metrics_takes_a_disaggregated_request(tmp_path, capsys):
    """``perfkit metrics request.json`` answers a disaggregated request like the library; a bad one exits 2
    with the message naming the field."""
    import json

    from perfkit.cli import main

    path = tmp_path / "request.json"
    path.write_text(json.dumps(disagg()))
    assert main(["metrics", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == perfkit.system_metrics(disagg())
    bad = disagg()
    bad["batch_size"] = 4
    path.write_text(json.dumps(bad))
    assert main(["metrics", str(path)]) == 2
    assert "batch_size describes one aggregated layout" in capsys.readouterr().err
