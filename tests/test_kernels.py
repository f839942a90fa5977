"""Kernel models: the GEMM closed form obeys physics, and ``perfkit calibrate --kernels`` fits a small table
subset into a hardware file that loads, validates and predicts held-out shapes."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from perfkit import catalog
from perfkit.calibration.kernels import split, tables
from perfkit.cli import main
from perfkit.engine.kernels import FAMILIES
from perfkit.engine.kernels.gemm import COMPUTE, PARAMS, WEIGHT_BYTES, gemm_seconds
from perfkit.errors import SpecError
from perfkit.specs import KernelModels

H100 = catalog.hardware_spec("nvidia_h100_hgx")
CACHES = ("_hardware_root", "_hardware_files", "_hardware_spec")


def _clear():
    for name in CACHES:
        getattr(catalog, name).cache_clear()


def _shipped(spec, variant, backend="trtllm"):
    assert spec.kernels is not None, f"{spec.name} ships no kernels: block"
    return spec.kernels.params(backend, "gemm", variant)


def _time(spec, variant, m, n, k, backend="trtllm"):
    return gemm_seconds(_shipped(spec, variant, backend), m, n, k, spec.peak_flops_per_s[COMPUTE[variant]],
                        spec.hbm_bytes_per_s, WEIGHT_BYTES[variant])


@pytest.mark.parametrize("name", ["nvidia_h100_hgx", "nvidia_b200_hgx", "nvidia_a100_hgx", "nvidia_l40s_server"])
def test_gemm_never_beats_the_weight_read_or_the_peak(name):
    spec = catalog.hardware_spec(name)
    m = np.array([1, 8, 64, 512, 4096, 32768])[:, None]
    n, k = np.array([1024, 4096, 8192, 28672]), np.array([4096, 8192, 8192, 8192])
    for variant in spec.kernels.fits["trtllm"]["gemm"]:
        t = _time(spec, variant, m, n, k)
        peak = spec.peak_flops_per_s[COMPUTE[variant]]
        assert np.all(t >= n * k * WEIGHT_BYTES[variant] / (PARAMS["bandwidth"][1] * spec.hbm_bytes_per_s))
        assert np.all(t >= 2 * m * n * k / peak)


def test_gemm_time_grows_linearly_with_tokens_at_large_m():
    m = np.array([4096, 8192, 16384, 32768])
    for variant in ("bf16", "fp8"):
        t = _time(H100, variant, m, 8192, 8192)
        assert np.all(np.diff(t) > 0)
        assert 1.8 < t[-1] / t[-2] < 2.05  # compute bound: doubling the tokens doubles the time


def test_small_batch_gemm_is_flat_in_tokens_and_set_by_the_weights():
    # decode: 1 and 16 tokens read the same 8192 x 8192 bf16 weights (134 MB), so take about the same time
    t = _time(H100, "bf16", np.array([1, 16]), 8192, 8192)
    assert t[1] / t[0] < 1.1
    assert 134e6 / t[0] < H100.hbm_bytes_per_s  # never faster than HBM


@pytest.mark.parametrize("name", ["nvidia_b200_hgx", "nvidia_gb200_single", "nvidia_b300_hgx"])
def test_narrower_dtypes_are_faster_on_large_shapes(name):
    spec = catalog.hardware_spec(name)
    m, n, k = 16384, 16384, 8192
    t = {v: float(_time(spec, v, m, n, k)) for v in ("bf16", "fp8", "fp4")}
    assert t["fp4"] <= t["fp8"] <= t["bf16"]


def test_shipped_tables_on_every_nvidia_system_with_tables():
    for system, names in tables.SYSTEMS.items():
        for name in names:
            spec = catalog.hardware_spec(name)
            assert spec.kernels is not None and "gemm" in spec.kernels.fits["trtllm"], name


def test_kernel_params_fall_back_to_a_wider_dtype_and_the_trtllm_backend():
    models = KernelModels.from_dict({"source": "test", "trtllm": {"gemm": {"bf16": {"plateau": 0.8},
                                                                           "fp8": {"plateau": 0.6}}},
                                     "vllm": {"gemm": {"bf16": {"plateau": 0.7}}}}, "test")
    assert models.params("vllm", "gemm", "fp8") == {"plateau": 0.6}      # exact dtype of trtllm first
    assert models.params("vllm", "gemm", "fp4") == {"plateau": 0.6}      # then the nearest wider dtype (fp8)
    assert models.params("vllm", "gemm", "int8_wo") == {"plateau": 0.7}  # ... in the backend's own fits first
    assert models.params("sglang", "gemm", "bf16") == {"plateau": 0.8}   # unknown backend -> trtllm
    assert models.params("vllm", "moe", "bf16") is None


def test_split_holds_out_whole_weight_shapes():
    frame = tables.load("h100_sxm", "gemm_perf", "trtllm")
    held = split.held_out(frame, "gemm")
    shapes = frame.assign(held=held).groupby(["n", "k"])["held"]
    assert (shapes.nunique() == 1).all()                   # a shape is wholly in or wholly out
    assert 0.2 < shapes.first().mean() < 0.3               # every 4th shape
    assert np.array_equal(held, split.held_out(frame, "gemm"))  # deterministic


@pytest.fixture
def small_tables(tmp_path):
    """A few hundred H100 rows (a dozen shapes, bf16 and fp8) as CSV in the shared/data/kernels layout."""
    rows = tables.load("h100_sxm", "gemm_perf", "trtllm")
    shapes = rows[["n", "k"]].drop_duplicates().sort_values(["n", "k"]).iloc[::40]
    rows = rows.merge(shapes, on=["n", "k"])
    rows = rows[rows["gemm_dtype"].isin(["bfloat16", "fp8"]) & rows["m"].isin([1, 4, 16, 64, 256, 1024, 4096,
                                                                                16384])]
    folder = tmp_path / "tables" / "h100_sxm"
    folder.mkdir(parents=True)
    rows.drop(columns=["backend", "seconds"]).to_csv(folder / "gemm_perf.trtllm-1.3.0rc20.csv", index=False)
    assert 100 < len(rows) < 500
    return tmp_path / "tables", rows


def test_calibrate_kernels_writes_a_block_that_loads_and_predicts(small_tables, tmp_path, monkeypatch):
    root, rows = small_tables
    out = tmp_path / "out"
    assert main(["calibrate", "--kernels", str(root), "--systems", "h100_sxm", "--out-dir", str(out)]) == 0
    text = (out / "hardware" / "nvidia_h100_hgx.yaml").read_text()
    assert text.index("kernels:") < text.index("\nsources:")
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(out / "hardware"))
    _clear()
    try:
        spec = catalog.hardware_spec("nvidia_h100_hgx")
    finally:
        monkeypatch.delenv("PERFKIT_HARDWARE_DIR")
        _clear()
    assert "gemm_perf.trtllm-1.3.0rc20" in spec.kernels.source
    assert set(spec.kernels.fits) == {"trtllm"}
    held = rows[split.held_out(rows, "gemm")]
    for dtype, variant in (("bfloat16", "bf16"), ("fp8", "fp8")):
        sel = held[held["gemm_dtype"] == dtype]
        predicted = _time(spec, variant, sel["m"].to_numpy(), sel["n"].to_numpy(), sel["k"].to_numpy())
        ratio = predicted / sel["seconds"].to_numpy()
        assert np.median(np.abs(ratio - 1)) < 0.25 and np.all((ratio > 0.3) & (ratio < 3)), variant


def test_calibrate_kernels_names_the_missing_system(small_tables, tmp_path, capsys):
    root, _ = small_tables
    assert main(["calibrate", "--kernels", str(root), "--systems", "h900", "--out-dir", str(tmp_path)]) == 2
    assert "h900" in capsys.readouterr().err


def test_out_of_bounds_kernel_parameter_names_the_entry_and_field(tmp_path, monkeypatch):
    folder = tmp_path / "hardware"
    folder.mkdir()
    data = yaml.safe_load((catalog._hardware_root() / "nvidia_h100_hgx.yaml").read_text())
    data["kernels"]["trtllm"]["gemm"]["bf16"]["plateau"] = 1.7
    (folder / "nvidia_h100_hgx.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(folder))
    _clear()
    try:
        with pytest.raises(SpecError, match=r"^hardware 'nvidia_h100_hgx': kernels\.trtllm\.gemm\.bf16\.plateau "
                                            r"must be a number between 0\.02 and 1, got 1\.7") as info:
            catalog.hardware_spec("nvidia_h100_hgx")
        assert str(folder) not in str(info.value)
    finally:
        monkeypatch.delenv("PERFKIT_HARDWARE_DIR")
        _clear()


def test_every_family_declares_bounds():
    for module in FAMILIES.values():
        assert all(low < high for low, high in module.PARAMS.values())
