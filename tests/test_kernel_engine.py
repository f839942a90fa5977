"""The engine prices every layer with the fitted kernel models: physics of the composition.

Reference figures: the measured kernel tables' README (shared/data/kernels/README.md, aiconfigurator-core
0.12.0): H100 bf16 GEMMs reach 86% of the 989 TFLOP/s peak and fp8 76% of 1,979; B200 nvfp4 reaches ~50% of
its 9 PFLOP/s.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import perfkit
from perfkit import catalog
from perfkit.engine import kernel_time
from perfkit.engine.costs import Pass, feedforward
from perfkit.engine.kernels import moe
from perfkit.inputs import system_config, to_arrays


def _request(model, hw, batch=1, isl=128, osl=64, dtype=None, tp=1, mode="static", engine="trtllm"):
    layers = {t: {"tensor_parallel": tp} for t in ("attention", "feedforward", "embedding")}
    if dtype:
        for t in ("attention", "feedforward"):
            layers[t]["dtype"] = dtype
    return {"model_id": model, "hardware_config": hw, "batch_size": batch, "input_seq": isl, "output_seq": osl,
            "serving_mode": mode, "serving_engine": engine, "layers": layers}


def _evaluate(body, profile=None, hw=None):
    flat = system_config(body)
    model = catalog.model_spec(flat["model_id"])
    hw = hw or catalog.hardware_spec(flat["hardware_config"])
    profile = profile or catalog.serving_profile(flat["serving_engine"])
    return perfkit.engine.system.evaluate(model, hw, to_arrays(flat), profile)


def test_every_catalog_chip_has_fitted_or_sourced_kernel_models():
    for name in catalog.list_hardware():
        hw = catalog.hardware_spec(name)
        assert hw.kernels is not None, name
        assert hw.kernels.status in ("fitted", "sourced"), name
        assert hw.kernels.source, name


def test_table_covered_chips_are_fitted_and_the_others_sourced():
    fitted = {"nvidia_h100_hgx", "nvidia_h200_hgx", "nvidia_b200_hgx", "nvidia_b300_hgx", "nvidia_gb200_single",
              "nvidia_gb300_nvl72", "nvidia_nvl72_rack", "nvidia_a100_hgx", "nvidia_l40s_server"}
    for name in catalog.list_hardware():
        status = catalog.hardware_spec(name).kernels.status
        assert status == ("fitted" if name in fitted else "sourced"), name


def test_not_calibrated_chips_say_so_in_their_notes():
    sourced = perfkit.system_metrics(_request("meta-llama/Llama-3.1-8B", "amd_mi300x_platform"))
    assert any("not kernel-calibrated" in n for n in sourced["system"]["notes"])
    fitted = perfkit.system_metrics(_request("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx"))
    assert not any("kernel-calibrated" in n for n in fitted["system"]["notes"])


def test_decode_replays_graphs_so_launch_cost_moves_only_prefill():
    """Eager prefill pays the host's launches; decode steps replay CUDA graphs."""
    body = _request("meta-llama/Llama-2-70b-hf", "nvidia_h100_hgx", tp=4)
    base = catalog.serving_profile("trtllm")
    slow = dataclasses.replace(base, launch_s=base.launch_s * 10)
    a, b = _evaluate(body, base), _evaluate(body, slow)
    assert float(b["tpot_ms"]) == pytest.approx(float(a["tpot_ms"]))
    assert float(b["ttft_ms"]) > float(a["ttft_ms"])


def test_short_static_prefill_pays_no_closed_loop_overhead():
    """A batch-1, 128-token static prefill of Llama-2-70B is its kernels (or the host's launches, if those
    take longer) plus one engine step: well under the old fitted 0.41-1.0 ms per layer (33-80 ms)."""
    body = _request("meta-llama/Llama-2-70b-hf", "nvidia_h100_hgx", tp=4)
    profile = catalog.serving_profile("trtllm")
    ttft = float(_evaluate(body, profile)["ttft_ms"])
    assert ttft < 80 * 0.41
    # at least the weights' read time: 70e9 params x 2 bytes over 4 chips at the datasheet's 3.35 TB/s
    assert ttft > 70e9 * 2 / 4 / 3.35e12 * 1e3


