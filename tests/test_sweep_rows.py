"""A sweep row is the single-request answer: random rows of large grids against ``perfkit.system_metrics``."""
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import perfkit  # noqa: E402
from perfkit import catalog  # noqa: E402
from perfkit.engine.system import evaluate  # noqa: E402
from perfkit.inputs import system_config, to_arrays  # noqa: E402
from perfkit.sweeps import request_of  # noqa: E402
from perfkit.sweeps.run import ONLY_IF_VALID  # noqa: E402

SEED_FIGURES = ("ttft_ms", "tpot_ms", "throughput_tokens_s", "total_latency_ms", "weight_memory_gb",
                "activation_memory_gb", "kv_cache_gb", "total_memory_gb", "memory_per_chip_gb", "hw_capacity_gb",
                "num_chips", "bottleneck", "fits_on_hardware")

# Several models (dense GQA, MoE, MLA + MoE, fp4 MoE), chips (one lacking fp8, a pod with a maximum size,
# a rack), layouts that cannot run, dtypes and workloads; chunk_rows cuts the grid mid-axis.
GRIDS = [
    {"model_id": ["meta-llama/Llama-3.1-70B", "Qwen/Qwen3-32B", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"],
     "hardware_config": ["nvidia_h100_hgx", "nvidia_a100_hgx", "google_tpu_v5e_pod"],
     "batch_size": [1, 7, 64, 512], "input_seq": [128, 4096, 32768], "output_seq": [1, 256, 2048],
     "pipeline_parallel": [1, 2, 3], "serving_mode": ["static", "continuous"],
     "layers": {"attention": {"tensor_parallel": [1, 2, 4, 6, 8], "context_parallel": [1, 2],
                              "dtype": ["bf16", "fp8"]},
                "feedforward": {"tensor_parallel": [1, 4, 8, 16]},
                "all": {"dtype": ["fp16", "int8"]}}},
    {"model_id": ["deepseek-ai/DeepSeek-V3", "mistralai/Mixtral-8x7B-v0.1", "openai/gpt-oss-120b"],
     "hardware_config": ["nvidia_nvl72_rack", "nvidia_gb200_single", "amd_mi300x_platform"],
     "batch_size": [1, 32, 256], "input_seq": [512, 8192], "output_seq": [64, 1024],
     "kv_dtype": ["bf16", "fp8"], "serving_engine": ["generic", "vllm"], "serving_mode": "continuous",
     "layers": {"all": {"tensor_parallel": [1, 2, 4, 8, 16]},
                "feedforward": {"expert_parallel": [1, 2, 8, 32], "dtype": ["fp8", "fp4", "bf16"]},
                "norm": {"sequence_parallel": [1, 2]}}},
]


def _leaves(response: dict) -> dict:
    out = {}
    for key, value in response.items():
        out.update(_leaves(value) if isinstance(value, dict) else {key: value})
    return out


def _figures(df):
    return [c for c in df.columns if c not in df.attrs["axes"] and c not in ("valid", "reason")]


@pytest.mark.parametrize("grid", GRIDS, ids=["dense", "moe"])
def test_random_rows_equal_system_metrics(grid):
    df = perfkit.sweep(grid, chunk_rows=5000)
    assert len(df) > 20_000
    assert df["valid"].any() and not df["valid"].all()
    figures = _figures(df)
    assert set(SEED_FIGURES) <= set(figures)
    rng = np.random.default_rng(7)
    picks = list(rng.choice(len(df), 40, replace=False))
    picks += list(rng.choice(np.flatnonzero(df["valid"].to_numpy()), 20, replace=False))
    compared = 0
    for i in picks:
        row = df.iloc[i]
        request = {**request_of(df, df.index[i]), "uncertainty": True}  # the bands are figures too
        try:
            answer = _leaves(perfkit.system_metrics(request))
        except perfkit.PerfkitError as exc:  # a layout that cannot run: the row says why
            assert not row["valid"]
            assert str(exc) in row["reason"]
            continue
        assert row["reason"] == "" or row["reason"].startswith("does not fit")
        assert row["valid"] == answer["fits_on_hardware"] == row["fits_on_hardware"]
        for name in figures:
            if name not in answer:
                continue
            if name in ONLY_IF_VALID and not row["valid"]:  # the API answers anyway; the table says "none"
                assert np.isnan(row[name]), name
            elif isinstance(answer[name], (bool, str)):
                assert row[name] == answer[name], name
            else:
                assert row[name] == pytest.approx(answer[name], rel=1e-9, abs=1e-12), name
        compared += 1
    assert compared >= 20
    assert {"ttft_ms_p10", "tpot_ms_p90"} <= set(figures)


def test_every_engine_figure_is_a_column():
    grid = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
            "batch_size": 4, "input_seq": 512, "output_seq": 64}
    flat = system_config(grid)
    keys = evaluate(catalog.model_spec(flat["model_id"]), catalog.hardware_spec(flat["hardware_config"]),
                    to_arrays(flat), catalog.serving_profile(flat["serving_engine"])).keys()
    df = perfkit.sweep(grid)
    assert set(keys) - {"code"} == set(_figures(df))
    assert list(df.columns[:3]) == ["model_id", "hardware_config", "serving_engine"]
    assert list(df.columns[-2:]) == ["valid", "reason"]


