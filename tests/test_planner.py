"""The planner: the SLO filter, the ranking, the Pareto front, launch-command contents and empty plans."""
from __future__ import annotations

import numpy as np
import pytest

import perfkit
from perfkit.cli import main
from perfkit.errors import PerfkitError
from perfkit.planner import command

LLAMA70 = "meta-llama/Llama-3.3-70B-Instruct"
SLO = {"ttft_p99_ms": 1000.0, "tpot_p99_ms": 40.0}


@pytest.fixture(scope="module")
def llama_plan():
    return perfkit.plan(LLAMA70, "nvidia_h200_hgx", 8, 1024, 256, running_caps=(64, 256),
                        price_per_chip_hour=3.0, **SLO)


def test_every_layout_meets_the_slos(llama_plan):
    rows = llama_plan.layouts
    assert len(rows) > 0 and not rows["load_saturated"].any()
    assert (rows["load_ttft_ms_p99"] <= SLO["ttft_p99_ms"]).all()
    assert (rows["load_tpot_ms_p99"] <= SLO["tpot_p99_ms"]).all()
    assert (rows["num_chips"] == 8).all() and rows["fits_on_hardware"].all()


def test_ranked_by_requests_per_chip(llama_plan):
    per_chip = llama_plan.layouts["requests_s_per_chip"].to_numpy()
    assert np.all(np.diff(per_chip) <= 1e-12)
    assert llama_plan.layouts["requests_s_per_chip"].iloc[0] == pytest.approx(
        llama_plan.layouts["arrival_rate_qps"].iloc[0] / 8)


def test_best_rate_is_the_largest_that_meets_the_slos(llama_plan):
    best = llama_plan.best
    body = llama_plan.request(0)
    at = perfkit.system_metrics(body)["load"]
    assert at["ttft_ms_p99"] == pytest.approx(best["load_ttft_ms_p99"])
    above = perfkit.system_metrics({**body, "arrival_rate_qps": 1.05 * float(best["arrival_rate_qps"])})["load"]
    assert above["saturated"] or above["ttft_ms_p99"] > SLO["ttft_p99_ms"] or above["tpot_ms_p99"] > SLO["tpot_p99_ms"]


def test_pareto_front_is_not_dominated(llama_plan):
    front, rows = llama_plan.pareto, llama_plan.layouts
    rows = rows[rows["load_utilisation"] >= 0.1]  # the front's operating points use a tenth of capacity or more
    assert len(front) >= 1 and (front["load_utilisation"] >= 0.1).all()
    for _, f in front.iterrows():
        better = (rows["tokens_s_per_user"] > f["tokens_s_per_user"]) & (rows["tokens_s_per_chip"] > f["tokens_s_per_chip"])
        assert not better.any()


def test_cost_columns_follow_the_price(llama_plan):
    best = llama_plan.best
    assert best["usd_per_million_output_tokens"] == pytest.approx(
        8 * 3.0 / 3600 / best["load_output_tokens_s"] * 1e6)
    assert best["joules_per_output_token"] == pytest.approx(8 * 700 / best["load_output_tokens_s"])


def test_launch_commands_carry_the_layout(llama_plan):
    best = llama_plan.best
    tp, cap = int(best["tensor_parallel"]), int(best["max_running_sequences"])
    vllm, sglang, trtllm = (llama_plan.commands[e] for e in ("vllm", "sglang", "trtllm"))
    assert vllm.startswith(f"vllm serve {LLAMA70}") and f"--tensor-parallel-size {tp}" in vllm
    assert f"--max-num-seqs {cap}" in vllm and "--gpu-memory-utilization 0.9" in vllm
    assert "python -m sglang.launch_server --model-path" in sglang and f"--tp-size {tp}" in sglang
    assert f"--max-running-requests {cap}" in sglang and "--mem-fraction-static 0.9" in sglang
    assert "trtllm-serve" in trtllm and f"--tp_size {tp}" in trtllm and f"--max_batch_size {cap}" in trtllm
    assert "free_gpu_memory_fraction: 0.9" in trtllm
    assert "--max-model-len 1280" in vllm and "--context-length 1280" in sglang and "--max_seq_len 1280" in trtllm
    if best["kv_dtype"] == "fp8":
        assert "--kv-cache-dtype fp8" in vllm and "--kv-cache-dtype fp8_e4m3" in sglang and "dtype: fp8" in trtllm


