"""Energy and cost per output token: chips x TDP (x price) over the served output tokens per second."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import perfkit
from perfkit import catalog
from perfkit.errors import PerfkitError

BASE = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "batch_size": 64,
        "input_seq": 1024, "output_seq": 256}


def test_every_hardware_file_states_its_power():
    # the key is present in every file (null only where the source lists none: the TPUs)
    files = sorted((Path(__file__).resolve().parent.parent / "hardware").glob("*.yaml"))
    assert len(files) == len(catalog.list_hardware())
    for path in files:
        assert "tdp_watts" in yaml.safe_load(path.read_text()), path.name
    for name in catalog.list_hardware():
        spec = catalog.hardware_spec(name)
        assert spec.tdp_watts is None or 300 <= spec.tdp_watts <= 1500, name
    # ../shared/data/hardware_specs.csv: H100 SXM 700 W, B200 1000 W, MI300X 750 W
    assert catalog.hardware_spec("nvidia_h100_hgx").tdp_watts == 700
    assert catalog.hardware_spec("nvidia_b200_hgx").tdp_watts == 1000
    assert catalog.hardware_spec("amd_mi300x_platform").tdp_watts == 750


def test_joules_and_dollars_per_token_closed_loop():
    body = perfkit.system_metrics({**BASE, "price_per_chip_hour": 2.5})
    tokens_s = body["throughput_tokens_s"]
    assert body["cost"]["joules_per_output_token"] == pytest.approx(700 / tokens_s)
    assert body["cost"]["usd_per_million_output_tokens"] == pytest.approx(2.5 / 3600 / tokens_s * 1e6)


def test_no_price_no_dollars_and_unknown_power_is_null():
    assert "cost" not in perfkit.system_metrics(BASE)  # the seed's response keeps its keys
    loaded = {**BASE, "serving_mode": "continuous", "arrival_rate_qps": 1.0}
    assert "usd_per_million_output_tokens" not in perfkit.system_metrics(loaded)["cost"]
    tpu = perfkit.system_metrics({**loaded, "hardware_config": "google_tpu_v6e_pod"})
    assert tpu["cost"]["joules_per_output_token"] is None
    df = perfkit.sweep({**BASE, "hardware_config": "google_tpu_v6e_pod"})
    assert df["joules_per_output_token"].isna().all() and "usd_per_million_output_tokens" not in df


def test_open_loop_cost_uses_the_achieved_rate():
    body = perfkit.system_metrics({**BASE, "serving_mode": "continuous", "arrival_rate_qps": 2.0,
                                   "price_per_chip_hour": 2.0, "layers": {
                                       t: {"tensor_parallel": 2} for t in ("attention", "feedforward", "embedding")}})
    tokens_s = body["load"]["output_tokens_s"]
    assert tokens_s == pytest.approx(2.0 * 256)
    assert body["cost"]["joules_per_output_token"] == pytest.approx(2 * 700 / tokens_s)
    assert body["cost"]["usd_per_million_output_tokens"] == pytest.approx(2 * 2.0 / 3600 / tokens_s * 1e6)


def test_sweep_has_the_cost_columns():
    df = perfkit.sweep({**BASE, "batch_size": [1, 64], "price_per_chip_hour": [1.0, 4.0]})
    assert {"joules_per_output_token", "usd_per_million_output_tokens"} <= set(df.columns)
    ratio = df["usd_per_million_output_tokens"] / df["price_per_chip_hour"]
    assert ratio.iloc[0] == pytest.approx(ratio.iloc[1])  # cost is linear in the price


@pytest.mark.parametrize("price", [0, -2.0, float("nan"), "3", 1e9])
def test_bad_price_names_the_field(price):
    with pytest.raises(PerfkitError, match="price_per_chip_hour") as info:
        perfkit.system_metrics({**BASE, "price_per_chip_hour": price})
    assert info.value.field == "price_per_chip_hour"
