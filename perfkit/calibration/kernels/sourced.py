"""Kernel models for chips without measured kernel tables, from public microbenchmarks.

A chip outside the tables (AMD Instinct, Google TPU, Intel Gaudi) takes the *shapes* of a fitted template
chip's curves (how efficiency rises with rows, context and bytes; the fixed costs per call) and replaces
their *levels* with its own published figures: the large-shape GEMM fraction of peak per dtype and the
achieved HBM bandwidth. Every family's compute-rate parameters scale by the chip's GEMM plateau over the
template's, every bandwidth parameter by the chip's HBM fraction over the template's GEMM weight-read
fraction. The result is written as the chip's ``kernels:`` block with ``status: sourced`` (responses then
say the chip is not kernel-calibrated, and its uncertainty band is the wider ``sourced`` one).

Every figure below carries its source; none is fitted to serving results.
"""
from __future__ import annotations

from pathlib import Path

from ...engine.kernels import FAMILIES as CLOSED_FORMS

#: Parameter names that are a fraction of the peak FLOP/s (scale with the GEMM plateau) and of the HBM
#: bandwidth (scale with the achieved HBM fraction), across the families' closed forms.
COMPUTE_PARAMS = ("plateau", "compute", "fallback_compute")
BANDWIDTH_PARAMS = ("bandwidth", "hbm", "weight_bw")

MI300X_SOURCES = (
    "GEMM: ml-engineering MAMF table (mamf-finder, bf16 668.4 TFLOP/s, shared/data/matmul_measured.csv); "
    "AMD ROCm blog 'Measuring max-achievable FLOPs, part 2' (2025-02-28, hipBLASLt fp8 1273 TFLOP/s); "
    "HBM: ROCm roofline tool 4.2 TB/s (ROCm/legacy-rocm-build issue 5070), TransferBench 4.0 TB/s on MI308X "
    "(ROCm/rocm-systems PR 8480); all-reduce: AMD ROCm blog 'MI300X RCCL xGMI' (2025-03-02, rccl-tests "
    "8 GPUs 319 GB/s bus bandwidth)")

#: catalog entry -> the template fitted chip, the GEMM plateau per dtype (achieved / this file's peak), the
#: HBM fraction, and the sources.
SOURCED = {
    "amd_mi300x_platform": {
        "template": "nvidia_h100_hgx",
        "plateau": {"bf16": 0.511, "fp16": 0.500, "fp8": 0.487, "int8": 0.485},
        "hbm": 0.80,
        "sources": MI300X_SOURCES + "; int8: ROCm/aiter a8w8_bpreshuffle_tuned_gemm.csv (1268 TOP/s)",
    },
    "amd_mi325x_platform": {
        "template": "nvidia_h200_hgx",
        "plateau": {"bf16": 0.600, "fp16": 0.607, "fp8": 0.581},
        "hbm": 0.80,  # no MI325X read benchmark is published: MI300X's fraction (same CDNA3 memory fabric)
        "sources": ("GEMM: ml-engineering MAMF table (bf16 784.9 TFLOP/s); AMD ROCm blog 'Measuring "
                    "max-achievable FLOPs, part 2' (fp16 794, fp8 1519 TFLOP/s); HBM: MI300X's figures "
                    "(none published for MI325X)"),
    },
    "amd_mi355x_platform": {
        "template": "nvidia_b200_hgx",
        # fp4: no current microbenchmark; the fp8 fraction is an upper prior (aiter's CK a4w4 tables reach
        # 0.25, an old kernel generation), so fp4 is never faster than the fp8 path's efficiency allows
        "plateau": {"bf16": 0.622, "fp8": 0.622, "fp4": 0.45},
        "hbm": 0.86,
        "sources": ("GEMM: ml-engineering MAMF table (bf16 1565 TFLOP/s); AMD ROCm blog 'FP8 GEMM optimization "
                    "on CDNA4' (2026-03-10, hipBLASLt 3130 TFLOP/s); fp4: assumed between ROCm/aiter "
                    "a4w4_blockscale_tuned_gemm.csv (0.25) and the fp8 fraction; HBM: rocprof-compute / "
                    "TransferBench read 6.9-7.2 TB/s on MI350X (ROCm/rocm-systems PR 8480)"),
    },
    "google_tpu_v5e_pod": {
        "template": "nvidia_h100_hgx",
        # no v5e GEMM microbenchmark: v6e's single-chip fraction (same MXU family), above v5e's MaxText
        # training MFU of 0.67 (AI-Hypercomputer/maxtext configs/v5e/README.md), which bounds it below
        "plateau": {"bf16": 0.75, "int8": 0.60},
        "hbm": 0.85,  # no published TPU read benchmark: the prior of the catalog
        "sources": ("GEMM: v6e figures of yangwhale/gpu-tpu-pedia tpu/v7_perf (bf16 0.75, int8 0.615 of peak), "
                    "bounded below by MaxText v5e-256 MFU 0.67; HBM: prior (no public benchmark)"),
    },
    "google_tpu_v6e_pod": {
        "template": "nvidia_h100_hgx",
        "plateau": {"bf16": 0.75, "int8": 0.615},
        "hbm": 0.85,
        "sources": ("GEMM: yangwhale/gpu-tpu-pedia tpu/v7_perf README (JAX, v6e bf16 689 TFLOP/s, int8 1129 "
                    "TOP/s); HBM: prior (no public benchmark)"),
    },
    "intel_gaudi3_node": {
        "template": "nvidia_h100_hgx",
        "plateau": {"bf16": 0.741, "fp8": 0.769},
        "hbm": 0.85,
        "sources": ("GEMM: ml-engineering MAMF table (mamf-finder, bf16 1243, fp8 1289.5 TFLOP/s, "
                    "shared/data/matmul_measured.csv); HBM: prior (no public benchmark)"),
    },
}


