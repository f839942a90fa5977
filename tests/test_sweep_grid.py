"""Grids: axes, order, chunking, tied ``layers.all`` axes, and bad grids raised before anything runs."""
import doctest
import importlib
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import perfkit  # noqa: E402
from perfkit import PerfkitError  # noqa: E402
from perfkit.sweeps import request_of  # noqa: E402

BASE = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
        "batch_size": 1, "input_seq": 1024, "output_seq": 128}


def grid(**fields):
    layers = fields.pop("layers", None)
    out = {**BASE, **fields}
    if layers is not None:
        out["layers"] = layers
    return out


def test_axes_are_the_cartesian_product_in_c_order():
    df = perfkit.sweep(grid(batch_size=[1, 2, 4], input_seq=[128, 256],
                            layers={"attention": {"tensor_parallel": [1, 2]}}))
    assert len(df) == 12
    assert df.attrs["axes"] == ["model_id", "hardware_config", "serving_engine", "batch_size", "input_seq",
                                "layers.attention.tensor_parallel"]
    assert (df["serving_engine"] == "generic").all()  # the engine profile a single request gets by default
    assert df["batch_size"].tolist() == [1] * 4 + [2] * 4 + [4] * 4  # the first axis varies slowest
    assert df["layers.attention.tensor_parallel"].tolist() == [1, 2] * 6
    assert df.set_index(df.attrs["axes"]).index.is_unique
    # scalars stay fixed and are not columns
    assert "output_seq" not in df.columns and df.attrs["fixed"]["output_seq"] == 128


@pytest.mark.parametrize("chunk_rows", [1, 5, 7, 64, 1 << 20])
def test_chunking_never_changes_the_table(chunk_rows):
    spec = grid(model_id=["meta-llama/Llama-3.1-8B", "Qwen/Qwen3-30B-A3B"],
                hardware_config=["nvidia_h100_hgx", "nvidia_gb200_single"],
                batch_size=[1, 3, 64], output_seq=[16, 512],
                layers={"all": {"tensor_parallel": [1, 2, 8]}, "feedforward": {"dtype": ["bf16", "fp8"]}})
    df = perfkit.sweep(spec, chunk_rows=chunk_rows)
    whole = perfkit.sweep(spec, chunk_rows=1 << 20)
    assert len(df) == 2 * 2 * 3 * 2 * 3 * 2
    assert df.equals(whole)
    frames = list(perfkit.sweeps.iter_frames(spec, chunk_rows=chunk_rows))
    assert all(len(f) <= chunk_rows for f in frames)
    assert sum(len(f) for f in frames) == len(df)


def test_all_layers_axis_sets_every_layer_that_offers_it_and_per_layer_wins():
    df = perfkit.sweep(grid(layers={"all": {"tensor_parallel": [2, 4]}, "embedding": {"tensor_parallel": 1}}))
    request = request_of(df, 1)
    assert request["layers"]["attention"]["tensor_parallel"] == 4
    assert request["layers"]["feedforward"]["tensor_parallel"] == 4
    assert request["layers"]["embedding"]["tensor_parallel"] == 1
    assert "norm" not in request["layers"]  # norm offers no tensor_parallel
    assert df["num_chips"].tolist() == [2, 4]


def test_tensor_parallel_halves_sharded_weights_per_chip():
    df = perfkit.sweep(grid(layers={"all": {"tensor_parallel": [1, 2, 4, 8]}}))
    per_chip = df["memory_per_chip_gb"].to_numpy()
    assert np.all(np.diff(per_chip) < 0)
    assert per_chip[0] / per_chip[1] == pytest.approx(2, rel=0.02)


def test_unset_kv_dtype_follows_the_attention_dtype_axis():
    df = perfkit.sweep(grid(batch_size=16, input_seq=8192, layers={"attention": {"dtype": ["bf16", "fp8"]}}))
    assert df["kv_cache_gb"][0] == pytest.approx(2 * df["kv_cache_gb"][1])
    fixed = perfkit.sweep(grid(batch_size=16, input_seq=8192, kv_dtype="bf16",
                               layers={"attention": {"dtype": ["bf16", "fp8"]}}))
    assert fixed["kv_cache_gb"][0] == fixed["kv_cache_gb"][1]