def test_launch_flags_follow_the_degrees():
    row = {"tensor_parallel": 2, "pipeline_parallel": 2, "expert_parallel": 4, "replicas": 2, "num_chips": 8,
           "max_running_sequences": 64, "input_seq": 512, "output_seq": 512, "kv_dtype": "bf16", "dtype": "bf16"}
    vllm = command("vllm", row, "m/x")
    assert "--pipeline-parallel-size 2" in vllm and "--data-parallel-size 2" in vllm
    assert "--enable-expert-parallel" in vllm and "--kv-cache-dtype" not in vllm and "--quantization" not in vllm
    sglang = command("sglang", row, "m/x")
    assert "--pp-size 2" in sglang and "--dp-size 2" in sglang and "--ep-size 4" in sglang
    trtllm = command("trtllm", row, "m/x")
    assert "--pp_size 2" in trtllm and "--ep_size 4" in trtllm and "run 2 of these" in trtllm
    assert "dtype: fp8" not in trtllm
    no_pp = command("vllm", {**row, "pipeline_parallel": 1, "replicas": 1, "expert_parallel": 1}, "m/x")
    assert "--pipeline-parallel-size" not in no_pp and "--data-parallel-size" not in no_pp
    with pytest.raises(PerfkitError, match="valid choices: vllm, sglang, trtllm"):
        command("tgi", row, "m/x")


def test_unmeetable_slos_give_an_empty_plan_with_the_closest_miss():
    p = perfkit.plan(LLAMA70, "nvidia_h200_hgx", 8, 1024, 256, ttft_p99_ms=50, tpot_p99_ms=2,
                     running_caps=(64,))
    assert p.layouts.empty and "no layout meets the SLOs" in p.reason
    assert "ttft_p99_ms=50" in p.reason and "tpot_p99_ms=2" in p.reason
    assert p.closest_miss is not None and p.closest_miss["load_ttft_ms_p99"] > 50
    with pytest.raises(PerfkitError, match="the plan is empty"):
        p.command("vllm")


def test_a_model_too_big_for_the_chips_says_why():
    p = perfkit.plan(LLAMA70, "nvidia_h100_hgx", 1, 1024, 256, running_caps=(8,), dtypes=["bf16"], **SLO)
    assert p.layouts.empty and "no layout of 1 chips runs" in p.reason and "does not fit" in p.reason


def test_moe_layouts_include_expert_parallel():
    p = perfkit.plan("Qwen/Qwen3-30B-A3B", "nvidia_h100_hgx", 4, 1024, 256, running_caps=(64,),
                     dtypes=["bf16"], kv_dtypes=["bf16"], ttft_p99_ms=2000, tpot_p99_ms=50)
    assert len(p.layouts) > 0 and (p.layouts["expert_parallel"] > 1).any()


@pytest.mark.parametrize("kwargs, field", [({"chips": 0}, "chips"), ({"ttft_p99_ms": -1}, "ttft_p99_ms"),
                                           ({"tpot_p99_ms": float("nan")}, "tpot_p99_ms"),
                                           ({"input_seq_cv": -1.0}, "input_seq_cv")])
def test_bad_planner_input_names_the_field(kwargs, field):
    args = {"model_id": LLAMA70, "hardware_config": "nvidia_h200_hgx", "chips": 8, "input_seq": 1024,
            "output_seq": 256, **SLO, **kwargs}
    with pytest.raises(PerfkitError) as info:
        perfkit.plan(**args)
    assert info.value.field == field


