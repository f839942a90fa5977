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
from ..specs import KERNEL_VARIANT_FALLBACK, HardwareSpec, KernelModels, ModelSpec
from .costs import LayerCost
from .kernels import gemm

#: The kernel variant each engine dtype runs: fp32 layers use the 16-bit kernels' shape at the fp32 peak.
VARIANT = {"fp32": "bf16", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8": "int8", "fp4": "fp4",
           "int4": "int4"}


class KernelTable:
    """Fitted parameters of one chip and backend, as arrays over ``DTYPES`` (NaN where nothing fits)."""

    def __init__(self, hw: HardwareSpec, backend: str, block_fp8: bool):
        models = kernel_models(hw)
        self.calibrated = hw.kernels is not None
        self.gemm, self.gemm_peak = _gathered(hw, models, backend, "gemm", gemm.PARAMS, block_fp8)


def _gathered(hw, models: KernelModels, backend, family, names, block_fp8):
    """Each parameter of ``family`` as an array over ``DTYPES``, and the peak each dtype's variant computes
    at: the nearest variant (``KERNEL_VARIANT_FALLBACK``) that is fitted and whose format the chip has."""
    values = {name: np.full(len(DTYPES), np.nan) for name in names}
    peak = np.full(len(DTYPES), np.nan)
    for i, dtype in enumerate(DTYPES):
        wanted = "fp8_block" if (dtype == "fp8" and block_fp8) else VARIANT[dtype]
        for variant in (wanted, *KERNEL_VARIANT_FALLBACK.get(wanted, ())):
            computes = "fp32" if dtype == "fp32" else gemm.COMPUTE.get(variant, variant)
            params = models.exact(backend, family, variant)
            if params is not None and hw.peak_flops_per_s.get(computes):
                for name in values:
                    values[name][i] = params[name]
                peak[i] = hw.peak_flops_per_s[computes]
                break
    return values, peak


def kernel_models(hw: HardwareSpec) -> KernelModels:
    """The chip's kernel models: its file's ``kernels:`` block, else priors from its ``efficiency`` block
    (every variant alike: the dtypes differ by their peaks)."""
    if hw.kernels is not None:
        return hw.kernels
    e = hw.efficiency
    families = {
        "gemm": {"plateau": e.matmul, "bandwidth": e.hbm, "m_half": e.matmul_half_tokens, "sharpness": 8.0,
                 "launch_s": 0.0},
    }
    variants = ("bf16", "fp16", "fp8", "int8", "fp4")
    return KernelModels(fits={"prior": {f: {v: p for v in variants} for f, p in families.items()}},
                        source="priors from the efficiency block (no measured kernel tables)")


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


def roofline(kt: KernelTable, hw: HardwareSpec, cost: LayerCost, dtype):
    """The compute and memory seconds of a layer instance at the GEMM plateau and the achieved bandwidth:
    the parts that name a pass's bottleneck (the kernels' own time is :func:`busy_seconds`)."""
    compute = cost.flops / (kt.gemm_peak[dtype] * kt.gemm["plateau"][dtype])
    memory = cost.hbm_bytes / (hw.hbm_bytes_per_s * hw.efficiency.hbm)
    return compute, memory


def has_kernels(cost: LayerCost) -> bool:
    return bool(cost.gemms) or cost.core is not None or cost.experts is not None


def busy_seconds(kt: KernelTable, hw: HardwareSpec, cost: LayerCost, dtype, prefill: bool):
    """Seconds the kernels of one layer instance keep the chip busy (collectives apart)."""
    return gemm_time(kt, hw, cost, dtype)


#: Kernels a layer instance launches besides its GEMMs, attention core, routed experts and collectives:
#: rotary embedding and the KV-cache write; the activation; the two norms; the lookup and the sampler.
ELEMENTWISE = {"attention": 2, "feedforward": 1, "norm": 2, "embedding": 2}
#: A routed-expert layer's kernels: top-k routing, permutation, two grouped GEMMs, un-permutation.
EXPERT_KERNELS = 5


def kernel_count(layer_type: str, cost: LayerCost):
    """Kernels one instance of ``layer_type`` launches (collectives of a group of one launch none)."""
    count = ELEMENTWISE[layer_type] + sum(g.count for g in cost.gemms)
    if cost.core is not None:
        count = count + 1
    if cost.experts is not None:
        count = count + EXPERT_KERNELS * cost.experts.share
    for c in cost.collectives:
        count = count + (c.group > 1)
    return count
