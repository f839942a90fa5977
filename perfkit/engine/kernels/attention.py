"""Attention kernel times: prefill (causal flash attention) and decode (KV-cache reads), dense and MLA.

Closed forms fitted per (system, backend, variant) to measured kernel tables (perfkit.calibration.kernels.
attention); every argument broadcasts, so the engine evaluates them on arrays of configurations. Heads are
those on one chip; times are seconds per kernel call (one layer).

Prefill runs tiles: each query row of a (sequence, head) processes the keys it attends to plus the part of
the diagonal tile it wastes (``key_pad`` keys), and the query rows are padded to whole tiles (``query_pad``).
A sliding window wastes an edge tile at both ends. Those padded pairs cost ``4 * head_dim`` FLOPs each
(Q K^T and P V) plus ``pair_flops`` FLOP-equivalents of softmax and masking at an achieved rate that rises with
the parallel work (query rows x heads) to a plateau, on top of reading Q, K, V and writing O once and a
fixed per-call cost and a cost per (sequence, head) tile.

Decode reads each sequence's cached K and V (``2 * kv_heads * head_dim`` elements per token; the grouped
kernel reads at least ``context_pad`` tokens, whole KV pages) at the plateau bandwidth, slowed by
``1 + half_streams / streams`` where the (sequence, KV head, split-k chunk) streams it spreads over the chip are
too few to fill it, after a fixed latency worth ``half_bytes`` at the plateau (so small reads reach half of it at
``half_bytes``); the time never falls as the context or the batch grows. It does ``4 * heads * head_dim`` FLOPs per cached token plus a cost per (sequence, query head) (softmax
and output), with their own rates where the per-head kernel runs (one query head per KV head, MHA, or more
than the grouped kernel serves, ``max_group``), and pays a fixed per-call cost, a per-sequence cost and, once
contexts are split into chunks, the reduction of the partial results.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..elementwise import as_float, minimum, where

#: One fitted prefill curve (context_attention, context_mla): names and physical bounds.
PREFILL_PARAMS: dict[str, tuple[float, float]] = {
    "launch_s": (0.0, 1e-3),            # fixed cost per call, s
    "plateau": (0.02, 1.0),             # fraction of peak FLOP/s large prefills reach
    "half_rows": (1.0, 1e8),            # query rows x heads at which the rate is half the plateau
    "query_pad": (0.0, 512.0),          # query rows a sequence's last tile pads to
    "key_pad": (0.0, 512.0),            # keys per query row of a wasted (partly masked) edge tile
    "pair_flops": (0.0, 4096.0),        # FLOP-equivalents per pair besides the products (softmax, masking)
    "tile_s": (0.0, 1e-5),              # cost per (sequence, head) work tile: its prologue and epilogue
    "hbm": (0.05, 1.0),                 # fraction of HBM bandwidth the Q/K/V/O traffic reaches
}
#: One fitted decode curve (generation_attention, generation_mla).
DECODE_PARAMS: dict[str, tuple[float, float]] = {
    "launch_s": (0.0, 1e-3),            # fixed cost per call, s
    "split_s": (0.0, 1e-4),             # the split-k reduction's cost once contexts are long enough to split
    "split_tokens": (16.0, 1e5),      # context per split-k chunk (where splitting starts)
    "sequence_s": (0.0, 1e-5),          # cost per sequence in the batch, s
    "hbm": (0.05, 1.0),                 # fraction of HBM bandwidth large KV reads reach
    "half_bytes": (1.0, 1e10),          # KV bytes per call at which the bandwidth is half of that
    "half_streams": (0.0, 1e4),         # (sequence, KV head, chunk) streams at which it is half again
    "context_pad": (0.0, 4096.0),       # fewest KV tokens a sequence's read costs
    "window_pad": (0.0, 4096.0),        # KV tokens read beyond a sliding window (whole pages at its edge)
    "compute": (0.005, 1.0),            # fraction of peak FLOP/s the score and value products reach
    "head_s": (0.0, 1e-6),              # cost per (sequence, query head): softmax and output of one head
    "max_group": (1.0, 1024.0),         # largest query heads per KV head the grouped kernel serves
    "fallback_launch_s": (0.0, 1e-3),   # fixed cost of the per-head kernel (MHA and larger groups)
    "fallback_compute": (0.001, 1.0),   # its fraction of peak FLOP/s
    "fallback_head_s": (0.0, 1e-6),     # its cost per (sequence, query head)
}
#: Every parameter name either curve uses, with its bounds (the union the YAML checks validate against).
PARAMS: dict[str, tuple[float, float]] = {**PREFILL_PARAMS, **DECODE_PARAMS}
#: Bytes per element of the K/V read and Q/O traffic by perfkit dtype name.
_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0}


def context_variant(attn_dtype: str, kv_dtype: str) -> str:
    """The fitted prefill curve for an attention and KV-cache dtype: ``bf16``, ``fp8`` (both fp8) or
    ``fp8_kv`` (bf16 attention over an fp8 cache)."""
    if attn_dtype == "fp8":
        return "fp8"
    return "fp8_kv" if kv_dtype == "fp8" else "bf16"


def attended_pairs(isl, window):
    """(query, key) pairs per sequence and head of causal prefill over ``isl`` new tokens, each query seeing
    itself and the keys before it, or only the last ``window`` keys (``window`` = 0: no window)."""
    isl = as_float(isl)
    window = as_float(window)
    seen = where(window > 0, minimum(isl, window), isl)  # the most keys any query sees
    return seen * isl - seen * (seen - 1.0) / 2.0  # the first ones see 1..seen keys, the rest seen each


def _prefill(params, batch, isl, heads, pairs, edges, flops_per_pair, io_bytes, peak_flops_per_s,
             hbm_bytes_per_s):
    p = params
    rows = batch * heads * (isl + p["query_pad"])
    padded = batch * heads * (pairs + (isl + p["query_pad"]) * p["key_pad"] * edges)
    rate = peak_flops_per_s * p["plateau"] * rows / (rows + p["half_rows"])
    return (p["launch_s"] + batch * heads * p["tile_s"] + padded * (flops_per_pair + p["pair_flops"]) / rate
            + io_bytes / (hbm_bytes_per_s * p["hbm"]))


def _decode(params, batch, tokens, kv_bytes_per_token, streams, heads, flops_per_head_token, paged,
            peak_flops_per_s, hbm_bytes_per_s):
    """``paged``: 1 where the grouped kernel runs, 0 where the per-head one does."""
    p = params
    pad = p["context_pad"] * paged
    tokens2, pad2 = tokens * tokens, pad * pad
    read_tokens = (tokens2 * tokens2 + pad2 * pad2) ** 0.25  # (t^4 + pad^4)^(1/4): whole pages
    per_sequence = kv_bytes_per_token * read_tokens  # bytes each sequence reads
    chunks = read_tokens / p["split_tokens"]  # split-k chunks of the tokens read
    # a read at the plateau bandwidth, slowed by (1 + half_streams / streams) where too few streams fill the
    # chip (streams = batch x streams x (1 + chunks)), plus a fixed latency worth half_bytes at the plateau:
    # batch x per_sequence x (1 + half_streams / streams) = batch x per_sequence + half_streams x per_stream,
    # with per_stream ~ t / (1 + t / split_tokens) rising with the tokens read t and free of the batch, so the
    # time never falls as either grows (the terms free of the batch are computed before it multiplies in)
    per_stream = per_sequence / (streams * (1.0 + chunks))
    plateau = hbm_bytes_per_s * p["hbm"]
    fallback = paged < 0.5
    launch = where(fallback, p["fallback_launch_s"], p["launch_s"])
    head_s = where(fallback, p["fallback_head_s"], p["head_s"])
    rate = peak_flops_per_s * where(fallback, p["fallback_compute"], p["compute"])
    chunks4 = chunks * chunks
    chunks4 = chunks4 * chunks4
    split = p["split_s"] * chunks4 / (1.0 + chunks4)  # a smooth step at split_tokens
    once = launch + split + (p["half_streams"] * per_stream + p["half_bytes"]) / plateau
    each = per_sequence / plateau + p["sequence_s"] + heads * (head_s + tokens * flops_per_head_token / rate)
    return once + batch * each


def context_attention_seconds(params, batch, isl, heads, kv_heads, head_dim, window,
                              peak_flops_per_s, hbm_bytes_per_s, io_bytes_per_element=2.0):
    """Seconds of one prefill attention call: ``batch`` sequences of ``isl`` new tokens each (no cached
    prefix), ``heads`` query and ``kv_heads`` key/value heads of ``head_dim`` on this chip, sliding
    ``window`` (tokens, 0 = full), at ``peak_flops_per_s`` of the attention dtype and ``hbm_bytes_per_s``.

    >>> p = {"launch_s": 1e-5, "plateau": 0.5, "half_rows": 1e4, "query_pad": 64, "key_pad": 64,
    ...      "pair_flops": 100, "tile_s": 0.0, "hbm": 0.8}
    >>> t = context_attention_seconds(p, 1, [8192, 16384], 32, 8, 128, 0, 989e12, 3.35e12)  # quadratic
    >>> bool(t[1] > 3 * t[0])
    True
    """
    batch, isl = as_float(batch), as_float(isl)
    io = batch * isl * (2.0 * heads + 2.0 * kv_heads) * head_dim * io_bytes_per_element
    window = as_float(window)
    edges = 1.0 + ((window > 0) & (isl > window))  # a sliding window masks tiles at both of its ends
    return _prefill(params, batch, isl, heads, attended_pairs(isl, window), edges, 4.0 * head_dim, io,
                    peak_flops_per_s, hbm_bytes_per_s)


def generation_attention_seconds(params, batch, context, heads, kv_heads, head_dim, window,
                                 kv_bytes_per_element, peak_flops_per_s, hbm_bytes_per_s):
    """Seconds of one decode attention call: ``batch`` sequences each with one new token attending to
    ``context`` cached tokens (the last ``window`` of them when ``window`` > 0), ``heads`` / ``kv_heads`` of
    ``head_dim`` on this chip, a KV cache of ``kv_bytes_per_element`` (2 bf16, 1 fp8).

    >>> p = {"launch_s": 8e-6, "split_s": 0.0, "split_tokens": 512, "sequence_s": 0.0, "hbm": 0.9,
    ...      "half_bytes": 1e7, "half_streams": 1.0, "context_pad": 0.0, "window_pad": 0.0, "compute": 0.3,
    ...      "head_s": 0.0, "max_group": 32, "fallback_launch_s": 8e-6, "fallback_compute": 0.01,
    ...      "fallback_head_s": 0.0}
    >>> t = generation_attention_seconds(p, 8, 8192, 32, 8, 128, 0, [2, 1], 989e12, 3.35e12)
    >>> bool(t[1] < t[0])
    True
    """
    context, window = as_float(context), as_float(window)
    heads, kv_heads = as_float(heads), as_float(kv_heads)
    group = heads / kv_heads
    # the grouped kernel reads whole KV pages (also those a window's edge cuts); MHA and groups beyond
    # max_group run the per-head kernel, which reads token by token
    paged = ((group > 1.0) & (group <= params["max_group"])).astype(float)
    tokens = where(window > 0, minimum(context, window + params["window_pad"] * paged), context)
    return _decode(params, as_float(batch), tokens,
                   2.0 * kv_heads * head_dim * as_float(kv_bytes_per_element), kv_heads,
                   heads, 4.0 * head_dim, paged, peak_flops_per_s, hbm_bytes_per_s)


def context_mla_seconds(params, batch, isl, heads, qk_head_dim, v_head_dim, peak_flops_per_s,
                        hbm_bytes_per_s, io_bytes_per_element=2.0):
    """Seconds of one MLA prefill call: the expanded ``heads`` on this chip, each a causal attention with
    query/key width ``qk_head_dim`` (nope + rope, 192 for DeepSeek-V3) and value width ``v_head_dim`` (128),
    ``2 * (qk_head_dim + v_head_dim)`` FLOPs per (query, key) pair."""
    batch, isl = as_float(batch), as_float(isl)
    io = batch * isl * heads * (2.0 * qk_head_dim + 2.0 * v_head_dim) * io_bytes_per_element
    return _prefill(params, batch, isl, heads, attended_pairs(isl, 0), 1.0, 2.0 * (qk_head_dim + v_head_dim), io,
                    peak_flops_per_s, hbm_bytes_per_s)


def generation_mla_seconds(params, batch, context, heads, kv_lora_rank, qk_rope_head_dim,
                           kv_bytes_per_element, peak_flops_per_s, hbm_bytes_per_s):
    """Seconds of one MLA decode call with absorbed weights: each cached token is one latent vector of
    ``kv_lora_rank + qk_rope_head_dim`` elements (576 for DeepSeek-V3) shared by the ``heads`` on this chip,
    which score against it (``kv_lora_rank + qk_rope_head_dim``) and read values from it (``kv_lora_rank``):
    ``2 * heads * (2 * kv_lora_rank + qk_rope_head_dim)`` FLOPs per cached token."""
    latent = kv_lora_rank + qk_rope_head_dim
    return _decode(params, as_float(batch), as_float(context),
                   latent * as_float(kv_bytes_per_element), 1.0, as_float(heads),
                   2.0 * (latent + kv_lora_rank), 1.0, peak_flops_per_s, hbm_bytes_per_s)


@dataclass(frozen=True)
class Family:
    """One attention kernel family as :data:`perfkit.engine.kernels.FAMILIES` registers it: the parameters
    (and bounds) of its fitted curve and its closed form."""

    PARAMS: Mapping[str, tuple[float, float]]
    seconds: Callable


#: family name (as in the ``kernels:`` block) -> its curve's parameters and closed form.
FAMILIES = {
    "context_attention": Family(PREFILL_PARAMS, context_attention_seconds),
    "generation_attention": Family(DECODE_PARAMS, generation_attention_seconds),
    "context_mla": Family(PREFILL_PARAMS, context_mla_seconds),
    "generation_mla": Family(DECODE_PARAMS, generation_mla_seconds),
}
