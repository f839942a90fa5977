"""Which layout serves best: a sweep over TP / EP / DP / PP / replicas for three models on 8 and 16 H200s.

    python3 benchmarks/layout_ranking.py            # prints the markdown tables quoted in RESULTS.md

Every layout whose attention and feed-forward span the same chips (attention data parallel = expert
parallel for MoE models), times the replicas that fill 8 or 16 GPUs, serving a closed loop of 256
concurrent requests of 2,048 prompt and 512 output tokens (``serving_mode: continuous``, the generic
serving profile). One ``perfkit.sweep`` call over the list of requests; rows that do not fit, and layouts
whose mean TTFT passes 3 s (they buy throughput with a queue for KV-cache slots), are dropped.
"""
from __future__ import annotations

import itertools

import perfkit

MODELS = ("meta-llama/Llama-3.1-70B", "Qwen/Qwen3-235B-A22B", "deepseek-ai/DeepSeek-V3")
WORKLOAD = {"hardware_config": "nvidia_h200_hgx", "batch_size": 256, "input_seq": 2048, "output_seq": 512,
            "serving_mode": "continuous"}
DEGREES = (1, 2, 4, 8, 16)
MAX_TTFT_MS = 3000.0


def requests(model_id: str, chips: int) -> list[dict]:
    moe = perfkit.catalog.model_spec(model_id).is_moe
    out = []
    for tp, ep, pp, replicas in itertools.product(DEGREES, DEGREES if moe else (1,), (1, 2, 4), DEGREES):
        if tp * ep * pp * replicas != chips:
            continue
        feedforward = {"tensor_parallel": tp, **({"expert_parallel": ep} if moe else {})}
        out.append({"model_id": model_id, **WORKLOAD, "pipeline_parallel": pp, "replicas": replicas,
                    "layers": {"attention": {"tensor_parallel": tp, "data_parallel": ep},
                               "feedforward": feedforward, "embedding": {"tensor_parallel": tp}}})
    return out


def ranking(model_id: str, chips: int, top: int = 6):
    df = perfkit.sweep(requests(model_id, chips))
    df = df[df["valid"] & (df["ttft_ms"] <= MAX_TTFT_MS)].copy()
    df["tokens_s_per_chip"] = df["throughput_tokens_s"] / df["num_chips"]
    columns = {"layers.attention.tensor_parallel": "TP", "layers.attention.data_parallel": "DP=EP",
               "pipeline_parallel": "PP", "replicas": "replicas"}
    df = df.rename(columns=columns)
    for name in columns.values():  # a setting with one value in every request is not a column
        if name not in df:
            df[name] = 1
    keep = [*columns.values(), "ttft_ms", "tpot_ms", "tokens_s_per_chip", "memory_per_chip_gb", "bottleneck"]
    return df.sort_values("tokens_s_per_chip", ascending=False)[keep].head(top)


def main() -> None:
    for model_id in MODELS:
        for chips in (8, 16):
            table = ranking(model_id, chips)
            print(f"\n**{model_id}, {chips} x H200** (by output tokens/s per chip)\n")
            print("| " + " | ".join(table.columns) + " |")
            print("|" + " --- |" * len(table.columns))
            for _, row in table.iterrows():
                cells = [f"{v:,.0f}" if isinstance(v, float) and k != "tpot_ms" else
                         f"{v:.1f}" if isinstance(v, float) else str(v) for k, v in row.items()]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