def _template_levels(fits: dict) -> tuple[dict, float]:
    """The template's GEMM plateau per dtype and its bf16 weight-read fraction (any backend's gemm fit)."""
    for families in fits.values():
        gemm = families.get("gemm")
        if gemm:
            plateau = {v: p["plateau"] for v, p in gemm.items()}
            read = (gemm.get("bf16") or next(iter(gemm.values())))["bandwidth"]
            return plateau, read
    raise ValueError("the template chip has no gemm fit")


def block(name: str, template_fits: dict) -> dict:
    """The ``kernels:`` block (``status``, ``source``, backend -> family -> variant -> params) of a sourced
    chip, from its template's fitted block (``HardwareSpec.kernels.fits``)."""
    return transferred(SOURCED[name], template_fits)


def transferred(figures: dict, template_fits: dict) -> dict:
    """A ``kernels:`` block from a template's fitted block at the levels of ``figures`` (``plateau`` per
    dtype, ``hbm``, ``template``, ``sources``): what :func:`block` does for a sourced chip, and what the
    uncertainty bands of sourced chips measure on chips that have tables (:mod:`perfkit.calibration.bands`)."""
    plateau, read = _template_levels(template_fits)
    ref = plateau.get("bf16") or next(iter(plateau.values()))
    compute_ratio = figures["plateau"]["bf16"] / ref
    memory_ratio = figures["hbm"] / read
    out: dict = {}
    for backend, families in template_fits.items():
        for family, variants in families.items():
            bounds = CLOSED_FORMS[family].PARAMS
            fitted = {}
            for variant, params in variants.items():
                new = dict(params)
                if family == "gemm":
                    if variant not in figures["plateau"]:
                        continue  # a format this chip has no published figure for falls back to a wider one
                    new["plateau"] = figures["plateau"][variant]
                else:
                    for key in COMPUTE_PARAMS:
                        if key in new:
                            new[key] = new[key] * compute_ratio
                for key in BANDWIDTH_PARAMS:
                    if key in new:
                        new[key] = new[key] * memory_ratio
                fitted[variant] = {k: min(max(v, bounds[k][0]), bounds[k][1]) if k in bounds else v
                                   for k, v in new.items()}
            if fitted:
                out.setdefault(backend, {})[family] = fitted
    out["status"] = "sourced"
    out["source"] = (f"sourced: curve shapes of {figures['template']}'s fit, levels from public "
                     f"microbenchmarks: {figures['sources']}")
    return out


def write_blocks(hardware_dir) -> list[str]:
    """Write the sourced ``kernels:`` block of every :data:`SOURCED` chip in ``hardware_dir`` from its
    template's block in the same folder (fit the templates first); the names written."""
    import yaml

    from . import replace_block

    folder = Path(hardware_dir)
    written = []
    for name, figures in SOURCED.items():
        path, template = folder / f"{name}.yaml", folder / f"{figures['template']}.yaml"
        if not (path.is_file() and template.is_file()):
            continue
        fits = {b: f for b, f in (yaml.safe_load(template.read_text()).get("kernels") or {}).items()
                if b not in ("source", "status")}
        if not fits:
            continue
        path.write_text(replace_block(path.read_text(), block(name, fits)))
        written.append(name)
    return written
