"""What one instance of each layer type costs on one chip for one pass of the model.

A *pass* processes ``new`` tokens for each of ``batch`` sequences whose attention sees ``context`` tokens
(prefill: ``new = context = prompt``; decode: ``new = 1``); ``batch`` is one replica's share of the
deployment's sequences. A layer type on fewer chips than the replica is replicated (``layout.copies``) and its
copies split the sequences between them (as attention ``data_parallel`` does; ``sequence_parallel`` and
``context_parallel`` split each sequence's tokens). Each figure is that of the busiest chip, so a share of
sequences is rounded up to whole sequences. Each function returns a :class:`LayerCost` of
arrays: bytes held per chip (weights, transient activations, KV cache), FLOPs per chip, HBM bytes moved per
chip, the collectives it issues, and the kernels that do the work (its weight GEMMs, the attention core,
the routed experts: what :mod:`perfkit.engine.kernel_time` prices). All arithmetic broadcasts over
configurations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..dtypes import ACTIVATION_BYTES_ARRAY, BYTES_ARRAY
from ..specs import ModelSpec
from .elementwise import maximum, minimum, ones_like, where, zeros_like
from .layout import copies


@dataclass
class Collective:
    """A collective over ``group`` chips whose ring spans ``span`` consecutive chips of the layout."""

    kind: str  # "allreduce", "allgather", "alltoall" or "ring" (n-1 point-to-point passes along a chain)
    bytes: np.ndarray  # payload per chip
    group: np.ndarray
    span: np.ndarray


@dataclass
class Gemm:
    """A weight GEMM: ``m`` rows (tokens on this chip) times a ``k x n`` weight shard, ``count`` times per
    layer instance (a fraction where dense and expert layers are averaged)."""

    m: np.ndarray
    n: float | np.ndarray
    k: float | np.ndarray
    count: float = 1.0


@dataclass
class AttentionCore:
    """The attention kernel proper (scores, softmax, values) of one chip: ``batch`` sequences with ``new``
    queries each over ``context`` keys, ``heads`` query heads and ``kv_heads`` cached heads of ``head_dim``
    on this chip; MLA layers (``mla``) attend in the latent space (see :func:`attention`)."""

    batch: np.ndarray
    new: np.ndarray
    context: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    head_dim: float
    kv_dtype: np.ndarray
    mla: bool
    prefill: bool
    ranks: np.ndarray  # context-parallel ranks splitting each sequence (``new`` and ``context`` are one's)


@dataclass
class Experts:
    """A mixture-of-experts layer's routed experts on one chip: ``tokens`` entering the expert-parallel group
    each pick ``topk`` of ``experts`` experts of width ``inter`` (split ``tp`` ways, spread ``ep`` ways), in
    ``share`` of the layers."""

    tokens: np.ndarray
    hidden: int
    inter: int
    topk: int
    experts: int
    tp: np.ndarray
    ep: np.ndarray
    share: float = 1.0


@dataclass
class LayerCost:
    weight_bytes: np.ndarray
    activation_bytes: np.ndarray
    kv_bytes: np.ndarray
    flops: np.ndarray
    hbm_bytes: np.ndarray
    collectives: list[Collective] = field(default_factory=list)
    expert_flops: np.ndarray | float = 0.0  # the part of ``flops`` in grouped expert GEMMs
    # the kernels that do the work, priced by the kernel models (kernel_time.busy_seconds)
    gemms: list[Gemm] = field(default_factory=list)
    core: AttentionCore | None = None
    experts: Experts | None = None


@dataclass
class Pass:
    """One forward pass: ``batch`` sequences, ``new`` tokens each, attending to ``context`` tokens, with
    ``cached`` tokens per sequence held in the KV cache."""

    batch: np.ndarray
    new: np.ndarray
    context: np.ndarray
    cached: np.ndarray
    prefill: bool


def _p(cfg, layer_type: str, degree: str) -> np.ndarray:
    return cfg[f"layers.{layer_type}.{degree}"]


def attended_tokens(new, context, window: int, prefill: bool):
    """Mean number of keys each new query attends to (causal, optionally within a sliding window)."""
    if prefill:
        full = context / 2.0
        if window:
            full = where(context <= window, full, window - window * window / (2.0 * context))
        return full
    return minimum(context, window) if window else context


def attention_ranks(cfg):
    """Attention copies in one replica that each hold their own sequences (data parallel x replicated
    copies): each caches and schedules its own."""
    return _p(cfg, "attention", "data_parallel") * copies(cfg, "attention")


def attention_sequences(cfg, batch):
    """Sequences on one chip's attention: the attention ranks split them (the busiest chip holds the
    rounded-up share)."""
    return np.ceil(batch / attention_ranks(cfg))


def attention(model: ModelSpec, cfg, p: Pass) -> LayerCost:
    tp, cp, dp = (_p(cfg, "attention", d) for d in ("tensor_parallel", "context_parallel", "data_parallel"))
    dtype = _p(cfg, "attention", "dtype")
    wbytes, abytes = BYTES_ARRAY[dtype], ACTIVATION_BYTES_ARRAY[dtype]
    kvbytes = BYTES_ARRAY[cfg["kv_dtype"]]
    d, heads = model.hidden_size, model.num_heads
    heads_chip = heads / tp
    if model.is_mla:
        qk_dim = model.qk_nope_head_dim + model.qk_rope_head_dim
        q_down = d * model.q_lora_rank if model.q_lora_rank else 0
        q_up = (model.q_lora_rank or d) * heads * qk_dim
        kv_down = d * (model.kv_lora_rank + model.qk_rope_head_dim)
        kv_up = model.kv_lora_rank * heads * (model.qk_nope_head_dim + model.v_head_dim)
        out = heads * model.v_head_dim * d
        params_chip = q_down + kv_down + (q_up + kv_up + out) / tp
        kv_width = np.full_like(heads_chip, model.kv_lora_rank + model.qk_rope_head_dim, dtype=float)
        shapes = [(model.q_lora_rank, d)] if model.q_lora_rank else []  # (n, k) of each projection
        shapes += [(model.kv_lora_rank + model.qk_rope_head_dim, d), (heads_chip * qk_dim, model.q_lora_rank or d),
                   (heads_chip * (model.qk_nope_head_dim + model.v_head_dim), model.kv_lora_rank),
                   (d, heads_chip * model.v_head_dim)]
        core_heads, core_kv_heads, core_dim = heads_chip, np.ones_like(heads_chip), float(qk_dim)
        # prefill runs the expanded heads; decode attends in the latent space (weight absorption)
        score_dim = qk_dim if p.prefill else model.kv_lora_rank + model.qk_rope_head_dim
        value_dim = model.v_head_dim if p.prefill else model.kv_lora_rank
        qkv_width = heads_chip * (qk_dim + model.v_head_dim) + kv_width
    else:
        hd = model.head_dim
        kv_heads_chip = maximum(model.num_kv_heads / tp, 1.0)  # replicated once tp exceeds them
        params_chip = 2 * d * heads_chip * hd + 2 * d * kv_heads_chip * hd
        kv_width = 2 * kv_heads_chip * hd
        shapes = [((heads_chip + 2 * kv_heads_chip) * hd, d), (d, heads_chip * hd)]
        core_heads, core_kv_heads, core_dim = heads_chip, kv_heads_chip, float(hd)
        score_dim = value_dim = hd
        qkv_width = 2 * heads_chip * hd + kv_width
    # Everything below is per sequence first (arrays over the attention's own axes), then times the
    # sequences on this chip, which depend on every layer's degrees: that keeps the big arrays few.
    seqs = attention_sequences(cfg, p.batch)
    new = p.new / cp  # context parallel splits each sequence
    attended = sum(f * attended_tokens(p.new, p.context, w, p.prefill) for f, w in model.window_fractions)
    cached = sum(f * (minimum(p.cached, w) if w else p.cached) for f, w in model.window_fractions)
    flops_per_seq = 2 * new * (params_chip + attended * heads_chip * (score_dim + value_dim))
    weights = params_chip * wbytes
    activations = seqs * (new * (d + qkv_width + heads_chip * value_dim) * abytes)
    kv_traffic = (new * kv_width * kvbytes) if p.prefill else attended / cp * kv_width * kvbytes
    tokens = seqs * new
    collectives = [Collective("allreduce", tokens * (d * abytes), tp, tp)]
    if p.prefill:  # ring attention passes each chip's K/V shard around the context-parallel group
        collectives.append(Collective("ring", tokens * (kv_width * kvbytes), cp, tp * cp))
    else:  # partial softmax results merged across the context-parallel group
        collectives.append(Collective("allreduce", seqs * (heads_chip * (value_dim + 2) * 4.0), cp, tp * cp))
    return LayerCost(
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=seqs * (cached / cp * kv_width * kvbytes),
        flops=seqs * flops_per_seq,
        hbm_bytes=weights + activations + seqs * kv_traffic,
        collectives=collectives,
        gemms=[Gemm(tokens, n, k) for n, k in shapes],
        core=AttentionCore(seqs, new, p.context / cp, core_heads, core_kv_heads, core_dim, cfg["kv_dtype"],
                           model.is_mla, p.prefill, cp),
    )


def feedforward(model: ModelSpec, cfg, p: Pass) -> LayerCost:
    """A layer's feed-forward, averaged over the model's dense and mixture-of-experts layers."""
    tp, sp = _p(cfg, "feedforward", "tensor_parallel"), _p(cfg, "feedforward", "sequence_parallel")
    ep = _p(cfg, "feedforward", "expert_parallel")
    dtype = _p(cfg, "feedforward", "dtype")
    wbytes, abytes = BYTES_ARRAY[dtype], ACTIVATION_BYTES_ARRAY[dtype]
    d = model.hidden_size
    # every copy of a replicated feed-forward serves its share of the sequences, sequence parallel splits them
    seqs = np.ceil(p.batch / copies(cfg, "feedforward"))
    tokens = seqs * p.new / sp
    n_moe = model.num_moe_layers
    n_dense = model.num_layers - n_moe
    parts = []
    # Dense layers, shared experts and the router are not split over the expert-parallel group: each of its
    # ep ranks holds them whole and runs them on its own share of the group's tokens.
    own = np.ceil(seqs / ep) * p.new / sp
    if n_dense:
        params = 3 * d * model.intermediate_size / tp
        width = model.intermediate_size / tp
        cost = _ffn_cost(params, params, own, own, d, width, wbytes, abytes, tp)
        cost.gemms = [Gemm(own, 2 * width, d), Gemm(own, d, width)]  # gate and up fused, then down
        parts.append((n_dense, cost))
    if n_moe:
        expert = 3 * d * model.moe_intermediate_size / tp
        local = model.num_experts / ep
        routed = tokens * model.experts_per_token  # token-expert assignments in the group
        # chance that a given expert receives at least one of the group's tokens this pass
        touched = 1.0 - np.power(1.0 - model.experts_per_token / model.num_experts, tokens)
        shared = model.num_shared_experts * expert
        held = local * expert + shared + d * model.num_experts
        read = local * touched * expert + shared + d * model.num_experts
        flops_rows = routed / ep  # expert rows computed on this chip
        cost = _ffn_cost(held, read, flops_rows, tokens, d, model.moe_intermediate_size / tp, wbytes, abytes, tp)
        cost.expert_flops = cost.flops
        cost.flops = cost.flops + 2 * own * (shared + d * model.num_experts)  # shared experts and router
        cost.experts = Experts(tokens, d, model.moe_intermediate_size, model.experts_per_token, model.num_experts,
                               tp, ep)
        cost.gemms = [Gemm(own, model.num_experts, d)]  # the router
        if model.num_shared_experts:
            shared_width = model.num_shared_experts * model.moe_intermediate_size / tp
            cost.gemms += [Gemm(own, 2 * shared_width, d), Gemm(own, d, shared_width)]
        # Dispatch and combine: each of the group's tokens goes to its top-k experts and back. The tp ranks of
        # a token's expert-parallel rank each move 1/tp of the exchange (their shard of the token's rows).
        moved = 2 * tokens / ep * model.experts_per_token * d * abytes / tp
        cost.collectives.append(Collective("alltoall", moved, ep, tp * ep))
        parts.append((n_moe, cost))
    return _mean_cost(parts)


def _ffn_cost(held, read, rows, tokens, d, width_chip, wbytes, abytes, tp) -> LayerCost:
    weights = held * wbytes
    activations = (tokens * d + rows * 2 * width_chip) * abytes
    return LayerCost(
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=zeros_like(weights),
        flops=2 * rows * 3 * d * width_chip,
        hbm_bytes=read * wbytes + activations,
        collectives=[Collective("allreduce", tokens * d * abytes, tp, tp)],
    )


def _mean_cost(parts: list[tuple[int, LayerCost]]) -> LayerCost:
    if len(parts) == 1:
        return parts[0][1]
    total = sum(n for n, _ in parts)
    (na, a), (nb, b) = parts

    def mix(x, y):
        return (na * x + nb * y) / total

    return LayerCost(
        weight_bytes=mix(a.weight_bytes, b.weight_bytes),
        activation_bytes=maximum(a.activation_bytes, b.activation_bytes),
        kv_bytes=mix(a.kv_bytes, b.kv_bytes),
        flops=mix(a.flops, b.flops),
        hbm_bytes=mix(a.hbm_bytes, b.hbm_bytes),
        collectives=[Collective(c.kind, c.bytes * n / total, c.group, c.span)
                     for n, cost in parts for c in cost.collectives],
        expert_flops=mix(a.expert_flops, b.expert_flops),
        gemms=[Gemm(g.m, g.n, g.k, g.count * n / total) for n, cost in parts for g in cost.gemms],
        experts=next((dataclasses.replace(c.experts, share=n / total) for n, c in parts if c.experts), None),
    )


def norm(model: ModelSpec, cfg, p: Pass) -> LayerCost:
    """The two RMSNorms of a transformer layer (before attention and before the feed-forward)."""
    sp = _p(cfg, "norm", "sequence_parallel")
    dtype = _p(cfg, "norm", "dtype")
    abytes = ACTIVATION_BYTES_ARRAY[dtype]
    d = model.hidden_size
    tokens = np.ceil(p.batch / copies(cfg, "norm")) * p.new / sp
    weights = 2 * d * BYTES_ARRAY[dtype] * ones_like(tokens)
    activations = 2 * tokens * d * abytes
    return LayerCost(
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=zeros_like(tokens),
        flops=2 * 4 * tokens * d,
        hbm_bytes=weights + 2 * activations,  # read and write each
    )


def embedding(model: ModelSpec, cfg, p: Pass) -> LayerCost:
    """Input embedding and LM head (vocabulary-parallel); logits only for the last token of each sequence."""
    tp = _p(cfg, "embedding", "tensor_parallel")
    dtype = _p(cfg, "embedding", "dtype")
    wbytes, abytes = BYTES_ARRAY[dtype], ACTIVATION_BYTES_ARRAY[dtype]
    d, vocab = model.hidden_size, model.vocab_size
    matrices = 1 if model.tie_word_embeddings else 2
    head_rows = np.ceil(p.batch / copies(cfg, "embedding"))  # replicated copies split the sequences
    tokens = head_rows * p.new
    weights = matrices * vocab * d / tp * wbytes
    activations = tokens * d * abytes + head_rows * vocab / tp * 4.0
    return LayerCost(
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=zeros_like(weights),
        flops=2 * head_rows * d * vocab / tp,
        hbm_bytes=vocab * d / tp * wbytes + tokens * d * abytes * 2 + head_rows * vocab / tp * 4.0,
        gemms=[Gemm(head_rows, vocab / tp, d)],
        collectives=[
            Collective("allreduce", tokens * d * abytes, tp, tp),
            Collective("allgather", head_rows * vocab / tp * 4.0, tp, tp),
        ],
    )


COSTS = {"attention": attention, "feedforward": feedforward, "norm": norm, "embedding": embedding}


def instances(model: ModelSpec, layer_type: str) -> int:
    """How many instances of a layer type the model stacks."""
    return 1 if layer_type == "embedding" else model.num_layers