def test_fp8_prefill_gains_less_than_the_peak_ratio_on_h100():
    """fp8 doubles the peak but its GEMMs reach a lower share of it (76% vs 86%): a large prefill gains
    less than 2x."""
    bf16 = _evaluate(_request("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", batch=8, isl=4096, dtype="bf16"))
    fp8 = _evaluate(_request("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", batch=8, isl=4096, dtype="fp8"))
    ratio = float(bf16["ttft_ms"]) / float(fp8["ttft_ms"])
    assert 1.1 < ratio < 2 * 0.86 / 0.76 * 0.9


def test_nvfp4_prefill_on_b200_is_far_from_twice_fp8():
    """nvfp4 GEMMs reach about half of B200's 9 PFLOP/s: prefill gains much less than the 2x peak ratio."""
    fp8 = _evaluate(_request("meta-llama/Llama-3.1-70B", "nvidia_b200_hgx", batch=8, isl=4096, dtype="fp8", tp=2))
    fp4 = _evaluate(_request("meta-llama/Llama-3.1-70B", "nvidia_b200_hgx", batch=8, isl=4096, dtype="fp4", tp=2))
    ratio = float(fp8["ttft_ms"]) / float(fp4["ttft_ms"])
    assert 1.0 < ratio < 1.7


def test_the_engine_prices_routed_experts_with_the_moe_kernel_model():
    """One formula per quantity: the engine's routed-expert time is the fitted moe closed form at the
    layer's shape (with the engine's routing expectation and every weight from HBM)."""
    model = catalog.model_spec("Qwen/Qwen3-30B-A3B")
    hw = catalog.hardware_spec("nvidia_h200_hgx")
    flat = system_config(_request("Qwen/Qwen3-30B-A3B", "nvidia_h200_hgx", batch=16, isl=2048))
    cfg = perfkit.engine.layout.with_spans(to_arrays(flat))
    cost = feedforward(model, cfg, Pass(np.float64(16), np.float64(2048), np.float64(2048), np.float64(2100), True))
    kt = kernel_time.table(hw, "trtllm", model)
    params = dict(hw.kernels.params("trtllm", "moe", "bf16"))
    params["cache_bytes"] = 0.0
    tokens = 16 * 2048
    touched = 1 - (1 - model.experts_per_token / model.num_experts) ** tokens
    expected = moe.moe_seconds(params, tokens, model.hidden_size, model.moe_intermediate_size,
                               model.experts_per_token, model.num_experts, 1, 1, 2.0,
                               hw.peak_flops_per_s["bf16"], hw.hbm_bytes_per_s, touched)
    got = kernel_time.experts_time(kt, hw, cost.experts, np.int64(perfkit.dtypes.INDEX["bf16"]))
    assert float(got) == pytest.approx(float(expected) * cost.experts.share)


def test_a_file_without_kernels_runs_the_roofline_of_its_priors():
    """A user's hardware file without a kernels block still answers, on its efficiency priors, and says so."""
    hw = dataclasses.replace(catalog.hardware_spec("nvidia_h100_hgx"), kernels=None)
    out = _evaluate(_request("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx"), hw=hw)
    assert np.isfinite(float(out["ttft_ms"])) and np.isfinite(float(out["tpot_ms"]))
    e = hw.efficiency
    # batch-1 decode reads every weight once: at least the time to stream them at the prior's bandwidth
    weights = 8.0e9 * 2
    assert float(out["tpot_ms"]) >= weights / (hw.hbm_bytes_per_s * e.hbm) * 1e3 * 0.95
