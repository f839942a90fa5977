"""Kernel time models fitted to measured kernel tables: one closed form per kernel family.

Each module holds ``PARAMS`` (parameter name -> physical bounds, checked when a hardware file loads) and
``*_seconds(params, ...)`` functions of the kernel's shape, the chip's peak FLOP/s and HBM bandwidth, pure
numpy that broadcasts over arrays of configurations. The fitted values live in the hardware files'
``kernels:`` block (:class:`perfkit.specs.KernelModels`), written by ``perfkit calibrate --kernels``.
"""
from __future__ import annotations

from . import attention, gemm, moe
from .attention import (context_attention_seconds, context_mla_seconds, generation_attention_seconds,
                        generation_mla_seconds)
from .gemm import gemm_seconds
from .moe import moe_seconds

#: family name (as in the ``kernels:`` block) -> the module holding its closed form and ``PARAMS``.
FAMILIES = {
    "gemm": gemm,
    **attention.FAMILIES,
    "moe": moe,
}

__all__ = ["FAMILIES", "attention", "context_attention_seconds", "context_mla_seconds", "gemm", "gemm_seconds",
           "generation_attention_seconds", "generation_mla_seconds", "moe", "moe_seconds"]
