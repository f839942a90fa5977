"""Fit the attention kernel families on every system and backend; write the params and the held-out errors.

    PYTHONPATH=$PWD python3 benchmarks/fit_kernel_attention.py
writes benchmarks/kernel_attention_params.json (system -> backend -> family -> variant -> params) and
benchmarks/kernel_attention_errors.csv (median / p90 of |predicted / measured - 1| per split).
"""
import json
import sys
from pathlib import Path

import pandas as pd

from perfkit.calibration.kernels import attention

HERE = Path(__file__).parent


def main(systems=tuple(attention.SYSTEMS), backends=("trtllm", "vllm")):
    params, summaries = {}, []
    for system in systems:
        for backend in backends:
            fitted = attention.fit(system, backend)
            if not fitted:
                continue
            params.setdefault(system, {})[backend] = fitted
            summary = attention.summary(attention.errors(system, backend, fitted))
            summaries.append(summary.assign(system=system, backend=backend))
            print(system, backend, "\n", summary[summary["split"] == "held-out"].round(3).to_string(), flush=True)
    (HERE / "kernel_attention_params.json").write_text(json.dumps(params, indent=1) + "\n")
    table = pd.concat(summaries, ignore_index=True)
    table.round(4).to_csv(HERE / "kernel_attention_errors.csv", index=False)
    return params, table


if __name__ == "__main__":
    main(*(a.split(",") for a in sys.argv[1:]))
