"""Time of one dense GEMM ``[m, k] x [k, n]`` on one chip: a closed form fitted per (system, backend, dtype).

Two physical limits bound a GEMM. Reading its operands, ``bytes / (bandwidth x hbm_bytes_per_s)`` with
``bytes = n k w + m k a + m n a`` (weights of ``w`` bytes per element, activations in and out of ``a``);
where the weights fit in L2 and the call repeats (as a microbenchmark loop does), a share ``l2_share`` of
that time is saved, fading as the weights outgrow ``l2_bytes``. And the tensor-core work,
``2 (m + m_half) (n + n_half) (k + k_half) / (plateau x peak)``: the plateau efficiency of large shapes,
degraded where a dimension underfills its MMA tiles (a tile is computed whole whatever ``m`` is, so the
efficiency ``m / (m + m_half)`` rises with ``m``; likewise ``n`` and the per-tile prologue/epilogue in ``k``).
Loads are pipelined under the MMAs, so the two overlap: the time is their ``sharpness``-norm
``(t_read^p + t_compute^p)^(1/p)``, the larger one where they differ and at most 2^(1/p) of it where equal.

On top come costs no overlap hides: ``launch_s`` per call (launch, host-side work: tens of microseconds in
vLLM's block-quantized path), ``switch_s`` once ``m`` passes ``switch_m`` (the engine leaves its skinny,
GEMV-like kernel for the tiled one), the serial latency of one tile's reduction over ``k``
(``k_step_s`` per element until split-k takes over near ``k_split``), and ``row_s`` per row of ``m``
(per-token activation quantization and scaling done outside the GEMM).

At ``m`` = 1..~100 tokens (decode) the weight read dominates and time is nearly flat in ``m``; at thousands of
tokens (prefill) the compute term does and time grows linearly with ``m``. Pure numpy on broadcast arrays.
"""
from __future__ import annotations

from ..elementwise import as_float, maximum, minimum

#: Variant (the dtype of a ``kernels.<backend>.gemm`` entry) -> the peak (``peak_flops_per_s`` key) it
#: computes at: weight-only int8/int4 dequantize to 16-bit, ``int8`` is W8A8 (SmoothQuant) on int8 cores.
COMPUTE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp8_block": "fp8", "fp4": "fp4", "int8": "int8",
           "int8_wo": "bf16", "int4": "bf16"}
#: Variant -> bytes per weight element read from HBM.
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "fp4": 0.5, "int8": 1.0,
                "int8_wo": 1.0, "int4": 0.5}

#: name -> (low, high): the physical range of each fitted parameter.
PARAMS: dict[str, tuple[float, float]] = {
    "plateau": (0.02, 1.0),       # fraction of the dtype's peak FLOP/s large shapes reach
    "bandwidth": (0.05, 1.5),     # fraction of HBM bandwidth weight reads reach (>1 only from L2 reuse)
    "m_half": (0.0, 4096.0),      # rows of padding-equivalent work: efficiency m / (m + m_half)
    "n_half": (0.0, 4096.0),      # columns of it: efficiency n / (n + n_half)
    "k_half": (0.0, 4096.0),      # depth of it (per-tile prologue and epilogue): efficiency k / (k + k_half)
    "sharpness": (1.0, 8.0),      # p of the p-norm joining the read and compute times
    "launch_s": (0.0, 1e-3),      # fixed cost per call (launch, host-side quantization ops), seconds
    "k_step_s": (0.0, 1e-7),      # serial latency per element of k of one tile's reduction loop, seconds
    "k_split": (16.0, 1e6),       # k beyond which the reduction is split over CTAs (the serial part saturates)
    "row_s": (0.0, 1e-7),         # seconds per row of m outside the GEMM (activation quantization, scaling)
    "switch_s": (0.0, 1e-3),      # extra fixed cost of the tiled path that serves m above switch_m, seconds
    "switch_m": (1.0, 8192.0),    # rows at which the engine leaves its skinny (GEMV-like) kernel
    "l2_share": (0.0, 0.95),      # share of the read time saved when the weights stay in L2 between calls
    "l2_bytes": (1e5, 1e9),       # weight bytes at which half of that saving is left (about the L2 size)
}


def row_seconds(params, m):
    """The fixed cost that depends on the rows alone: the smooth switch at ``switch_m`` rows from the skinny
    kernel to the tiled one, and ``row_s`` per row (shared by the GEMMs of one layer, which see the same m)."""
    ratio = params["switch_m"] / m
    ratio = ratio * ratio
    return params["switch_s"] / (1.0 + ratio * ratio) + params["row_s"] * m  # 1 / (1 + (s/m)^4): a step


def gemm_seconds(params, m, n, k, peak_flops_per_s, hbm_bytes_per_s, weight_bytes, activation_bytes=2.0,
                 rows_s=None):
    """Seconds of one GEMM of ``m`` tokens by a ``k x n`` weight.

    ``params``: a mapping of :data:`PARAMS` names to floats or arrays (broadcast with the shapes, so one call
    can evaluate several dtypes); ``m, n, k``: array-likes of the GEMM shape; ``peak_flops_per_s``: the
    chip's dense peak for the format the GEMM computes in; ``hbm_bytes_per_s``: the chip's HBM bandwidth;
    ``weight_bytes``: bytes per weight element (2 bf16, 1 fp8/int8, 0.5 fp4/int4); ``activation_bytes``:
    bytes per activation element read and written (2: 16-bit activations); ``rows_s``: :func:`row_seconds`
    of these ``m`` and ``params`` where the caller has it already.

    >>> p = {"plateau": 0.8, "bandwidth": 0.8, "m_half": 0.0, "n_half": 0.0, "k_half": 0.0, "sharpness": 4.0,
    ...      "launch_s": 0.0,
    ...      "k_step_s": 0.0, "k_split": 2048.0, "row_s": 0.0, "switch_s": 0.0, "switch_m": 16.0,
    ...      "l2_share": 0.0, "l2_bytes": 5e7}
    >>> t = gemm_seconds(p, [1, 65536], 8192, 8192, 989e12, 3.35e12, 2.0)
    >>> bool(t[0] >= 8192 * 8192 * 2 / (0.8 * 3.35e12)), bool(t[1] >= 2 * 65536 * 8192 ** 2 / (0.8 * 989e12))
    (True, True)
    """
    m, n, k = (as_float(x) for x in (m, n, k))
    # the terms of the weight shape alone first, then the few that carry the rows m (the big arrays)
    weights = n * k * weight_bytes
    resident = params["l2_share"] / (1.0 + (weights / params["l2_bytes"]) ** 2)
    read_s_per_byte = (1.0 - resident) / (params["bandwidth"] * hbm_bytes_per_s)
    t_read = (weights + m * ((k + n) * activation_bytes)) * read_s_per_byte
    t_compute = (m + params["m_half"]) * (2.0 * (n + params["n_half"]) * (k + params["k_half"])
                                          / (params["plateau"] * peak_flops_per_s))
    p = params["sharpness"]
    big = maximum(t_read, t_compute)
    # the p-norm written around the larger term (whose own ratio is 1), so that no power overflows
    small = minimum(t_read, t_compute) / big
    serial = params["k_step_s"] * k * params["k_split"] / (k + params["k_split"])
    fixed = (params["launch_s"] + serial) + (row_seconds(params, m) if rows_s is None else rows_s)
    return big * (1.0 + small ** p) ** (1.0 / p) + fixed
