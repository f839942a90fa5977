"""Physics that must hold whatever the calibration: weights, KV cache, sharding, monotonic times, roofline.

Reference numbers carry their source in a comment. Exact numbers of the timing model are never pinned
(the engine is being calibrated); only counts of bytes, which follow from the model configs, are.
"""
from __future__ import annotations

import pytest

import perfkit
from perfkit import catalog
from perfkit.errors import PerfkitError

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
LLAMA8 = "meta-llama/Llama-3.1-8B"
LAYER_TYPES = ("attention", "feedforward", "norm", "embedding")
GPUS = [h for h in catalog.list_hardware() if h.startswith(("nvidia_", "amd_"))]


def all_layers(**settings) -> dict:
    return {t: dict(settings) for t in LAYER_TYPES}


def system(model_id, hardware="nvidia_h200_hgx", batch_size=1, input_seq=1024, output_seq=128, **extra):
    body = {"model_id": model_id, "hardware_config": hardware, "batch_size": batch_size,
            "input_seq": input_seq, "output_seq": output_seq, **extra}
    return perfkit.system_metrics(body)


def layer(model_id, layer_type, hardware="nvidia_h200_hgx", batch_size=1, seq_length=1024, **extra):
    body = {"model_id": model_id, "hardware_config": hardware, "layer_type": layer_type,
            "batch_size": batch_size, "seq_length": seq_length, **extra}
    return perfkit.layer_metrics(body)


# -- weights ------------------------------------------------------------------------------------------------


def test_tinyllama_bf16_weights():
    # TinyLlama model card: 1.1B parameters -> 2.2 GB in bf16 on one chip
    r = system(TINY, layers=all_layers(dtype="bf16"))
    assert r["system"]["num_chips"] == 1
    assert r["memory"]["weight_memory_gb"] == pytest.approx(2.2, rel=0.03)


def test_llama_70b_bf16_weights():
    # Llama-3.1-70B: 70.6B parameters (Hugging Face safetensors metadata) -> 141 GB in bf16
    r = system("meta-llama/Llama-3.1-70B", layers=all_layers(dtype="bf16"))
    assert r["memory"]["weight_memory_gb"] == pytest.approx(141.0, rel=0.02)


#: Total parameters of every bundled model, with the source of each figure.
PARAMETERS = {
    "Qwen/Qwen2.5-7B-Instruct": 7.61e9,  # Qwen2.5-7B-Instruct model card: "Number of Parameters: 7.61B"
    "Qwen/Qwen3-235B-A22B": 235e9,  # Qwen3-235B-A22B model card: "235B in total and 22B activated"
    "Qwen/Qwen3-235B-A22B-FP8": 235e9,  # the same model, its weights in block-scaled fp8
    "Qwen/Qwen3-30B-A3B": 30.5e9,  # Qwen3-30B-A3B model card: "30.5B in total and 3.3B activated"
    "Qwen/Qwen3-32B": 32.8e9,  # Qwen3-32B model card: "Number of Parameters: 32.8B"
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 1.1e9,  # TinyLlama model card: 1.1B parameters
    "deepseek-ai/DeepSeek-R1": 671e9,  # DeepSeek-R1 card: 671B total (685B on the hub adds the 14B MTP module)
    "deepseek-ai/DeepSeek-V3": 671e9,  # DeepSeek-V3 card: "671B total parameters with 37B activated", MLA
    "google/gemma-2-9b": 9.24e9,  # Gemma 2 report, table 2: 917M embedding + 8324M non-embedding parameters
    "meta-llama/Llama-2-70b-hf": 69.0e9,  # Hugging Face safetensors metadata: 69B (Llama 2 paper: "70B")
    "meta-llama/Llama-3.1-405B": 405.9e9,  # Hugging Face safetensors metadata: 406B
    "meta-llama/Llama-3.1-70B": 70.6e9,  # Hugging Face safetensors metadata: 70.6B
    "meta-llama/Llama-3.1-8B": 8.03e9,  # Hugging Face safetensors metadata: 8.03B
    "meta-llama/Llama-3.3-70B-Instruct": 70.6e9,  # same architecture as Llama-3.1-70B
    "microsoft/Phi-3-mini-4k-instruct": 3.8e9,  # Phi-3 technical report: "phi-3-mini, a 3.8 billion parameter"
    "mistralai/Mixtral-8x7B-v0.1": 46.7e9,  # Mistral AI, "Mixtral of experts": 46.7B total, 12.9B per token
    "openai/gpt-oss-120b": 117e9,  # OpenAI gpt-oss model card: 117B parameters, 5.1B active
}


def test_every_bundled_model_has_a_reference_count():
    assert set(PARAMETERS) == set(catalog.list_models())


