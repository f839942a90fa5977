"""Fitting the kernel models (``perfkit.engine.kernels``) to measured kernel tables, one module per family."""
from . import moe

FAMILIES = {"moe": moe}
