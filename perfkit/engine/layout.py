"""Parallel layouts: which degrees each layer type accepts, how many chips it spans, and what cannot run.

A configuration is a mapping of request paths (``"layers.attention.tensor_parallel"``, ``"batch_size"``,
...) to numpy arrays that broadcast together; dtypes are indices into :data:`perfkit.dtypes.DTYPES`. Every
check here is vectorized: it returns a bit mask per configuration, and :func:`reasons` turns masks into
sentences only for the rows that need one.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from ..dtypes import DTYPES
from ..specs import HardwareSpec, ModelSpec
from .elementwise import maximum, where

LAYER_TYPES = ("attention", "feedforward", "norm", "embedding")
DEGREES = ("tensor_parallel", "context_parallel", "sequence_parallel", "expert_parallel", "data_parallel")


def available_parallelism(model: ModelSpec, layer_type: str) -> tuple[str, ...]:
    """The degrees a layer type accepts above 1 (exactly what ``GET /api/layers`` lists)."""
    if layer_type == "attention":
        return ("tensor_parallel", "context_parallel", "data_parallel")
    if layer_type == "feedforward":
        extra = ("expert_parallel",) if model.is_moe else ()
        return ("tensor_parallel", "sequence_parallel", *extra)
    if layer_type == "norm":
        return ("sequence_parallel",)
    return ("tensor_parallel",)


def layer_chips(cfg, layer_type: str) -> np.ndarray:
    """Chips one copy of a layer type spans: the product of its degrees times the pipeline stages."""
    known = cfg.get(_SPAN + layer_type)
    if known is not None:
        return known
    return _span(cfg, layer_type)


def _span(cfg, layer_type: str):
    """:func:`layer_chips` computed from the degrees (never from a kept span)."""
    p = f"layers.{layer_type}."
    chips = cfg["pipeline_parallel"]
    for degree in DEGREES:
        chips = chips * cfg[p + degree]
    return chips


def replica_chips(cfg) -> np.ndarray:
    """Chips of one replica of the layout: the largest layer type's span (smaller ones are replicated to
    fill it)."""
    known = cfg.get(_SPAN + "replica")
    if known is not None:
        return known
    return reduce(maximum, [layer_chips(cfg, t) for t in LAYER_TYPES])


#: Keys under which :func:`with_spans` keeps the spans it computed (no request path starts with it).
_SPAN = "_span."
_SPAN_KEYS = tuple(_SPAN + t for t in LAYER_TYPES)


def with_spans(cfg) -> dict:
    """``cfg`` with every layer type's span and the replica's computed once (an evaluation asks for them
    dozens of times); the caller's mapping is left as it was."""
    out = dict(cfg)  # spans the caller's mapping already held are replaced, never read
    spans = [_span(cfg, t) for t in LAYER_TYPES]
    out.update(zip(_SPAN_KEYS, spans))
    out[_SPAN + "replica"] = reduce(maximum, spans)
    return out


def copies(cfg, layer_type: str) -> np.ndarray:
    """How many copies of a layer type one replica holds (its chips over the layer's span). The copies split
    the tokens between them: that is what replicating a layer is for."""
    return replica_chips(cfg) // layer_chips(cfg, layer_type)


def replicas(cfg) -> np.ndarray:
    """Whole copies of the layout (``replicas`` in the request; 1 where it is not given)."""
    return cfg.get("replicas", 1)


def num_chips(cfg) -> np.ndarray:
    """The deployment's chips: replicas x the chips of one replica."""
    return replicas(cfg) * replica_chips(cfg)


