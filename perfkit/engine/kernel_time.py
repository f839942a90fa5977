"""Seconds of a layer's kernels: the fitted closed forms of :mod:`perfkit.engine.kernels`, looked up for one
chip and serving backend and gathered by dtype so that one call prices every configuration of a sweep.

A :class:`KernelTable` holds, for each family, every fitted parameter as an array over
:data:`perfkit.dtypes.DTYPES` (the variant each dtype runs, after the fallbacks of :data:`FALLBACK`), and
the peak FLOP/s each variant computes at. A chip without fitted tables runs its file's sourced block, or
the :func:`priors` of its ``efficiency`` block: the same closed forms, never a second formula.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY, BYTES_ARRAY, DTYPES
from ..specs import KERNEL_VARIANT_FALLBACK, HardwareSpec, KernelModels, ModelSpec
from .costs import AttentionCore, Experts, LayerCost
from .elementwise import minimum
from .timing import memory_seconds
from .kernels import FAMILIES as CLOSED_FORMS
from .kernels import attention, gemm, moe

#: The kernel variant each engine dtype runs (fp32 layers: the 16-bit kernels' shape at the fp32 peak), and
#: the variants tried next where a chip or a fit lacks one (always a wider or slower path).
VARIANT = {"fp32": "bf16", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "int8": "int8",
           "fp4": "fp4", "int4": "int4"}
FALLBACK = {**KERNEL_VARIANT_FALLBACK, "fp8_kv": ("bf16",), "mxfp4_w4a8": ("mxfp4_w4a16", "fp8", "bf16"),
            "mxfp4_w4a16": ("int4", "fp8_block", "fp8", "bf16")}
#: The format each variant's tensor-core work runs in (its peak): weight-only variants dequantize to 16 bits.
COMPUTE = {**gemm.COMPUTE, "mxfp4_w4a8": "fp8", "mxfp4_w4a16": "bf16"}
#: KV-cache dtype -> the attention kernels' variant (8-bit and narrower caches are stored in fp8).
KV_VARIANT = {"fp32": "bf16", "fp16": "bf16", "bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "int8": "fp8",
              "fp4": "fp8", "int4": "fp8"}
DECODE_FAMILIES = ("generation_attention", "generation_mla")


def _wanted(family: str, dtype: str, checkpoint: str | None) -> str:
    """The variant a layer of ``dtype`` asks for, given the checkpoint's quantization: fp8 checkpoints
    (DeepSeek's, Qwen3's) are quantized in 128 x 128 blocks, gpt-oss's MXFP4 experts run w4a8 kernels."""
    if dtype == "fp8" and checkpoint == "fp8":
        return "fp8_block"
    if family == "moe" and dtype == "fp4" and checkpoint == "mxfp4":
        return "mxfp4_w4a8"
    return VARIANT[dtype]


class KernelTable:
    """Fitted parameters of one chip and backend, each an array over ``DTYPES`` (the layer's dtype; for
    the attention families the KV-cache dtype, and for prefill attention over both: ``[layer, kv]``), with
    the peak FLOP/s each entry's variant computes at (NaN where nothing fits)."""

    def __init__(self, hw: HardwareSpec, backend: str, checkpoint: str | None):
        models = kernel_models(hw)
        self.status = models.status
        for family in ("gemm", "moe"):
            chosen = [_wanted(family, d, checkpoint) for d in DTYPES]
            params, peak = _gathered(hw, models, backend, family, chosen)
            peak[DTYPES.index("fp32")] = hw.peak_by_dtype[DTYPES.index("fp32")]  # fp32 layers: the fp32 peak
            setattr(self, family, (params, peak))
        kv = [KV_VARIANT[d] for d in DTYPES]
        for family in DECODE_FAMILIES + ("context_mla",):
            setattr(self, family, _gathered(hw, models, backend, family, kv, compute="bf16"))
        pairs = [attention.context_variant("fp8" if d in ("fp8", "fp8_block", "fp4") else "bf16", KV_VARIANT[k])
                 for d in DTYPES for k in DTYPES]
        params, peak = _gathered(hw, models, backend, "context_attention", pairs, compute="attention")
        shape = (len(DTYPES), len(DTYPES))
        self.context_attention = ({k: v.reshape(shape) for k, v in params.items()}, peak.reshape(shape))


