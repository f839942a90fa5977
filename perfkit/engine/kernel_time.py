"""Seconds of a layer's kernels: the fitted closed forms of :mod:`perfkit.engine.kernels`, looked up for one
chip and serving backend and gathered by dtype so that one call prices every configuration of a sweep.

A :class:`KernelTable` holds, for each family, every fitted parameter as an array over
:data:`perfkit.dtypes.DTYPES` (the variant each dtype runs, after the fallbacks of
:meth:`perfkit.specs.KernelModels.params`), and the peak FLOP/s each variant computes at. A chip without
fitted tables gets its table from :meth:`perfkit.specs.HardwareSpec.kernel_models` (sourced figures or the
priors of its ``efficiency`` block): the same closed forms, never a second formula.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY, BYTES_ARRAY, DTYPES
from ..specs import HardwareSpec, ModelSpec
from .costs import LayerCost
from .kernels import gemm

#: The kernel variant each engine dtype runs: fp32 layers use the 16-bit kernels' shape at the fp32 peak.
VARIANT = {"fp32": "bf16", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8": "int8", "fp4": "fp4",
           "int4": "int4"}


class KernelTable:
    """Fitted parameters of one chip and backend, as arrays over ``DTYPES`` (NaN where nothing fits)."""

    def __init__(self, hw: HardwareSpec, backend: str, block_fp8: bool):
        models = hw.kernel_models()
        self.gemm, self.gemm_peak = self._family(hw, models, backend, "gemm", gemm, block_fp8)

    @staticmethod
    def _family(hw, models, backend, family, module, block_fp8):
        values = {name: np.full(len(DTYPES), np.nan) for name in module.PARAMS}
        peak = np.full(len(DTYPES), np.nan)
        for i, dtype in enumerate(DTYPES):
            variant = "fp8_block" if (dtype == "fp8" and block_fp8) else VARIANT[dtype]
            found = models.resolve(backend, family, variant, hw)
            if found is None:
                continue
            resolved, params = found
            for name in values:
                values[name][i] = params[name]
            compute = gemm.COMPUTE.get(resolved, resolved) if dtype != "fp32" else "fp32"
            peak[i] = hw.peak_flops_per_s.get(compute) or np.nan
        return values, peak


_TABLES: OrderedDict = OrderedDict()
_CAPACITY = 64  # a fit builds a few hardware candidates per evaluation: keep the recent ones


def table(hw: HardwareSpec, backend: str, model: ModelSpec) -> KernelTable:
    """The (cached) :class:`KernelTable` of ``hw`` for ``backend`` and the checkpoint format of ``model``
    (fp8 checkpoints quantized in 128 x 128 blocks, DeepSeek's and Qwen3's, run the block-scaled kernels)."""
    key = (id(hw), backend, model.weight_quantization == "fp8")
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is hw:
        _TABLES.move_to_end(key)
        return hit[1]
    made = KernelTable(hw, backend, key[2])
    _TABLES[key] = (hw, made)
    if len(_TABLES) > _CAPACITY:
        _TABLES.popitem(last=False)
    return made


def gemm_time(kt: KernelTable, hw: HardwareSpec, cost: LayerCost, dtype) -> np.ndarray:
    """Seconds of a layer instance's weight GEMMs (``cost.gemms``) in ``dtype`` (an index array)."""
    params = {name: values[dtype] for name, values in kt.gemm.items()}
    peak, wbytes, abytes = kt.gemm_peak[dtype], BYTES_ARRAY[dtype], ACTIVATION_BYTES_ARRAY[dtype]
    total = 0.0
    for g in cost.gemms:
        total = total + g.count * gemm.gemm_seconds(params, g.m, g.n, g.k, peak, hw.hbm_bytes_per_s, wbytes, abytes)
    return total
