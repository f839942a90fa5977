"""Kernel-level calibration: fit the closed forms of :mod:`perfkit.engine.kernels` to measured kernel tables."""
from . import attention

#: family module -> the kernel families it fits.
FAMILIES = {family: attention for family in attention.TABLES}