def _gathered(hw, models: KernelModels, backend, family, chosen, compute=None):
    """Each parameter of ``family`` as an array over the ``chosen`` variants, and the peak each computes at:
    the nearest variant (:data:`FALLBACK`) that is fitted and whose format the chip has. ``compute``:
    ``None`` (the variant's own format), a format, or ``"attention"`` (fp8 for fp8 prefill kernels)."""
    names = CLOSED_FORMS[family].PARAMS
    values = {name: np.full(len(chosen), np.nan) for name in names}
    peak = np.full(len(chosen), np.nan)
    if not any(family in fits for fits in models.fits.values()):
        models = priors(hw)  # a family the chip's tables lack (L40S has no MLA table): its priors
    for i, wanted in enumerate(chosen):
        for variant in (wanted, *FALLBACK.get(wanted, ())):
            if compute == "attention":
                computes = "fp8" if variant in ("fp8", "fp8_kv") and hw.peak_flops_per_s.get("fp8") else "bf16"
            else:
                computes = compute or COMPUTE.get(variant, variant)
            params = models.exact(backend, family, variant)
            runs_in = hw.compute_dtype(computes)  # the format itself or a wider one the chip has
            if params is not None and runs_in is not None:
                for name in values:
                    values[name][i] = params.get(name, np.nan)
                peak[i] = hw.peak_flops_per_s[runs_in]
                break
    return values, peak


def status(hw: HardwareSpec) -> str:
    """``fitted`` (the chip's own kernel tables), ``sourced`` (published microbenchmarks) or ``prior``."""
    return hw.kernels.status if hw.kernels is not None else "prior"


def kernel_models(hw: HardwareSpec) -> KernelModels:
    """The chip's kernel models: its file's ``kernels:`` block, else :func:`priors`."""
    return hw.kernels if hw.kernels is not None else priors(hw)


_TABLES: OrderedDict = OrderedDict()
_CAPACITY = 64  # a fit builds a few hardware candidates per evaluation: keep the recent ones


def table(hw: HardwareSpec, backend: str, model: ModelSpec) -> KernelTable:
    """The (cached) :class:`KernelTable` of ``hw`` for ``backend`` and the checkpoint format of ``model``
    (fp8 checkpoints quantized in 128 x 128 blocks, DeepSeek's and Qwen3's, run the block-scaled kernels)."""
    key = (id(hw), backend, model.weight_quantization)
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is hw:
        _TABLES.move_to_end(key)
        return hit[1]
    made = KernelTable(hw, backend, key[2])
    _TABLES[key] = (hw, made)
    if len(_TABLES) > _CAPACITY:
        _TABLES.popitem(last=False)
    return made


def gemm_time(kt: KernelTable, hw: HardwareSpec, cost: LayerCost, dtype, fixed: float = 1.0) -> np.ndarray:
    """Seconds of a layer instance's weight GEMMs (``cost.gemms``) in ``dtype`` (an index array)."""
    table, peaks = kt.gemm
    params = _params(table, dtype, fixed)
    params["l2_share"] = 0.0  # a served model's layers evict each other's weights from the L2 cache
    peak, wbytes, abytes = peaks[dtype], BYTES_ARRAY[dtype], ACTIVATION_BYTES_ARRAY[dtype]
    total, rows = 0.0, {}
    for g in cost.gemms:
        if id(g.m) not in rows:  # a layer's GEMMs share their rows: their row-only cost is computed once
            rows[id(g.m)] = gemm.row_seconds(params, g.m)
        total = total + g.count * gemm.gemm_seconds(params, g.m, g.n, g.k, peak, hw.hbm_bytes_per_s, wbytes, abytes,
                                                    rows[id(g.m)])
    return total


def core_time(kt: KernelTable, hw: HardwareSpec, model: ModelSpec, core: AttentionCore, dtype,
              fixed: float = 1.0) -> np.ndarray:
    """Seconds of the attention kernel proper of one layer instance (``dtype``: the attention layer's)."""
    kv = core.kv_dtype
    if core.prefill:
        if core.mla:
            family, at = kt.context_mla, kv
        else:
            family, at = kt.context_attention, (dtype, kv)
    else:
        family, at = (kt.generation_mla if core.mla else kt.generation_attention), kv
    table, peaks = family
    params = _params(table, at, fixed)
    peak, hbm = peaks[at], hw.hbm_bytes_per_s
    if core.mla and core.prefill:
        qk = model.qk_nope_head_dim + model.qk_rope_head_dim
        return core.ranks * attention.context_mla_seconds(params, core.batch, core.new, core.heads, qk,
                                                          model.v_head_dim, peak, hbm)
    if core.mla:
        return attention.generation_mla_seconds(params, core.batch, core.context, core.heads, model.kv_lora_rank,
                                                model.qk_rope_head_dim, BYTES_ARRAY[kv], peak, hbm)
    total = 0.0
    for fraction, window in model.window_fractions:
        if core.prefill:  # each context-parallel rank attends its share of the pairs
            t = core.ranks * attention.context_attention_seconds(
                params, core.batch, core.new, core.heads, core.kv_heads, core.head_dim, window, peak, hbm,
                minimum(BYTES_ARRAY[kv], 2.0))
        else:
            t = attention.generation_attention_seconds(params, core.batch, core.context, core.heads, core.kv_heads,
                                                       core.head_dim, window, BYTES_ARRAY[kv], peak, hbm)
        total = total + fraction * t
    return total