@pytest.mark.parametrize("model_id", sorted(PARAMETERS))
def test_parameter_count(model_id):
    # bf16 for every layer on one chip: weight bytes / 2 = parameters
    r = system(model_id, layers=all_layers(dtype="bf16"), kv_dtype="bf16")
    assert r["system"]["num_chips"] == 1
    assert r["memory"]["weight_memory_gb"] * 1e9 / 2 == pytest.approx(PARAMETERS[model_id], rel=0.02)


@pytest.mark.parametrize("dtype, ratio", [("fp32", 2.0), ("fp8", 0.5), ("int8", 0.5), ("fp4", 0.25), ("int4", 0.25)])
def test_weights_scale_with_dtype_bytes(dtype, ratio):
    bf16 = system(LLAMA8, layers=all_layers(dtype="bf16"))["memory"]["weight_memory_gb"]
    other = system(LLAMA8, layers=all_layers(dtype=dtype))["memory"]["weight_memory_gb"]
    assert other == pytest.approx(bf16 * ratio, rel=1e-12)


@pytest.mark.parametrize("model_id", [LLAMA8, "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B"])
@pytest.mark.parametrize("layer_type", ["attention", "feedforward", "embedding"])
def test_tensor_parallel_2_halves_sharded_weights_per_chip(model_id, layer_type):
    one = layer(model_id, layer_type, tensor_parallel=1)["memory"]["weights_per_chip_gb"]
    two = layer(model_id, layer_type, tensor_parallel=2)["memory"]["weights_per_chip_gb"]
    assert two == pytest.approx(one / 2, rel=1e-12)


@pytest.mark.parametrize("model_id", ["Qwen/Qwen3-30B-A3B", "mistralai/Mixtral-8x7B-v0.1", "openai/gpt-oss-120b",
                                      "deepseek-ai/DeepSeek-V3"])
def test_moe_weights_per_chip_shrink_with_expert_parallel(model_id):
    experts = catalog.model_spec(model_id).num_experts
    degrees = [d for d in (1, 2, 4, 8) if experts % d == 0]
    per_chip = [layer(model_id, "feedforward", expert_parallel=d)["memory"]["weights_per_chip_gb"] for d in degrees]
    assert all(b < a for a, b in zip(per_chip, per_chip[1:])), per_chip


def test_replicated_layers_add_copies_to_the_system_total():
    # context parallelism replicates attention weights: more chips hold more bytes in total, the same per chip
    base = system(LLAMA8, layers={"attention": {"tensor_parallel": 2}, "feedforward": {"tensor_parallel": 2},
                                  "embedding": {"tensor_parallel": 2}})
    cp = system(LLAMA8, layers={"attention": {"tensor_parallel": 2, "context_parallel": 2},
                                "feedforward": {"tensor_parallel": 4}, "embedding": {"tensor_parallel": 4}})
    assert cp["system"]["num_chips"] == 4
    assert cp["memory"]["memory_per_chip_gb"] < base["memory"]["memory_per_chip_gb"]


# -- KV cache -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_gqa_kv_cache_formula(tp):
    # Llama-3.1-8B config.json: 32 layers, 8 KV heads of head_dim 128. tp <= kv_heads: each chip holds
    # kv_heads / tp heads, so the sum over chips is the textbook formula.
    batch, isl, osl = 4, 1000, 24
    r = system(LLAMA8, batch_size=batch, input_seq=isl, output_seq=osl, kv_dtype="bf16",
               layers={t: {"tensor_parallel": tp} for t in ("attention", "feedforward", "embedding")})
    expected = 2 * 32 * 8 * 128 * (isl + osl) * batch * 2 / 1e9
    assert r["system"]["num_chips"] == tp
    assert r["memory"]["kv_cache_gb"] == pytest.approx(expected, rel=1e-12)


def test_fp8_kv_cache_halves_it():
    bf16 = system(LLAMA8, batch_size=8, input_seq=4096, kv_dtype="bf16")["memory"]["kv_cache_gb"]
    fp8 = system(LLAMA8, batch_size=8, input_seq=4096, kv_dtype="fp8")["memory"]["kv_cache_gb"]
    assert fp8 == pytest.approx(bf16 / 2, rel=1e-12)


def test_kv_dtype_defaults_to_the_attention_dtype():
    fp8_attn = system(LLAMA8, layers={"attention": {"dtype": "fp8"}})["memory"]["kv_cache_gb"]
    explicit = system(LLAMA8, layers={"attention": {"dtype": "fp8"}}, kv_dtype="fp8")["memory"]["kv_cache_gb"]
    assert fp8_attn == explicit


