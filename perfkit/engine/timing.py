"""Turning costs into seconds: shape-dependent compute efficiency, HBM efficiency, and collectives with a
latency term on the right network (the scale-up domain, or scale-out once a group leaves a node)."""
from __future__ import annotations

import numpy as np

from ..specs import HardwareSpec
from .costs import Collective, LayerCost


def compute_seconds(hw: HardwareSpec, cost: LayerCost, dtype: np.ndarray) -> np.ndarray:
    """FLOPs over the achievable rate: GEMMs with few rows (decode) run far below peak, and so do the grouped
    GEMMs of active experts, which see only their share of the tokens."""
    e = hw.efficiency
    dense = e.matmul * cost.gemm_rows / (cost.gemm_rows + e.matmul_half_tokens)
    expert = e.matmul * cost.expert_rows / (cost.expert_rows + e.expert_half_tokens)
    return ((cost.flops - cost.expert_flops) / dense + cost.expert_flops / expert) / hw.peak_by_dtype[dtype]


def memory_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    return cost.hbm_bytes / (hw.hbm_bytes_per_s * hw.efficiency.hbm)


def collective_seconds(hw: HardwareSpec, c: Collective) -> np.ndarray:
    """Ring algorithms: ``2(n-1)`` steps for an all-reduce, ``n-1`` for the others, each paying the link
    latency; the bytes cross the slowest link the group spans."""
    n = c.group
    if not np.any(n > 1):  # no group to talk to: the common case of a single request
        return 0.0
    intra = c.span <= hw.chips_per_node
    e = hw.efficiency
    if np.all(intra):
        bandwidth, latency = hw.scaleup_bytes_per_s * e.scaleup, hw.scaleup_latency_s
    else:
        out_bw = (hw.scaleout_bytes_per_s or np.nan) * e.scaleout
        out_lat = hw.scaleout_latency_s if hw.scaleout_latency_s is not None else np.nan
        bandwidth = np.where(intra, hw.scaleup_bytes_per_s * e.scaleup, out_bw)
        latency = np.where(intra, hw.scaleup_latency_s, out_lat)
    if c.kind == "allreduce":
        steps, volume = 2 * (n - 1), 2 * (n - 1) / n * c.bytes
    elif c.kind == "alltoall":
        steps, volume = n - 1, (n - 1) / n * c.bytes
    else:  # allgather and ring: n-1 passes of the whole payload
        steps, volume = n - 1, (n - 1) * c.bytes
    return np.where(n > 1, steps * latency + volume / bandwidth, 0.0)


def communication_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    total = 0.0
    for c in cost.collectives:
        total = total + collective_seconds(hw, c)
    return total