def num_nodes(hw: HardwareSpec, chips: np.ndarray) -> np.ndarray:
    return -(-chips // hw.chips_per_node)


# -- checks: one bit each ------------------------------------------------------------------------------------

ATTN_TP_HEADS = 1 << 0
ATTN_TP_KV = 1 << 1
FFN_TP = 1 << 2
FFN_EP = 1 << 3
CHIPS_DIVIDE = 1 << 4
MAX_CHIPS = 1 << 5
NO_SCALEOUT = 1 << 6
PP_LAYERS = 1 << 7
NO_DTYPE = 1 << 9
DOES_NOT_FIT = 1 << 8  # set by the system step once memory is known

#: Problems that make a configuration impossible to run (``DOES_NOT_FIT`` is reported, not fatal).
STRUCTURAL = ATTN_TP_HEADS | ATTN_TP_KV | FFN_TP | FFN_EP | CHIPS_DIVIDE | MAX_CHIPS | NO_SCALEOUT | PP_LAYERS | NO_DTYPE


def check(model: ModelSpec, hw: HardwareSpec, cfg) -> np.ndarray:
    """Bit mask of the structural problems of every configuration (0 = runs)."""
    tp_a = cfg["layers.attention.tensor_parallel"]
    tp_f = cfg["layers.feedforward.tensor_parallel"]
    code = where(model.num_heads % tp_a != 0, ATTN_TP_HEADS, 0)
    if not model.is_mla:
        kv = model.num_kv_heads
        code = code | where((kv % tp_a != 0) & (tp_a % kv != 0), ATTN_TP_KV, 0)
    for width in _ffn_widths(model):
        code = code | where(width % tp_f != 0, FFN_TP, 0)
    if model.is_moe:
        code = code | where(model.num_experts % cfg["layers.feedforward.expert_parallel"] != 0, FFN_EP, 0)
    spans = [layer_chips(cfg, layer_type) for layer_type in LAYER_TYPES]
    chips = replica_chips(cfg)
    for span in spans:
        code = code | where(chips % span != 0, CHIPS_DIVIDE, 0)
    if hw.max_chips is not None:
        code = code | where(replicas(cfg) * chips > hw.max_chips, MAX_CHIPS, 0)
    if hw.scaleout_bytes_per_s is None:  # replicas never talk to each other: only one replica must fit a node
        code = code | where(chips > hw.chips_per_node, NO_SCALEOUT, 0)
    code = code | where(cfg["pipeline_parallel"] > model.num_layers, PP_LAYERS, 0)
    peaks = hw.peak_by_dtype
    for layer_type in LAYER_TYPES:
        peak = peaks[cfg[f"layers.{layer_type}.dtype"]]
        code = code | where(peak != peak, NO_DTYPE, 0)  # NaN: the chip has no such format (np.isnan, faster on scalars)
    return code


def _ffn_widths(model: ModelSpec) -> tuple[int, ...]:
    widths = []
    if model.num_layers - model.num_moe_layers > 0:
        widths.append(model.intermediate_size)
    if model.is_moe:
        widths.append(model.moe_intermediate_size)
    return tuple(widths)


def valid_tensor_parallel(model: ModelSpec, layer_type: str, limit: int = 1024) -> list[int]:
    """Tensor-parallel degrees that divide the layer's heads or widths (up to ``limit``)."""
    if layer_type == "attention":
        ok = [t for t in range(1, limit + 1) if model.num_heads % t == 0]
        if not model.is_mla:
            kv = model.num_kv_heads
            ok = [t for t in ok if kv % t == 0 or t % kv == 0]
        return ok
    if layer_type == "feedforward":
        return [t for t in range(1, limit + 1) if all(w % t == 0 for w in _ffn_widths(model))]
    return list(range(1, limit + 1))


def reasons(model: ModelSpec, hw: HardwareSpec, code: int, row: dict) -> list[tuple[str, str]]:
    """``(field, sentence)`` for every problem in ``code``; ``row`` holds that configuration's scalars."""
    out = []
    tp_a = row["layers.attention.tensor_parallel"]
    tp_f = row["layers.feedforward.tensor_parallel"]
    chips = row["num_chips"]
    if code & ATTN_TP_HEADS or code & ATTN_TP_KV:
        out.append((
            "layers.attention.tensor_parallel",
            f"layers.attention.tensor_parallel={tp_a} does not split {model.name}'s "
            f"{model.num_heads} attention heads ({model.num_kv_heads} KV heads) evenly; valid choices: "
            + ", ".join(map(str, valid_tensor_parallel(model, "attention", model.num_heads))),
        ))
    if code & FFN_TP:
        widths = " and ".join(map(str, _ffn_widths(model)))
        out.append((
            "layers.feedforward.tensor_parallel",
            f"layers.feedforward.tensor_parallel={tp_f} does not divide the feed-forward width {widths}; "
            "valid choices: " + ", ".join(map(str, valid_tensor_parallel(model, "feedforward", 256))),
        ))
    if code & FFN_EP:
        ep = row["layers.feedforward.expert_parallel"]
        divisors = [d for d in range(1, model.num_experts + 1) if model.num_experts % d == 0]
        out.append((
            "layers.feedforward.expert_parallel",
            f"layers.feedforward.expert_parallel={ep} does not divide {model.num_experts} experts; "
            "valid choices: " + ", ".join(map(str, divisors)),
        ))
    if code & CHIPS_DIVIDE:
        spans = ", ".join(f"{t} {row['chips.' + t]}" for t in LAYER_TYPES)
        out.append((
            "layers",
            f"every layer type's chips must divide the system's {chips // row.get('replicas', 1)} chips"
            + (" of one replica" if row.get("replicas", 1) > 1 else "") + f", got {spans} "
            "(chips = tensor x context x sequence x expert x data parallel x pipeline stages)",
        ))
    if code & MAX_CHIPS:
        out.append((
            "layers",
            f"the layout needs {chips} chips but {hw.name} has at most {hw.max_chips}",
        ))
    if code & NO_SCALEOUT:
        out.append((
            "layers",
            f"one replica of the layout needs {chips // row.get('replicas', 1)} chips, more than one {hw.name} node of {hw.chips_per_node}, "
            "and the hardware file gives no scale-out network",
        ))
    if code & PP_LAYERS:
        out.append((
            "pipeline_parallel",
            f"pipeline_parallel={row['pipeline_parallel']} exceeds {model.name}'s {model.num_layers} layers; "
            f"valid choices: 1 to {model.num_layers}",
        ))
    if code & NO_DTYPE:
        runnable = [d for d in DTYPES if hw.compute_dtype(d)]
        for layer_type in LAYER_TYPES:
            dtype = row[f"layers.{layer_type}.dtype"]
            if not hw.compute_dtype(dtype):
                out.append((
                    f"layers.{layer_type}.dtype",
                    f"layers.{layer_type}.dtype={dtype!r}: {hw.name} ({hw.chip}) publishes no {dtype} peak "
                    f"and no wider format to run it in; valid choices: {', '.join(runnable)}",
                ))
    if code & DOES_NOT_FIT:
        out.append((
            "batch_size",
            f"needs {row['memory_per_chip_gb']:.1f} GB per chip but one {hw.chip} has "
            f"{hw.memory_bytes / 1e9:.0f} GB",
        ))
    return out