def test_list_of_requests_keeps_order_and_matches_api():
    requests = [
        {"model_id": m, "hardware_config": h, "batch_size": b, "input_seq": 1024, "output_seq": 128,
         "layers": {"attention": {"tensor_parallel": tp}, "feedforward": {"tensor_parallel": tp}}}
        for m, h, b, tp in [("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 1, 1),
                            ("deepseek-ai/DeepSeek-V3", "nvidia_nvl72_rack", 8, 8),
                            ("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 64, 2),
                            ("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 1, 3),
                            ("mistralai/Mixtral-8x7B-v0.1", "nvidia_b200_hgx", 16, 4)]]
    df = perfkit.sweep(requests, chunk_rows=2)
    assert df["batch_size"].tolist() == [1, 8, 64, 1, 16]
    assert df["model_id"].tolist()[:2] == ["meta-llama/Llama-3.1-8B", "deepseek-ai/DeepSeek-V3"]
    assert df["valid"].tolist() == [True, True, True, False, True]
    assert "tensor_parallel=3" in df["reason"][3]
    for i in (0, 1, 2, 4):
        answer = perfkit.system_metrics(requests[i])
        assert df["tpot_ms"][i] == pytest.approx(answer["tpot_ms"], rel=1e-12)
        assert df["memory_per_chip_gb"][i] == pytest.approx(answer["memory"]["memory_per_chip_gb"], rel=1e-12)
        assert _leaves(perfkit.system_metrics(request_of(df, i))) == _leaves(answer)


def test_rows_that_cannot_run_have_no_latencies_and_do_not_fit():
    # issue 12: invalid rows carried latencies, and a layout that cannot run said fits_on_hardware True
    df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h100_hgx",
                        "batch_size": [1, 256], "input_seq": 8192, "output_seq": 256,
                        "layers": {"all": {"tensor_parallel": [1, 3, 8]}}})
    invalid, valid = df[~df["valid"]], df[df["valid"]]
    assert len(invalid) and len(valid)
    assert invalid["reason"].str.contains("tensor_parallel=3").any()  # structural
    assert invalid["reason"].str.startswith("does not fit").any()  # memory
    assert invalid[list(ONLY_IF_VALID)].isna().all().all()
    assert valid[list(ONLY_IF_VALID)].notna().all().all()
    assert (df["fits_on_hardware"] == df["valid"]).all()
    assert invalid["memory_per_chip_gb"].notna().all()  # memory stays: it says why