def test_cli_prints_the_plan_and_commands(capsys):
    rc = main(["plan", LLAMA70, "nvidia_h200_hgx", "--chips", "8", "--input-seq", "1024", "--output-seq", "256",
               "--ttft-p99-ms", "1000", "--tpot-p99-ms", "40", "--top", "2", "--launch", "sglang"])
    out = capsys.readouterr().out
    assert rc == 0 and "requests_s_per_chip" in out and "sglang.launch_server" in out and "vllm serve" not in out
    rc = main(["plan", LLAMA70, "nvidia_h200_hgx", "--chips", "8", "--input-seq", "1024", "--output-seq", "256",
               "--ttft-p99-ms", "10", "--tpot-p99-ms", "1"])
    assert rc == 1 and "closest miss" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["perfkit.planner.core", "perfkit.planner.launch", "perfkit.planner.plots",
                                    "perfkit.simulate.core", "perfkit.widgets.planner"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_plan_request_answers_the_row_and_curve_rises(llama_plan):
    best = llama_plan.best
    body = perfkit.system_metrics(llama_plan.request(0))
    assert body["load"]["ttft_ms_p99"] == pytest.approx(best["load_ttft_ms_p99"])
    assert body["system"]["num_chips"] == 8
    curve = llama_plan.curve(0, points=8)
    assert np.all(np.diff(curve["load_ttft_ms_p99"].to_numpy()) > 0)


def test_planner_panel_plans_and_explains():
    pytest.importorskip("ipywidgets")
    from perfkit.widgets import PlannerPanel

    panel = PlannerPanel(charts=False)
    panel.caps.value = "64"
    panel.run()
    assert panel.plan is not None and "requests/s on 8 chips" in panel.status.value
    assert "tensor_parallel" in panel.table.value and panel.launch.value.startswith("vllm serve")
    panel.engine.value = "trtllm"
    assert "trtllm-serve" in panel.launch.value
    panel.tpot.value = 1.0
    panel.run()
    assert "no layout meets the SLOs" in panel.status.value and "closest miss" in panel.status.value
    panel.caps.value = "a lot"
    panel.run()
    assert panel.plan is None and ("invalid literal" in panel.status.value or "running caps" in panel.status.value)


def test_planner_panel_draws_its_chart():
    pytest.importorskip("matplotlib")
    pytest.importorskip("ipywidgets")
    from perfkit.widgets import PlannerPanel

    panel = PlannerPanel()
    panel.caps.value = "64"
    panel.run()
    assert panel.chart.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_launch_flags_for_attention_data_parallel():
    # DeepSeek-style: attention data parallel over the copy, experts split over it (two copies of 8 GPUs)
    row = {"tensor_parallel": 1, "pipeline_parallel": 1, "expert_parallel": 8, "attention_data_parallel": 8,
           "replicas": 2, "num_chips": 16, "max_running_sequences": 256, "input_seq": 1024, "output_seq": 256,
           "kv_dtype": "fp8", "dtype": "fp8", "native_dtype": "fp8"}
    vllm = command("vllm", row, "deepseek-ai/DeepSeek-V3")
    assert "--data-parallel-size 8" in vllm and "--enable-expert-parallel" in vllm
    assert "--max-num-seqs 32" in vllm and "run 2 of these servers" in vllm and "--quantization" not in vllm
    sglang = command("sglang", row, "deepseek-ai/DeepSeek-V3")
    assert "--tp-size 8" in sglang and "--dp-size 8" in sglang and "--enable-dp-attention" in sglang
    assert "--max-running-requests 256" in sglang
    trtllm = command("trtllm", row, "deepseek-ai/DeepSeek-V3")
    assert "--tp_size 8" in trtllm and "enable_attention_dp: true" in trtllm and "--max_batch_size 32" in trtllm


def test_moe_plan_searches_attention_data_parallel_and_keeps_native_fp8():
    p = perfkit.plan("deepseek-ai/DeepSeek-V3", "nvidia_h200_hgx", 8, 1024, 256, running_caps=(64,),
                     ttft_p99_ms=3000, tpot_p99_ms=100)
    rows = p.layouts
    assert len(rows) > 0 and (rows["expert_parallel"] > 1).any()
    # attention on fewer chips than the copy is data parallel over it: tp x dp x pp = the copy's chips
    assert (rows["tensor_parallel"] * rows["attention_data_parallel"] * rows["pipeline_parallel"]
            == rows["num_chips"] // rows["replicas"]).all()
    assert (p.layouts["native_dtype"] == "fp8").all()
    if p.best["dtype"] == "fp8":
        assert "--quantization" not in p.command("vllm")


def test_pareto_front_reaches_the_best_layout(llama_plan):
    # the layout with the most throughput per chip is on the front (its refined best rate included)
    assert llama_plan.pareto["tokens_s_per_chip"].max() == pytest.approx(llama_plan.layouts["tokens_s_per_chip"].max())


def test_disaggregated_plan_compares_the_best_of_both():
    """plan(..., disaggregated=True) searches P:D splits of the chips: every disaggregated layout uses them all,
    meets both SLOs, and the comparison holds the best of each kind."""
    p = perfkit.plan("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 4, 1024, 128, ttft_p99_ms=2000, tpot_p99_ms=50,
                     running_caps=(32, 128), disaggregated=True)
    d = p.disaggregated
    assert not d.empty
    assert ((d["prefill_chips"] + d["decode_chips"]) == 4).all() and (d["num_chips"] == 4).all()
    assert (d["load_ttft_ms_p99"] <= 2000).all() and (d["load_tpot_ms_p99"] <= 50).all()
    assert list(p.comparison.index) == ["aggregated", "disaggregated"]
    assert p.comparison.loc["disaggregated", "requests_s_per_chip"] == d["requests_s_per_chip"].max()
    assert p.comparison.loc["aggregated", "requests_s_per_chip"] == p.layouts["requests_s_per_chip"].max()
    # the best disaggregated row is what the API answers for its request
    from perfkit.planner import disagg

    body = disagg.request(d.iloc[0], p.slo["base"])
    answer = perfkit.system_metrics(body)
    assert answer["load"]["ttft_ms_p99"] == pytest.approx(d.iloc[0]["load_ttft_ms_p99"], rel=1e-9)
    assert answer["system"]["num_chips"] == 4


def test_plan_without_disaggregated_keeps_its_shape():
    p = perfkit.plan("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 2, 1024, 128, ttft_p99_ms=2000, tpot_p99_ms=50,
                     running_caps=(32,))
    assert p.disaggregated is None and p.comparison is None