def experts_time(kt: KernelTable, hw: HardwareSpec, experts: Experts, dtype, fixed: float = 1.0) -> np.ndarray:
    """Seconds of one mixture-of-experts layer's routed experts on one chip, in ``share`` of the layers:
    routing as the engine expects it (an expert receives rows with chance ``1 - (1 - topk/E)^tokens``) and
    every weight from HBM (a served model's layers evict each other from the L2 cache)."""
    table, peaks = kt.moe
    params = _params(table, dtype, fixed)
    params["cache_bytes"] = 0.0
    touched = 1.0 - (1.0 - experts.topk / experts.experts) ** experts.tokens
    seconds = moe.moe_seconds(params, experts.tokens, experts.hidden, experts.inter, experts.topk,
                              experts.experts, experts.tp, experts.ep, BYTES_ARRAY[dtype], peaks[dtype],
                              hw.hbm_bytes_per_s, touched)
    return experts.share * seconds


def roofline(kt: KernelTable, hw: HardwareSpec, cost: LayerCost, dtype):
    """The compute and memory seconds of a layer instance at the GEMM plateau and the chip's achieved
    bandwidth: the parts that name a pass's bottleneck (the kernels' own time is :func:`busy_seconds`)."""
    table, peaks = kt.gemm
    return cost.flops / (peaks[dtype] * table["plateau"][dtype]), memory_seconds(hw, cost)


def has_kernels(cost: LayerCost) -> bool:
    return bool(cost.gemms) or cost.core is not None or cost.experts is not None


#: The per-call fixed costs of the closed forms: what a microbenchmark loop pays per call beyond the work
#: (launch, prologue, routing set-up), part of which a captured CUDA graph does not pay again.
FIXED = ("launch_s", "fallback_launch_s", "fixed_s", "fixed_per_hidden_s")


def busy_seconds(kt: KernelTable, hw: HardwareSpec, model: ModelSpec, cost: LayerCost, dtype, fixed: float = 1.0):
    """Seconds the kernels of one layer instance keep the chip busy (collectives apart), each kernel's
    fixed per-call cost (:data:`FIXED`) scaled by ``fixed`` (a decode step's graph replay pays a share)."""
    busy = gemm_time(kt, hw, cost, dtype, fixed)
    if cost.core is not None:
        busy = busy + core_time(kt, hw, model, cost.core, dtype, fixed)
    if cost.experts is not None:
        busy = busy + experts_time(kt, hw, cost.experts, dtype, fixed)
    return busy


def _params(table: dict, at, fixed: float) -> dict:
    """One family's parameters gathered at ``at`` (dtype indices), fixed costs scaled by ``fixed``."""
    out = {name: values[at] for name, values in table.items()}
    if fixed != 1.0:
        for name in FIXED:
            if name in out:
                out[name] = out[name] * fixed
    return out


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


#: How :func:`priors` sets each kind of parameter from a chip's ``efficiency`` block: rates at ``matmul`` of
#: peak, bandwidths at ``hbm``, the GEMMs' padding at ``matmul_half_tokens`` rows (``expert_half_tokens``
#: per active expert), joins of compute and memory as their maximum, and no fixed or per-item costs.
_AT_MATMUL = ("plateau", "compute", "fallback_compute")
_AT_HBM = ("bandwidth", "hbm", "weight_bw")
_AT_UPPER = ("sharpness", "overlap", "max_group", "split_tokens", "k_split")


def priors(hw: HardwareSpec) -> KernelModels:
    """Kernel models for a chip whose file has no ``kernels:`` block: the closed forms at the roofline of
    its ``efficiency`` priors (every variant alike: the dtypes differ by their peaks)."""
    e = hw.efficiency
    families = {}
    for family, module in CLOSED_FORMS.items():
        params = {}
        for name, (low, high) in module.PARAMS.items():
            if name in _AT_MATMUL:
                params[name] = e.matmul
            elif name in _AT_HBM:
                params[name] = e.hbm
            elif name in ("m_half", "pad_rows"):
                params[name] = e.expert_half_tokens if family == "moe" else e.matmul_half_tokens
            elif name in _AT_UPPER:
                params[name] = high
            else:
                params[name] = low
        families[family] = params
    variants = (*VARIANT.values(), "fp8_block", "fp8_kv", "mxfp4_w4a8", "mxfp4_w4a16")
    return KernelModels(fits={"prior": {f: {v: p for v in variants} for f, p in families.items()}},
                        source="priors of the efficiency block (no measured kernel tables)", status="prior")
