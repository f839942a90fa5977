"""Turning costs into seconds: HBM streaming, and collectives as NCCL and the serving engines run them (fitted
inside a node; hierarchical, with log-depth latency, across nodes). The kernels' own time is
:mod:`perfkit.engine.kernel_time`."""
from __future__ import annotations

import numpy as np

from ..specs import CollectiveFit, HardwareSpec
from .elementwise import as_float, maximum, minimum, where
from .costs import Collective, LayerCost


def any_true(mask) -> bool:
    """``np.any(mask)`` without its dispatch cost: a single request's masks are numpy scalars, and the
    engine branches on them a dozen times per evaluation."""
    return bool(mask.any()) if isinstance(mask, np.ndarray) else bool(mask)


def memory_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    return cost.hbm_bytes / (hw.hbm_bytes_per_s * hw.efficiency.hbm)


#: The collective kinds whose intra-node time is fitted per system (``HardwareSpec.collectives``).
OPS = ("allreduce", "allgather", "alltoall")


def ring_steps(kind: str, n):
    """Latency steps of the ring algorithm over ``n`` chips: ``2(n-1)`` for an all-reduce, else ``n-1``."""
    return 2 * (n - 1) if kind == "allreduce" else n - 1


def ring_volume(kind: str, n):
    """Bytes each chip sends per byte of the buffer: ``2(n-1)/n`` for an all-reduce, else ``(n-1)/n``."""
    return (2 if kind == "allreduce" else 1) * (n - 1) / n


#: The tables measure 2 to 8 GPUs: the bus bandwidth's change with the group size is not extrapolated past 8.
MEASURED_GPUS = 8


def op_seconds(fit: CollectiveFit, kind: str, n, nbytes):
    """One collective inside one scale-up domain as NCCL (or a custom kernel) runs it: a launch cost, a
    per-step latency and the bus bandwidth, which may change with the group size (PCIe switches slow down,
    NVLink SHARP speeds up). ``nbytes`` is the whole buffer (an all-gather's output); a group of one costs 0."""
    bus = fit.bus_bytes_per_s
    if fit.bandwidth_exponent:
        bus = bus * (minimum(n, MEASURED_GPUS) / 2.0) ** -fit.bandwidth_exponent
    fixed = where(n > 1, fit.launch_s + fit.step_s * ring_steps(kind, n), 0.0)
    return fixed + nbytes * (ring_volume(kind, n) / bus)


def _intra(hw: HardwareSpec, kind: str, n, nbytes):
    """The fitted intra-node time; an all-reduce takes the faster of NCCL and the engine's custom kernel
    (one-shot / two-shot over NVLink for small decode messages)."""
    fits = hw.collectives
    seconds = op_seconds(getattr(fits, kind), kind, n, nbytes)
    if kind == "allreduce" and fits.custom_allreduce is not None:
        seconds = minimum(seconds, op_seconds(fits.custom_allreduce, kind, n, nbytes))
    return seconds


def collective_seconds(hw: HardwareSpec, c: Collective) -> np.ndarray:
    """Seconds of one collective over ``c.group`` chips spread over the ``c.span`` consecutive chips of a
    layout (see ``engine/costs.py`` for what ``c.bytes`` holds per kind).

    Inside a node the fitted NCCL / custom-kernel model applies (:func:`op_seconds`). A group that spans
    ``k`` nodes runs hierarchically, as NCCL does: the intra-node part over the members of one node, then the
    scale-out part, whose latency grows with the depth of the algorithm (an all-reduce's tree: ``2 log2 k``
    hops; an all-gather's ring across nodes: ``k - 1``; an all-to-all's direct sends: one), and whose bytes
    are spread over the NICs of the node's members.
    """
    if not any_true(c.group > 1):  # no group to talk to: the common case of a single request
        return 0.0
    n = as_float(c.group)  # it enters a dozen products and quotients below (see elementwise.as_float)
    kind = "allgather" if c.kind == "ring" else c.kind  # ring attention passes n-1 shards: an all-gather
    total = c.bytes * n if c.kind in ("ring", "allgather") else c.bytes  # the whole buffer
    nodes = minimum(maximum(-(-c.span // hw.chips_per_node), 1), n)  # np.clip, without its dtype checks
    crosses = nodes > 1
    if not any_true(crosses):
        return _intra(hw, kind, n, total)
    local = n / nodes  # members of the group in one node
    if kind == "allreduce":  # reduce-scatter and all-gather inside, a tree across nodes on 1/local each
        inter = _scaleout(hw, 2 * np.ceil(np.log2(nodes)), 2 * (nodes - 1) / nodes * total / local)
        intra = _intra(hw, kind, local, total)
    elif kind == "allgather":
        inter = _scaleout(hw, nodes - 1, (nodes - 1) / nodes * total / local)
        intra = _intra(hw, kind, local, total)
    else:  # alltoall: the share of the buffer bound for other nodes leaves through the NICs
        inter = _scaleout(hw, 1.0, (n - local) / n * total)
        intra = _intra(hw, kind, local, total * local / n)
    return intra + where(crosses, inter, 0.0)


def handoff_seconds(hw: HardwareSpec, nbytes, hops, crossing):
    """``hops`` point-to-point sends of ``nbytes`` each (pipeline stages handing activations on), ``crossing``
    of them between nodes."""
    up = (hops - crossing) * (hw.scaleup_latency_s + nbytes / (hw.scaleup_bytes_per_s * hw.efficiency.scaleup))
    if any_true(crossing > 0):
        up = up + where(crossing > 0, crossing * _scaleout(hw, 1.0, nbytes), 0.0)
    return up


def _scaleout(hw: HardwareSpec, hops, nbytes):
    """Latency hops and bytes per NIC over the scale-out network (NaN where the hardware has none: such
    layouts are flagged by ``layout.check``)."""
    if hw.scaleout_bytes_per_s is None or hw.scaleout_latency_s is None:
        return np.full(np.shape(nbytes), np.nan)
    return hops * hw.scaleout_latency_s + nbytes / (hw.scaleout_bytes_per_s * hw.efficiency.scaleout)


def communication_seconds(hw: HardwareSpec, cost: LayerCost) -> np.ndarray:
    total = 0.0
    for c in cost.collectives:
        total = total + collective_seconds(hw, c)
    return total
