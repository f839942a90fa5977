"""Kernel time models fitted to measured kernel tables: one closed form per kernel family.

Each module holds ``PARAMS`` (parameter name -> physical bounds, checked when a hardware file loads) and
``*_seconds(params, ...)`` functions of the kernel's shape, the chip's peak FLOP/s and HBM bandwidth, pure
numpy that broadcasts over arrays of configurations. The fitted values live in the hardware files'
``kernels:`` block (:class:`perfkit.specs.KernelModels`), written by ``perfkit calibrate --kernels``.
"""
from __future__ import annotations

from . import gemm, moe
from .gemm import gemm_seconds
from .moe import moe_seconds

#: family name (as in the ``kernels:`` block) -> the module holding its closed form and ``PARAMS``.
FAMILIES = {
    "gemm": gemm,
    "moe": moe,
}

__all__ = ["FAMILIES", "gemm", "gemm_seconds", "moe", "moe_seconds"]
