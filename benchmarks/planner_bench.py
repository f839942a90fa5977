"""Speed of the planner: layouts x rates evaluated per second (one core). Run:
PYTHONPATH=. python3 benchmarks/planner_bench.py"""
from __future__ import annotations

import time

import numpy as np

import perfkit
from perfkit.planner import core

CASES = [
    ("meta-llama/Llama-3.3-70B-Instruct", "nvidia_h200_hgx", 8, 1024, 256, 1000, 40),
    ("deepseek-ai/DeepSeek-V3", "nvidia_gb300_nvl72", 64, 2048, 512, 2000, 50),
]


#: ~10,000 layouts (DeepSeek-V3 on a GB300 NVL72: TP x EP x PP x dtypes x KV dtypes x caps) x 20 rates.
BIG = {"model_id": "deepseek-ai/DeepSeek-V3", "hardware_config": "nvidia_gb300_nvl72", "input_seq": 2048,
       "output_seq": 512, "serving_mode": "continuous", "batch_size": [16, 32, 64, 128, 256, 512, 1024],
       "pipeline_parallel": [1, 2, 4, 8, 16], "kv_dtype": ["bf16", "fp8"],
       "layers": {"all": {"tensor_parallel": [1, 2, 4, 8, 16, 32, 64, 128], "dtype": ["fp8", "fp4"]},
                  "feedforward": {"expert_parallel": [1, 2, 4, 8, 16, 32, 64, 128, 256]}},
       "arrival_rate_qps": list(np.geomspace(0.1, 100, 20))}


def main() -> None:
    perfkit.sweep({**BIG, "arrival_rate_qps": [1.0]})  # load the specs once
    t0, c0 = time.perf_counter(), time.process_time()
    df = perfkit.sweep(BIG)
    print(f"one sweep: {len(df) // 20} layouts x 20 rates = {len(df)} rows in {time.perf_counter() - t0:.2f} s "
          f"({time.process_time() - c0:.2f} s CPU)")
    for model, hw, chips, isl, osl, ttft, tpot in CASES:
        m, h = perfkit.catalog.model_spec(model), perfkit.catalog.hardware_spec(hw)
        grids = list(core._grids(m, h, chips, {"model_id": model, "hardware_config": hw, "input_seq": isl,
                                              "output_seq": osl, "serving_mode": "continuous"},
                                 None, None, core.RUNNING_CAPS))
        layouts = int((core._table(grids, [1.0])["num_chips"] == chips).sum())
        t0, c0 = time.perf_counter(), time.process_time()
        p = perfkit.plan(model, hw, chips, isl, osl, ttft_p99_ms=ttft, tpot_p99_ms=tpot)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{model} on {chips} x {hw}: {layouts} layouts x {len(core.RATES)} rates "
              f"(+ {core.REFINED} x {core.FINE_RATES} refinements) in {seconds:.2f} s ({cpu:.2f} s CPU); "
              f"{len(p.layouts)} meet the SLOs")
    from perfkit.planner import disagg

    for model, hw, chips, isl, osl, ttft, tpot in CASES:
        m, h = perfkit.catalog.model_spec(model), perfkit.catalog.hardware_spec(hw)
        dtypes, kv_dtypes = core._dtypes(m, h, None, None)
        n = len(disagg.candidates(m, h, chips, dtypes, kv_dtypes, core.RUNNING_CAPS))
        t0, c0 = time.perf_counter(), time.process_time()
        p = perfkit.plan(model, hw, chips, isl, osl, ttft_p99_ms=ttft, tpot_p99_ms=tpot, disaggregated=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"disaggregated {model} on {chips} x {hw}: {n} disaggregated layouts x {len(core.RATES)} rates "
              f"in {seconds:.2f} s ({cpu:.2f} s CPU), aggregated included; {len(p.disaggregated)} meet the SLOs")


if __name__ == "__main__":
    main()
