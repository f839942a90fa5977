"""Attention kernel closed forms (perfkit.engine.kernels.attention) and their fit to the kernel tables.

Reference data: NVIDIA aiconfigurator-core 0.12.0 tables in shared/data/kernels (see its README).
"""
from pathlib import Path

import numpy as np
import pytest

from perfkit.calibration.kernels import attention as fit, split
from perfkit.calibration.measurements import shared_data
from perfkit.engine.kernels import attention as kernels

H100_FLOPS, H100_HBM = 989e12, 3.35e12  # hardware/nvidia_h100_hgx.yaml bf16 peak, HBM bandwidth
needs_tables = pytest.mark.skipif(not (shared_data("kernels") / "h100_sxm").is_dir(),
                                  reason="shared/data/kernels not present")
# a few head configurations of the H100 TensorRT-LLM tables: small enough to fit in seconds
HEADS = {(8, 8, 128, 0), (32, 8, 128, 0), (32, 8, 128, 128), (64, 8, 128, 0), (16, 2, 64, 0), (96, 8, 128, 0),
         (40, 8, 128, 8192), (96, 1, 128, 0), (12, 2, 128, 0), (32, 4, 128, 0), (48, 8, 128, 0)}


def _subset(family):
    frame = fit.table("h100_sxm", family, "trtllm")
    key = list(zip(frame.num_heads, frame.num_key_value_heads, frame.head_dim, frame.window_size))
    return frame[[k in HEADS for k in key]]


@pytest.fixture(scope="module")
def fitted():
    """bf16 prefill and decode curves fitted on the training rows of the subset; its held-out rows kept."""
    out = {}
    for family in ("context_attention", "generation_attention"):
        frame = _subset(family)
        frame = frame[frame.variant == "bf16"]
        rows = frame.assign(held_out=split.held_out(frame, "attention"))
        out[family] = (fit.fit_rows(family, rows[~rows.held_out], "h100_sxm", "bf16"), rows[rows.held_out])
    return out


def test_attended_pairs_causal_and_windowed():
    # causal: query i sees i keys -> n (n + 1) / 2; window 2 over 4 tokens: 1 + 2 + 2 + 2
    assert kernels.attended_pairs(4, 0) == 10
    assert kernels.attended_pairs(4, 2) == 7
    assert kernels.attended_pairs(4, 8) == 10


@needs_tables
def test_fitted_params_are_within_bounds(fitted):
    for params, _ in fitted.values():
        for name, value in params.items():
            low, high = kernels.PARAMS[name]
            assert low <= value <= high, name


@needs_tables
def test_prefill_physics(fitted):
    p = fitted["context_attention"][0]
    isl = np.array([128, 1024, 4096, 16384])
    t = kernels.context_attention_seconds(p, 2, isl, 32, 8, 128, 0, H100_FLOPS, H100_HBM)
    assert np.all(np.diff(t) > 0)
    assert np.all(kernels.context_attention_seconds(p, 4, isl, 32, 8, 128, 0, H100_FLOPS, H100_HBM) > t)
    flops = 4 * 2 * 32 * 128 * kernels.attended_pairs(isl, 0)
    assert np.all(t >= flops / H100_FLOPS)  # never faster than the peak
    windowed = kernels.context_attention_seconds(p, 2, isl, 32, 8, 128, 1024, H100_FLOPS, H100_HBM)
    assert np.all(windowed[isl > 2048] < t[isl > 2048])


@needs_tables
def test_decode_physics(fitted):
    p = fitted["generation_attention"][0]
    context = np.array([256, 2048, 16384, 65536])
    t = kernels.generation_attention_seconds(p, 8, context, 32, 8, 128, 0, 2, H100_FLOPS, H100_HBM)
    assert np.all(np.diff(t) > 0)
    assert np.all(kernels.generation_attention_seconds(p, 16, context, 32, 8, 128, 0, 2, H100_FLOPS,
                                                       H100_HBM) > t)
    kv_read = 8 * context * 2 * 8 * 128 * 2
    assert np.all(t >= kv_read / (H100_HBM * p["hbm"]))  # never faster than the fitted bandwidth
    assert np.all(t >= 4 * 8 * 32 * 128 * context / H100_FLOPS)
    windowed = kernels.generation_attention_seconds(p, 8, context, 32, 8, 128, 1024, 2, H100_FLOPS, H100_HBM)
    assert np.all(windowed[context > 4096] < t[context > 4096])
    fp8 = kernels.generation_attention_seconds(p, 8, context, 32, 8, 128, 0, 1, H100_FLOPS, H100_HBM)
    assert np.all(fp8 < t)


@needs_tables
def test_held_out_configurations_predicted(fitted):
    # the subset's held-out head configurations were never fitted; bounds from the full-table figures in
    # benchmarks/ACCURACY.md with room for the smaller training set
    for family, bound in (("context_attention", 0.15), ("generation_attention", 0.30)):
        params, rows = fitted[family]
        assert len(rows) > 100
        error = np.abs(fit._seconds(family, params, rows, "h100_sxm", "bf16") / rows.seconds.to_numpy() - 1)
        assert np.median(error) < bound, family


