"""Kernel models: closed forms of measured kernel timings, fitted per chip and evaluated by the engine.

Each module declares ``PARAMS`` (its fitted parameters and their physical bounds) and ``*_seconds``
functions that broadcast over arrays of configurations. ``FAMILIES`` maps a family name (the key under a
hardware YAML's ``kernels: <backend>:``) to its module.
"""
from . import moe

FAMILIES = {"moe": moe}
