"""A whole mixture-of-experts layer on one GPU of its expert-parallel group: one closed form.

What one call costs (aiconfigurator's ``moe_perf`` measures exactly this on one GPU: routing, permutation,
activation quantization and the grouped GEMMs of the GPU's own experts, *not* the dispatch/combine
all-to-all, which perfkit prices as a collective of its own). ``tokens`` are the tokens of the whole
expert-parallel group (every rank routes them all and computes the rows that land on its
``experts / moe_ep`` local experts); ``inter`` is one expert's full intermediate width, split over ``moe_tp``.

    rows    = tokens * topk * (ep_share + (1 - ep_share) / moe_ep)    token-expert rows this GPU processes
    active  = experts / moe_ep * touched                  local experts that receive at least one row
    compute = 2 * 3 * hidden * ((rows + pad_rows * active) * inter / moe_tp + fill_elements)
              / (plateau * peak)
    read    = active * 3 * hidden * inter / moe_tp * weight_bytes
    miss    = 1 / (1 + (cache_bytes / (read + (tokens + rows) * hidden * 2 bytes)) ** cache_sharpness)
    weights = read * miss / (weight_bw * hbm) + expert_s * active
    tokens' = (token_passes * tokens + row_passes * rows) * hidden * 2 bytes * miss / hbm
    time    = fixed_s + fixed_per_hidden_s * hidden + tokens'
              + (compute ** overlap + weights ** overlap) ** (1 / overlap)

``ep_share`` is the part of the routed rows every rank of the expert-parallel group processes whatever its
share of the experts: about 0 for kernels that gather only their local experts' rows (TRT-LLM's grouped
GEMMs: fitted 0.005-0.01, the work divides by ``moe_ep``); well above 0 for kernels that walk every token's
routing, padding and masked rows on every rank (fitted on vLLM's tables: 0.4-0.7 on L40S, 0.23-0.28 for
bf16 on H100/H200). The weight reads still cover only the local experts. (vLLM's DeepSeek-V3 shape on
Blackwell, 12.7 ms at ep1 and 3.9 ms at ep64 for 16384 fp8_block tokens on B300, divides far worse than
every other shape of the same kernel; no fitted share follows that one shape.)

``pad_rows`` is the grouped GEMM's tile padding: every active expert's rows are rounded up to the kernel's
tile, so many experts with few rows each run below the plateau; ``fill_elements`` is the output area (rows x
width) one wave of the chip's SMs covers: a smaller grouped GEMM still takes about one wave. ``expert_s`` is
each active expert's own cost beyond its bytes (its scales, tile setup and scheduling); ``fixed_per_hidden_s``
grows the smallest call's floor with the model width. ``tokens'`` is the per-token work outside the GEMMs
(top-k routing and activation quantization once per token, permute / unpermute / the activation per routed
row), counted as passes over a token's 16-bit hidden vector at the chip's HBM bandwidth. The smooth maximum
lets compute and weight reads overlap (``overlap`` -> infinity: perfect overlap; 1: none). The tables time
repeated calls of one layer, so a working set (the touched weights, the input tokens and the permuted rows)
that fits the L2 cache comes from there (``cache_bytes``): weight reads and token passes alike (on L40S's
96 MB L2, Qwen3-30B-A3B fp8 at ep32 takes 0.07 ms at 4096 tokens and 0.22 ms at 8192, three times the time
for twice the rows, as the activations outgrow the cache); a model's
many layers evict each other, so the engine prices a served layer with ``cache_bytes = 0`` (every weight from
HBM).

``touched`` defaults to balanced routing (what the fitted tables measure): rows spread evenly, so
``min(1, tokens * topk / experts)`` of the experts receive rows. Random routing touches fewer experts at
small batches (``1 - (1 - topk / experts) ** tokens``, the engine's expectation); pass it explicitly.
"""
from __future__ import annotations

from ..elementwise import as_float, maximum, minimum

