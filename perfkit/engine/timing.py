"""Turning costs into seconds: shape-dependent compute efficiency, HBM efficiency, and collectives with a
latency term on the right network (the scale-up domain, or scale-out once a group leaves a node)."""
from __future__ import annotations

import numpy as np

from ..specs import HardwareSpec
from .costs import Collective, LayerCost


def compute_seconds(hw: HardwareSpec, cost: LayerCost, dtype: np.ndarray) -> np.ndarray:
    """FLOPs over the achievable rate: GEMMs with few rows (decode) run far below peak."""
    e = hw.efficiency
    efficiency = e.matmul * cost.gemm_rows / (cost.gemm_rows + e.matmul_half_tokens)
    return cost.flops / (hw.peak_by_dtype[dtype] * efficiency)


def memory_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    return cost.hbm_bytes / (hw.hbm_bytes_per_s * hw.efficiency.hbm)


def collective_seconds(hw: HardwareSpec, c: Collective) -> np.ndarray:
    """Ring algorithms: ``2(n-1)`` steps for an all-reduce, ``n-1`` for the others, each paying the link
    latency; the bytes cross the slowest link the group spans."""
    n = c.group
    intra = c.span <= hw.chips_per_node
    e = hw.efficiency
    out_bw = (hw.scaleout_bytes_per_s or np.nan) * e.scaleout
    out_lat = hw.scaleout_latency_s if hw.scaleout_latency_s is not None else np.nan
    bandwidth = np.where(intra, hw.scaleup_bytes_per_s * e.scaleup, out_bw)
    latency = np.where(intra, hw.scaleup_latency_s, out_lat)
    steps = (2 if c.kind == "allreduce" else 1) * (n - 1)
    volume = {
        "allreduce": 2 * (n - 1) / n * c.bytes,
        "allgather": (n - 1) * c.bytes,
        "alltoall": (n - 1) / n * c.bytes,
        "ring": (n - 1) * c.bytes,
    }[c.kind]
    return np.where(n > 1, steps * latency + volume / bandwidth, 0.0)


def communication_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    total = np.zeros_like(cost.flops)
    for c in cost.collectives:
        total = total + collective_seconds(hw, c)
    return total
