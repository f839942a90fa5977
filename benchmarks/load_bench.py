"""Analytic open-loop percentiles (perfkit.engine.load) against the event-driven simulator (perfkit.simulate),
and the speed of both. Run: PYTHONPATH=. python3 benchmarks/load_bench.py [--requests N]"""
from __future__ import annotations

import argparse
import time

import pandas as pd

import perfkit
from perfkit.simulate.core import summary

CASES = {
    "llama70b-h200-tp8": {"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h200_hgx",
                          "batch_size": 256, "input_seq": 1024, "output_seq": 256, "serving_mode": "continuous",
                          "layers": {t: {"tensor_parallel": 8} for t in ("attention", "feedforward", "embedding")}},
    "llama8b-h100-tp1": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                         "batch_size": 128, "input_seq": 2048, "output_seq": 128, "serving_mode": "continuous"},
    "llama8b-h100-kv-bound": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                              "batch_size": 512, "input_seq": 512, "output_seq": 2048, "serving_mode": "continuous"},
}
LOADS = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95)
KEYS = ("ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99")


def compare(base: dict, loads=LOADS, n_requests: int = 4000, seed: int = 0) -> pd.DataFrame:
    capacity = perfkit.system_metrics({**base, "arrival_rate_qps": 1.0})["load"]["capacity_qps"]
    rows = []
    for u in loads:
        request = {**base, "arrival_rate_qps": u * capacity}
        analytic = perfkit.system_metrics(request)["load"]
        sim = summary(perfkit.simulate(request, n_requests=n_requests, seed=seed))
        row = {"load": u, "rate_qps": u * capacity}
        for k in KEYS:
            row[k + " analytic"] = analytic[k]
            row[k + " sim"] = sim[k]
            row[k + " err%"] = 100 * (analytic[k] / sim[k] - 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(df: pd.DataFrame) -> str:
    head = "| load | rate (req/s) | " + " | ".join(f"{k} analytic / sim (err)" for k in KEYS) + " |"
    lines = [head, "|" + " --- |" * (2 + len(KEYS))]
    for _, r in df.iterrows():
        cells = [f"{r[k + ' analytic']:.1f} / {r[k + ' sim']:.1f} ({r[k + ' err%']:+.0f}%)" for k in KEYS]
        lines.append(f"| {r['load']:.0%} | {r['rate_qps']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30000)
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    for name, base in CASES.items():
        print(f"\n{name}: {base['model_id']} on {base['hardware_config']}, input {base['input_seq']}, output "
              f"{base['output_seq']}, batch_size cap {base['batch_size']}\n")
        print(_markdown(compare(base, n_requests=args.requests)))
    base = CASES["llama70b-h200-tp8"]
    t0 = time.perf_counter()
    df = perfkit.sweep({**base, "arrival_rate_qps": [0.5 * i for i in range(1, 21)],
                        "batch_size": [16 * i for i in range(1, 51)]})
    analytic_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    perfkit.simulate({**base, "arrival_rate_qps": 8.0}, n_requests=args.requests)
    sim_s = time.perf_counter() - t0
    print(f"\nanalytic: {len(df)} configurations (50 running-sequence caps x 20 rates) in {analytic_s * 1e3:.0f} ms; "
          f"simulator: {args.requests} requests at one rate in {sim_s:.2f} s")


if __name__ == "__main__":
    main()
