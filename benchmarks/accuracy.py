"""Accuracy benchmark: refit the shipped parameters on the documented split and write ACCURACY.md.

    python3 benchmarks/accuracy.py               # = perfkit calibrate --in-place --report benchmarks/ACCURACY.md
    python3 benchmarks/accuracy.py --score-only  # = perfkit accuracy --report benchmarks/ACCURACY.md

The first form reproduces the parameters in hardware/*.yaml and perfkit/serving/*.yaml (the fit starts
from fixed priors) and the report; the second scores the parameters as they are.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from perfkit.cli import main

if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)  # the report names its command from the repo root
    command = "accuracy" if "--score-only" in sys.argv[1:] else "calibrate"
    in_place = ["--in-place"] if command == "calibrate" else []  # refit this checkout's files
    sys.exit(main([command, *in_place, "--report", "benchmarks/ACCURACY.md"]))