#: The fitted curve's parameters and their physical bounds (checked for every hardware YAML value).
PARAMS: dict[str, tuple[float, float]] = {
    "plateau": (0.02, 1.0),        # fraction of the dtype's peak FLOP/s the grouped GEMMs reach at large rows
    "ep_share": (0.0, 0.9),        # part of the routed rows every EP rank processes (0: work divides by moe_ep)
    "pad_rows": (0.0, 1024.0),     # rows of tile padding per active expert
    "fill_elements": (0.0, 1e8),   # output elements (rows x width) below which the GEMMs leave SMs idle
    "weight_bw": (0.05, 1.0),      # fraction of HBM bandwidth achieved reading the touched experts' weights
    "expert_s": (0.0, 2e-5),       # per active local expert: its tiles' setup, scales, scheduling (seconds)
    "token_passes": (0.0, 500.0),  # HBM passes over each token's 16-bit hidden vector (routing, quantization)
    "row_passes": (0.0, 500.0),    # HBM passes over each routed row's hidden vector (permute, activation)
    "fixed_s": (0.0, 1e-3),        # per call: launches, routing setup (seconds)
    "fixed_per_hidden_s": (0.0, 2e-8),  # per call and hidden element: the smallest call's tiles (seconds)
    "overlap": (1.0, 8.0),         # smooth-maximum exponent of compute and weight-read time
    "cache_bytes": (0.0, 1e9),     # weights a repeated call finds in the L2 cache (bytes; 0: always from HBM)
    "cache_sharpness": (1.0, 16.0),  # how sharply reads move from cache to HBM as the weights outgrow it
}

#: Bytes per element of the 16-bit activations the permutation moves.
ACTIVATION_BYTES = 2.0
#: Weight matrices per expert (gate, up, down of a gated MLP).
MATRICES = 3


def balanced_touched(tokens, topk, experts):
    """Fraction of the experts that receive at least one row when ``tokens * topk`` rows are spread evenly."""
    return minimum(1.0, as_float(tokens) * topk / experts)


def moe_seconds(params, tokens, hidden, inter, topk, experts, moe_tp, moe_ep, weight_bytes_per_element,
                peak_flops_per_s, hbm_bytes_per_s, touched=None):
    """Seconds for one MoE layer call on one GPU (arrays broadcast against each other).

    tokens: the expert-parallel group's tokens this call; hidden: model width; inter: one expert's full
    intermediate width (split over ``moe_tp``); topk: experts per token; experts: routed experts of the
    layer (split over ``moe_ep``); weight_bytes_per_element: the expert weights' storage bytes
    (``perfkit.dtypes.BYTES``: 2 bf16, 1 fp8, 0.5 fp4 / int4); peak_flops_per_s: the chip's dense peak in
    the format the GEMMs compute in (bf16 for weight-only 4-bit, fp8 for fp8 and mxfp4 x mxfp8, fp4 for
    nvfp4); hbm_bytes_per_s: the chip's HBM bandwidth; touched: fraction of experts receiving rows
    (default: balanced routing, ``balanced_touched``). ``params``: a mapping with the keys of ``PARAMS``.

    >>> p = {"plateau": 0.6, "ep_share": 0.0, "pad_rows": 64.0, "fill_elements": 1e6, "weight_bw": 0.85, "expert_s": 2e-7,
    ...      "token_passes": 4.0, "row_passes": 6.0,
    ...      "fixed_s": 1e-5, "fixed_per_hidden_s": 3e-9, "overlap": 3.0,
    ...      "cache_bytes": 0.0, "cache_sharpness": 4.0}
    >>> t1 = moe_seconds(p, 1, 2048, 768, 8, 128, 1, 1, 2.0, 989e12, 3.35e12)
    >>> t2 = moe_seconds(p, 4096, 2048, 768, 8, 128, 1, 1, 2.0, 989e12, 3.35e12)
    >>> bool(t1 < t2)
    True
    """
    tokens = as_float(tokens)
    if touched is None:
        touched = balanced_touched(tokens, topk, experts)
    share = params["ep_share"]
    rows = tokens * topk * (share + (1.0 - share) / moe_ep)
    active = touched * experts / moe_ep
    expert_elements = MATRICES * hidden * (inter / moe_tp)
    padded = (rows + params["pad_rows"] * active) * (inter / moe_tp) + params["fill_elements"]
    compute = 2.0 * MATRICES * hidden * padded / (params["plateau"] * peak_flops_per_s)
    read = active * expert_elements * weight_bytes_per_element
    # a repeated call finds weights that fit the L2 cache there (the tables measure warm calls): the part
    # read from HBM falls from all of it (weights >> cache) to nothing (weights << cache)
    # the call's working set: the touched weights plus the input tokens and the permuted rows (16-bit)
    footprint = read + (tokens + rows) * hidden * ACTIVATION_BYTES
    miss = 1.0 / (1.0 + (params["cache_bytes"] / maximum(footprint, 1.0)) ** params["cache_sharpness"])
    weights = read * miss / (params["weight_bw"] * hbm_bytes_per_s) + params["expert_s"] * active
    per_token = ((params["token_passes"] * tokens + params["row_passes"] * rows) * hidden * ACTIVATION_BYTES
                 * miss / hbm_bytes_per_s)
    q = params["overlap"]
    fixed = params["fixed_s"] + params["fixed_per_hidden_s"] * hidden
    return fixed + per_token + (compute ** q + weights ** q) ** (1.0 / q)