def test_kv_heads_replicate_when_tensor_parallel_exceeds_them():
    # Llama-3.1-8B has 8 KV heads: at tp 16 every chip still holds one whole KV head
    tp8 = layer(LLAMA8, "attention", tensor_parallel=8, seq_length=4096)
    tp16 = layer(LLAMA8, "attention", tensor_parallel=16, seq_length=4096)
    assert tp16["memory"]["kv_cache_per_chip_gb"] == tp8["memory"]["kv_cache_per_chip_gb"] > 0
    # the query and output projections still shard: per-chip weights shrink, but by less than half
    w8, w16 = tp8["memory"]["weights_per_chip_gb"], tp16["memory"]["weights_per_chip_gb"]
    assert w8 / 2 < w16 < w8


@pytest.mark.parametrize("tp", [1, 8])
def test_mla_kv_cache_formula(tp):
    # DeepSeek-V3 config.json: 61 layers, kv_lora_rank 512 + qk_rope_head_dim 64 cached per token, shared by
    # all heads (so every tensor-parallel chip holds the whole latent cache).
    batch, isl, osl = 2, 3000, 96
    r = system("deepseek-ai/DeepSeek-V3", batch_size=batch, input_seq=isl, output_seq=osl, kv_dtype="bf16",
               layers={"attention": {"tensor_parallel": tp}})
    per_chip = 61 * (512 + 64) * (isl + osl) * batch * 2 / 1e9
    assert r["memory"]["kv_cache_gb"] / r["system"]["num_chips"] == pytest.approx(per_chip, rel=1e-12)


def test_sliding_window_shrinks_kv_cache():
    # gpt-oss-120b config.json: 36 layers, 8 KV heads of 64, every other layer attends to a 128-token window
    batch, isl, osl = 4, 8000, 192
    r = system("openai/gpt-oss-120b", batch_size=batch, input_seq=isl, output_seq=osl, kv_dtype="bf16")
    full = 2 * 36 * 8 * 64 * (isl + osl) * batch * 2 / 1e9
    windowed = full / 2 + 2 * 18 * 8 * 64 * 128 * batch * 2 / 1e9
    assert r["memory"]["kv_cache_gb"] == pytest.approx(windowed, rel=1e-9)
    assert r["memory"]["kv_cache_gb"] < 0.6 * full


# -- times grow with the work -------------------------------------------------------------------------------

HARDWARE_SAMPLE = ["nvidia_h100_hgx", "nvidia_gb200_single", "nvidia_a100_hgx", "amd_mi300x_platform",
                   "google_tpu_v5e_pod", "intel_gaudi3_node", "nvidia_nvl72_rack"]
LENGTHS = [1, 2, 16, 100, 512, 1000, 2048, 4096, 8000, 16384, 32768, 131072]


def over_lengths(model_id, hardware, key, **fixed):
    """System responses over ``LENGTHS`` of ``key`` (input_seq or output_seq), all else fixed.

    Goes through the public API (not the engine) so that the test outlives changes to engine internals."""
    base = {"input_seq": 1024, "output_seq": 128, **fixed}
    return [system(model_id, hardware, batch_size=4, layers=all_layers(dtype="bf16"), **{**base, key: n})
            for n in LENGTHS]


