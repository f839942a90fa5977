"""Sweep speed of one checkout, in CPU seconds: for before/after comparisons on a shared machine.

    PYTHONPATH=<checkout> taskset -c 1 python3 benchmarks/ab_speed.py <checkout>

Times the 1.36M-row grid of ``sweep_bench.py`` five times with ``time.process_time()`` (engine chunks only,
then into a DataFrame) and prints the best of each. Run it for the two checkouts in turn, several times.
"""
from __future__ import annotations

import sys
import time


def main(checkout: str) -> None:
    sys.path.insert(0, checkout + "/benchmarks")
    from sweep_bench import GRID

    import perfkit
    from perfkit.sweeps.core import _evaluated, _plan

    if not perfkit.__file__.startswith(checkout):
        raise SystemExit(f"perfkit imported from {perfkit.__file__}, not {checkout}: set PYTHONPATH={checkout}")
    plan = _plan(GRID)
    engine = frame = float("inf")
    for _ in range(5):
        start = time.process_time()
        n = sum(c["valid"].size for _, c in _evaluated(plan, 262144, False))
        engine = min(engine, time.process_time() - start)
        start = time.process_time()
        n = len(perfkit.sweep(GRID))
        frame = min(frame, time.process_time() - start)
    print(checkout, "engine", round(n / engine / 1e6, 2), "frame", round(n / frame / 1e6, 2), "M/s cpu")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