@needs_tables
def test_mla_fit_and_physics():
    frame = fit.table("h100_sxm", "generation_mla", "trtllm")
    frame = frame[(frame.variant == "bf16") & (frame.batch_size <= 64)]
    p = fit.fit_rows("generation_mla", frame[~frame.held_out], "h100_sxm", "bf16")
    held = frame[frame.held_out]
    error = np.abs(fit._seconds("generation_mla", p, held, "h100_sxm", "bf16") / held.seconds.to_numpy() - 1)
    assert np.median(error) < 0.2
    context = np.array([1024, 8192, 65536])
    t = kernels.generation_mla_seconds(p, 16, context, 128, 512, 64, 2, H100_FLOPS, H100_HBM)
    assert np.all(np.diff(t) > 0)
    assert np.all(t >= 16 * context * 576 * 2 / (H100_HBM * p["hbm"]))
    prefill = fit.table("h100_sxm", "context_mla", "trtllm")
    prefill = prefill[(prefill.variant == "bf16") & (prefill.num_heads >= 16)]
    q = fit.fit_rows("context_mla", prefill[~prefill.held_out], "h100_sxm", "bf16")
    isl = np.array([512, 4096, 16384])
    t = kernels.context_mla_seconds(q, 1, isl, 128, 192, 128, H100_FLOPS, H100_HBM)
    assert np.all(np.diff(t) > 0)
    assert np.all(t >= 2 * 128 * (192 + 128) * kernels.attended_pairs(isl, 0) / H100_FLOPS)


@needs_tables
def test_fitted_block_passes_the_catalog_checks(fitted):
    from perfkit.catalog_checks import check_kernels
    from perfkit.engine.kernels import FAMILIES

    block = {"source": "test", "trtllm": {family: {"bf16": params} for family, (params, _) in fitted.items()}}
    check_kernels(block, "hardware 'test'")  # every parameter known, none missing, inside its bounds
    for family, (params, _) in fitted.items():
        assert set(params) == set(FAMILIES[family].PARAMS)


# decode calls the monotonicity checks sweep: (heads, kv_heads, head_dim, window) of MHA, grouped and very
# wide groups (the per-head kernel past max_group), full and sliding-window attention
_DECODE_HEADS = [(32, 32, 128, 0), (32, 8, 128, 0), (64, 8, 128, 4096), (16, 2, 64, 0), (128, 1, 128, 0),
                 (40, 8, 128, 512)]
_CONTEXT = np.unique(np.concatenate([np.geomspace(1, 1 << 20, 400), np.arange(0, 9000, 7.0)]))
_BATCH = np.unique(np.concatenate([np.geomspace(1, 4096, 200), np.arange(1, 300.0)]))
_CHIPS = [(989e12, 3.35e12), (197e12, 8.2e11), (2.25e15, 8e12)]  # H100, TPU v5e, B200 bf16 peak / HBM


def _never_falls(t, axis):
    """Non-decreasing along ``axis`` up to floating round-off (the bug this guards against fell by 1e-6)."""
    step = np.diff(t, axis=axis)
    return bool(np.all(step >= -1e-12 * np.take(t, np.arange(t.shape[axis] - 1), axis=axis)))


def _assert_decode_monotone(params, label):
    for peak, hbm in _CHIPS:
        for kv_bytes in (1.0, 2.0):
            for heads, kv_heads, head_dim, window in _DECODE_HEADS:
                for batch in (1, 8, 256):
                    t = kernels.generation_attention_seconds(params, batch, _CONTEXT, heads, kv_heads, head_dim,
                                                             window, kv_bytes, peak, hbm)
                    assert _never_falls(t, 0), (label, "attention context", heads, kv_heads, window, batch)
                for context in (1, 300, 8192, 131072):
                    t = kernels.generation_attention_seconds(params, _BATCH, context, heads, kv_heads, head_dim,
                                                             window, kv_bytes, peak, hbm)
                    assert _never_falls(t, 0), (label, "attention batch", heads, kv_heads, window, context)
            for heads in (16, 128):
                t = kernels.generation_mla_seconds(params, np.array([[1], [8], [256]]), _CONTEXT, heads, 512, 64,
                                                   kv_bytes, peak, hbm)
                assert _never_falls(t, 1), (label, "mla context", heads)
                t = kernels.generation_mla_seconds(params, _BATCH[:, None], np.array([1, 300, 8192, 131072]),
                                                   heads, 512, 64, kv_bytes, peak, hbm)
                assert _never_falls(t, 0), (label, "mla batch", heads)


def test_decode_never_faster_with_more_context_or_batch_for_any_params():
    # physics: a longer context or a larger batch reads more KV and does more work, so no parameter value
    # within the declared bounds may make a decode step faster; seeded draws, log-uniform within each bound
    # (zero lower bounds drawn down to 1e-7 of the upper, and exactly zero in a quarter of the draws)
    rng = np.random.default_rng(20261202)
    for draw in range(40):
        params = {}
        for name, (low, high) in kernels.DECODE_PARAMS.items():
            floor = low if low > 0 else high * 1e-7
            value = float(np.exp(rng.uniform(np.log(floor), np.log(high))))
            params[name] = low if (low == 0 and rng.random() < 0.25) else value
        _assert_decode_monotone(params, f"draw {draw}: {params}")


def test_decode_never_faster_with_more_context_or_batch_for_shipped_fits():
    import yaml

    shipped = 0
    for path in sorted((Path(__file__).parents[1] / "hardware").glob("*.yaml")):
        block = (yaml.safe_load(path.read_text()) or {}).get("kernels") or {}
        for backend, families in block.items():
            if not isinstance(families, dict):
                continue
            for family in ("generation_attention", "generation_mla"):
                for variant, params in (families.get(family) or {}).items():
                    _assert_decode_monotone(params, (path.name, backend, family, variant))
                    shipped += 1
    assert shipped >= 20  # every NVIDIA file ships decode fits for TensorRT-LLM and vLLM