def never_falls(values) -> bool:
    return all(b >= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("hardware", HARDWARE_SAMPLE)
@pytest.mark.parametrize("model_id", catalog.list_models())
def test_times_never_fall_as_the_context_grows(model_id, hardware):
    by_prompt = over_lengths(model_id, hardware, "input_seq")
    ttft = [r["ttft_ms"] for r in by_prompt]
    assert never_falls(ttft), ttft
    tpot = [r["tpot_ms"] for r in by_prompt]
    assert never_falls(tpot), tpot
    kv = [r["memory"]["kv_cache_gb"] for r in by_prompt]
    assert never_falls(kv) and kv[-1] > kv[0], kv  # flat past a sliding window (Phi-3-mini: 2047)
    by_output = over_lengths(model_id, hardware, "output_seq")
    tpot = [r["tpot_ms"] for r in by_output]
    assert never_falls(tpot), tpot
    assert len({r["ttft_ms"] for r in by_output}) == 1  # the same prompt


@pytest.mark.parametrize("model_id", [LLAMA8, "Qwen/Qwen3-30B-A3B"])
def test_more_chips_never_make_the_first_token_slower_within_a_node(model_id):
    # more tensor parallelism on one NVLink node: less work per chip, and decode pays latency-bound
    # all-reduces, so only assert the prefill of a long prompt
    ttft = [system(model_id, "nvidia_h100_hgx", batch_size=8, input_seq=8192,
                   layers={t: {"tensor_parallel": tp} for t in ("attention", "feedforward")})["ttft_ms"]
            for tp in (1, 2, 4)]
    assert ttft[0] > ttft[1] > ttft[2], ttft


# -- the roofline -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hardware", GPUS)
def test_decode_at_batch_1_is_memory_bound_on_every_gpu(hardware):
    for layer_type in ("attention", "feedforward"):
        shares = layer(LLAMA8, layer_type, hardware, batch_size=1, seq_length=1024, phase="decode")["bottleneck"]
        assert shares["memory_pct"] == max(shares.values()), (layer_type, shares)
    r = system(LLAMA8, hardware, batch_size=1, input_seq=128, output_seq=1024)
    assert r["system"]["bottleneck"] == "memory"


def test_gpu_list_covers_nvidia_and_amd():
    assert any(h.startswith("nvidia_") for h in GPUS) and any(h.startswith("amd_") for h in GPUS)


def test_large_prefill_is_compute_bound():
    shares = layer("meta-llama/Llama-3.1-70B", "feedforward", "nvidia_h100_hgx", batch_size=8,
                   seq_length=8192)["bottleneck"]
    assert shares["compute_pct"] == max(shares.values())


def test_grouped_expert_gemms_cost_more_than_one_dense_gemm_of_the_same_flops():
    """A MoE prefill splits its tokens over the active experts: each grouped GEMM sees few rows, so the same
    FLOPs take longer than in a dense GEMM of all the tokens, and the gap closes as the rows per expert grow.
    The closed forms the engine prices layers with (engine/kernels), at their compute roofline: no fixed or
    per-row costs, reads free, each active expert padded by 128 rows."""
    from perfkit.engine.kernels import gemm, moe

    hw = catalog.hardware_spec("nvidia_h200_hgx")
    peak, free = hw.peak_flops_per_s["bf16"], 1e30  # HBM bytes/s at which no read costs anything
    lowest = {name: low for name, (low, _) in moe.PARAMS.items()}
    experts = {**lowest, "plateau": 0.8, "pad_rows": 128.0, "weight_bw": 1.0, "overlap": 8.0}
    dense_gemm = {**{name: low for name, (low, _) in gemm.PARAMS.items()}, "plateau": 0.8, "bandwidth": 1.0,
                  "sharpness": 8.0, "k_split": 1e6}
    hidden, inter, topk, count = 4096, 1536, 8, 128

    def grouped(rows_per_expert):
        tokens = rows_per_expert * count / topk
        return moe.moe_seconds(experts, tokens, hidden, inter, topk, count, 1, 1, 2.0, peak, free, touched=1.0)

    def dense(rows_per_expert, share=1.0):  # one GEMM of every row against the same weights: the same FLOPs
        rows = rows_per_expert * count * share
        return float(gemm.gemm_seconds(dense_gemm, rows, moe.MATRICES * inter, hidden, peak, free, 2.0))

    assert float(grouped(128.0)) == pytest.approx(2 * dense(128.0), rel=1e-3)  # half efficiency at 128 rows
    per_flop = {rows: float(grouped(rows)) / rows for rows in (128.0, 1024.0)}
    assert per_flop[128.0] > per_flop[1024.0] > dense(1024.0) / 1024.0
    # half the FLOPs in grouped experts at 128 rows each (half of them: the time is linear in the experts at
    # fixed rows per expert), half in a dense GEMM: 1.5 times the dense time
    assert float(grouped(128.0)) / 2 + dense(128.0, 0.5) == pytest.approx(1.5 * dense(128.0), rel=1e-3)


# -- dtypes the chip lacks ----------------------------------------------------------------------------------


def test_fp8_on_a100_falls_back_and_says_so():
    # Ampere has no FP8 tensor cores: weights stored in fp8, computed in a wider format, and reported
    r = system(LLAMA8, "nvidia_a100_hgx", layers={"attention": {"dtype": "fp8"}, "feedforward": {"dtype": "fp8"}})
    notes = r["system"]["notes"]
    assert any("attention" in n and "fp8" in n for n in notes), notes
    assert any("feedforward" in n and "fp8" in n for n in notes), notes
    bf16 = system(LLAMA8, "nvidia_a100_hgx")
    assert r["memory"]["weight_memory_gb"] < bf16["memory"]["weight_memory_gb"]
    assert system(LLAMA8, "nvidia_h100_hgx", layers={"attention": {"dtype": "fp8"}})["system"]["notes"] == []


def test_fp32_on_tpu_v5e_is_an_error_naming_valid_dtypes():
    # hardware/google_tpu_v5e_pod.yaml publishes no fp32 peak and fp32 has no wider format to fall back to
    with pytest.raises(PerfkitError, match=r"'fp32'.*valid choices: fp16, bf16, fp8, fp8_block, int8") as info:
        system(LLAMA8, "google_tpu_v5e_pod", layers=all_layers(dtype="fp32"))
    assert info.value.field.endswith(".dtype")