def test_layouts_that_cannot_run_are_rows_with_reasons():
    df = perfkit.sweep(grid(model_id="meta-llama/Llama-3.1-70B", hardware_config="google_tpu_v5e_pod",
                            batch_size=[1, 4096], input_seq=2048,
                            layers={"attention": {"tensor_parallel": [3, 16]}, "feedforward": {"tensor_parallel": 16},
                                    "norm": {"sequence_parallel": [1, 512]}}))
    by_layout = df.set_index(["batch_size", "layers.attention.tensor_parallel", "layers.norm.sequence_parallel"])
    assert "attention heads" in by_layout.loc[(1, 3, 1), "reason"]
    assert "at most 256" in by_layout.loc[(1, 16, 512), "reason"]
    assert by_layout.loc[(1, 16, 1), "valid"] and by_layout.loc[(1, 16, 1), "reason"] == ""
    assert not by_layout.loc[(4096, 16, 1), "fits_on_hardware"]
    assert by_layout.loc[(4096, 16, 1), "reason"].startswith("does not fit")
    assert df["reason"].dtype == "category"


@pytest.mark.parametrize("bad, field, words", [
    ({"batch_size": [1, 0]}, "batch_size", "between 1"),
    ({"batch_size": [1, 2.5]}, "batch_size", "positive integer"),
    ({"batch_size": [1, True]}, "batch_size", "positive integer, got True"),
    ({"pipeline_parallel": [1, 0]}, "pipeline_parallel", "between 1"),
    ({"kv_dtype": ["bf16", "fp12"]}, "kv_dtype", "fp16"),
    ({"serving_engine": ["vllm", "vlm"]}, "serving_engine", "did you mean 'vllm'"),
    ({"serving_mode": ["static", "dynamic"]}, "serving_mode", "continuous"),
    ({"uncertainty": [True, False]}, "uncertainty", "not an axis"),
    ({"batch_size": []}, "batch_size", "no values"),
    ({"batch_size": [2, 2]}, "batch_size", "twice"),
    ({"batch_size": [1, [2]]}, "batch_size", "plain values"),
    ({"model_id": [{"id": 1}]}, "model_id", "plain values"),
    ({"batch_sizes": [1]}, "batch_sizes", "did you mean 'batch_size'"),
    ({"model_id": ["meta-llama/Llama-3.1-8B", "nope/nope"]}, "model_id", "nope/nope"),
    ({"hardware_config": ["nvidia_h100_hgx", "nvidia_h1000"]}, "hardware_config", "nvidia_h1000"),
    ({"layers": {"atention": {"tensor_parallel": [1, 2]}}}, "layers.atention", "did you mean 'attention'"),
    ({"layers": {"attention": {"tensor_paralel": [1, 2]}}}, "layers.attention.tensor_paralel", "tensor_parallel"),
    ({"layers": {"norm": {"tensor_parallel": [1, 2]}}}, "layers.norm.tensor_parallel", "does not offer"),
    ({"layers": {"feedforward": {"dtype": ["bf16", "fp9"]}}}, "layers.feedforward.dtype", "fp8"),
    ({"layers": {"all": {"expert_parallel": [1, 8]}}}, "layers.all.expert_parallel", "no layer"),
])
def test_bad_grids_raise_before_evaluating(bad, field, words):
    with pytest.raises(PerfkitError, match=words) as info:
        perfkit.sweep(grid(**bad))
    assert info.value.field == field


def test_bad_spec_and_chunk_rows():
    with pytest.raises(PerfkitError, match="list of requests"):
        perfkit.sweep("meta-llama/Llama-3.1-8B")
    with pytest.raises(PerfkitError, match="empty"):
        perfkit.sweep([])
    with pytest.raises(PerfkitError, match="request 1: .*batch_size"):
        perfkit.sweep([BASE, {**BASE, "batch_size": -1}])
    with pytest.raises(PerfkitError, match="chunk_rows"):
        perfkit.sweep(BASE, chunk_rows=0)


@pytest.mark.parametrize("module", ["core", "analysis", "export", "distributed"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"perfkit.sweeps.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_progress_bar_does_not_change_the_table():
    spec = grid(batch_size=[1, 2, 4], layers={"all": {"tensor_parallel": [1, 2]}})
    assert perfkit.sweep(spec, progress=True, chunk_rows=2).equals(perfkit.sweep(spec))
