"""The requests the demo, notebooks, panels and README figures start from (the seed's own examples first)."""
from __future__ import annotations

TINYLLAMA = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
LLAMA_70B = "meta-llama/Llama-3.3-70B-Instruct"

#: The seed's ``POST /config/layer-metrics`` example.
SEED_LAYER_REQUEST = {
    "model_id": TINYLLAMA, "hardware_config": "nvidia_gb200_single", "layer_type": "attention",
    "batch_size": 1, "seq_length": 2048, "dtype": "bf16",
    "tensor_parallel": 4, "context_parallel": 2, "sequence_parallel": 1,
}

#: The seed's ``POST /config/system-metrics`` example.
SEED_SYSTEM_REQUEST = {
    "model_id": TINYLLAMA, "hardware_config": "nvidia_gb200_single",
    "batch_size": 1, "input_seq": 2048, "output_seq": 128,
    "layers": {
        "attention": {"tensor_parallel": 4, "context_parallel": 2, "sequence_parallel": 1, "dtype": "bf16"},
        "feedforward": {"tensor_parallel": 8, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
        "norm": {"tensor_parallel": 1, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
        "embedding": {"tensor_parallel": 1, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"},
    },
}


def tensor_parallel(tp: int, dtype: str = "bf16") -> dict:
    """``layers`` with the attention, feed-forward and embedding split ``tp`` ways (Megatron style)."""
    return {t: {"tensor_parallel": tp, "dtype": dtype} for t in ("attention", "feedforward", "embedding")}


#: The seed's comparison mode: a small model on one GB200 tray against a 70B model on an NVL72 rack.
SEED_COMPARISON = {
    "A": SEED_SYSTEM_REQUEST,
    "B": {"model_id": LLAMA_70B, "hardware_config": "nvidia_nvl72_rack", "batch_size": 1, "input_seq": 2048,
          "output_seq": 128, "layers": tensor_parallel(8)},
}


def parallelism_variants(model_id: str = LLAMA_70B, hardware: str = "nvidia_h100_hgx", batch_size: int = 32,
                         input_seq: int = 4096, output_seq: int = 512) -> dict[str, dict]:
    """One model on one system split five ways: TP=2, 4 and 8, TP=4 with two pipeline stages, TP=8 in fp8."""
    base = {"model_id": model_id, "hardware_config": hardware, "batch_size": batch_size,
            "input_seq": input_seq, "output_seq": output_seq}
    return {
        "TP2": {**base, "layers": tensor_parallel(2)},
        "TP4": {**base, "layers": tensor_parallel(4)},
        "TP8": {**base, "layers": tensor_parallel(8)},
        "TP4 x PP2": {**base, "layers": tensor_parallel(4), "pipeline_parallel": 2},
        "TP8 fp8": {**base, "layers": tensor_parallel(8, "fp8"), "kv_dtype": "fp8"},
    }


#: The sweep of notebook 02 and of the README's Pareto picture.
SWEEP_GRID = {
    "model_id": "meta-llama/Llama-3.1-70B",
    "hardware_config": ["nvidia_h100_hgx", "nvidia_h200_hgx", "nvidia_b200_hgx"],
    "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "input_seq": [1024, 4096],
    "output_seq": 256,
    "layers": {"all": {"tensor_parallel": [1, 2, 4, 8], "dtype": ["bf16", "fp8"]}},
}
SWEEP_TITLE = "Llama-3.1-70B on H100, H200 and B200 servers"

#: A disaggregated configuration (README, "Disaggregated serving"): Llama-3.1-8B on one H100 server, two
#: single-GPU prefill replicas and a TP-2 decode pool of 64 requests in flight.
DISAGGREGATED = {
    "model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "input_seq": 2048,
    "output_seq": 256,
    "disaggregated": {
        "prefill": {"replicas": 2, "batch_size": 2, "layers": {"attention": {"tensor_parallel": 1}}},
        "decode": {"replicas": 1, "batch_size": 64,
                   "layers": {t: {"tensor_parallel": 2} for t in ("attention", "feedforward", "embedding")}},
    },
}
#: The same four GPUs aggregated (two TP-2 replicas of the same 64 requests) against disaggregated.
AGG_VS_DISAGG = {
    "aggregated": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "batch_size": 64,
                   "input_seq": 2048, "output_seq": 256, "replicas": 2,
                   "layers": {t: {"tensor_parallel": 2} for t in ("attention", "feedforward", "embedding")}},
    "disaggregated": DISAGGREGATED,
}
