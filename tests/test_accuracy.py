"""Accuracy against the measured serving points (../shared/data/calibration/measured_serving.csv).

The held-out TPOT median meets the issue's 15% target, and a test holds it there. The TTFT guard pins the
held-out TTFT error of the shipped parameters just above what benchmarks/ACCURACY.md reports, so a change that
makes predictions worse fails CI. The TTFT targets (median <= 25%, p90 <= 40%) are not met: that test is a
strict expected failure, which turns into a failure the day they are met, so that the guard gets tightened.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perfkit import catalog
from perfkit.calibration import measurements, report, split
from perfkit.calibration.fit import HARDWARE_BOUNDS, PRIORS, PROFILE_BOUNDS, fit

# Held-out agg figures of the shipped parameters as benchmarks/ACCURACY.md reports them since the layers run
# the kernel models (issue 10; TPOT was 14.0% and TTFT 45.5% on the per-architecture efficiencies before:
# their fitted per-layer prefill overhead, 0.4-1.0 ms a layer, also absorbed closed-loop TTFT that the
# physical launch model leaves to the harness terms), plus 0.8 points of slack.
GUARD_TPOT_MEDIAN = 14.6
GUARD_TTFT_MEDIAN = 52.8


@pytest.fixture(scope="module")
def measured():
    path = measurements.default_csv()
    assert path.is_file(), f"the measured points are missing: {path} (CI lays shared/ beside the clone)"
    return measurements.load(path)


@pytest.fixture(scope="module")
def accuracy(measured):
    return report.evaluate_accuracy(measured)


def test_every_measured_system_maps_to_a_catalog_entry(measured):
    assert set(measured["hardware_config"]) <= set(catalog.list_hardware())
    assert set(measured["model_id"]) <= set(catalog.list_models())


def test_wide_layout_slips_are_read_as_the_single_node_layout_they_repeat(measured):
    """Points on 8-GPU servers that declare tp_size = moe_tp x moe_ep (16 = 4 x 4, 64 = 8 x 8) repeat the
    figures of the moe_ep-GPU layout: they load as that layout, and the repeated measurement counts once."""
    hgx = measured[measured["system"].str.endswith("_sxm") & measured["mode"].eq("agg")]
    assert hgx["relabelled"].sum() > 150
    assert (hgx["decode_gpus"] <= 8).all()
    relabelled = hgx[hgx["relabelled"]]
    assert (relabelled["decode_moe_tp"] == 1).all()
    assert (relabelled["decode_gpus"] == relabelled["decode_moe_ep"]).all()
    # DeepSeek-R1 fp4 on B200 with SGLang: the row declared as 16 GPUs (moe_tp 4 x moe_ep 4) at batch 4,
    # 1024 in / 8192 out measured 182.309 ms TTFT and 8.734 ms TPOT, exactly as the 4-GPU moe_ep 4 row did.
    same = measured[(measured["mode"] == "agg") & measured["measured_ttft_ms"].round(3).eq(182.309)
                    & measured["model_family"].eq("deepseek") & measured["backend"].eq("sglang")]
    assert len(same) == 1 and same["decode_gpus"].item() == 4 and same["decode_moe_ep"].item() == 4
    # a measurement counts once, also where it is listed under DeepSeek-V3 and DeepSeek-R1 (one architecture)
    columns = [c for c in measured.columns if c not in ("id", "relabelled", "model_id")]
    rounded = measured.round({"measured_ttft_ms": 6, "measured_tpot_ms": 6})
    assert not rounded.duplicated(subset=columns + ["model_id"]).any()
    assert not rounded[rounded["model_family"].eq("deepseek")].duplicated(subset=columns).any()


def test_moe_layers_span_at_least_moe_tp_times_moe_ep_gpus(measured):
    """vLLM Qwen3-235B-A22B rows declare tp_size 1 with moe_tp_size 2: 235 GB of fp8 weights need both GPUs."""
    moe = measured[measured["model_id"].isin(["Qwen/Qwen3-235B-A22B-FP8", "deepseek-ai/DeepSeek-R1",
                                               "openai/gpt-oss-120b"])]
    assert (moe["decode_gpus"] >= moe["decode_moe_tp"] * moe["decode_moe_ep"]).all()
    qwen = measured[measured["model_id"].eq("Qwen/Qwen3-235B-A22B-FP8") & measured["system"].eq("h200_sxm")]
    assert qwen["decode_gpus"].min() >= 2


def test_repeatability_is_the_spread_of_one_configuration_measured_twice(measured):
    agg = measured[measured["mode"].eq("agg")]
    once = agg.drop_duplicates(subset=measurements.CONFIGURATION + ["model_id"]).head(3).copy()
    twice = once.iloc[[0]].assign(measured_tpot_ms=once["measured_tpot_ms"].iloc[0] * 1.5,
                                  measured_ttft_ms=once["measured_ttft_ms"].iloc[0] * 1.2)
    rep = report.repeatability(__import__("pandas").concat([once, twice]))
    assert rep["configurations"] == 1
    assert rep["tpot_median"] == pytest.approx(50.0) and rep["ttft_median"] == pytest.approx(20.0)
    whole = report.repeatability(measured)  # the reference data: runs disagree by tens of percent
    assert whole["configurations"] > 50 and whole["tpot_median"] > 15.0


def test_removing_each_cells_bias_leaves_only_the_scatter_within_it(accuracy):
    """Dividing out a cell's median bias can only help the median cell; a constant bias disappears."""
    removed = report.group_bias_removed(accuracy)
    plain = report.summary(accuracy)
    assert removed["tpot_median"] <= plain["tpot_median"] and removed["ttft_median"] <= plain["ttft_median"]
    biased = accuracy.assign(predicted_tpot_ms=accuracy["predicted_tpot_ms"] * 1.7)
    assert report.group_bias_removed(biased)["tpot_median"] == pytest.approx(removed["tpot_median"])


def test_a_later_run_of_a_configuration_supersedes_the_earlier_ones(measured):
    agg = measured[measured["mode"].eq("agg")]
    runs = agg.groupby(measurements.configurations(agg), dropna=False)["measured_on"]
    latest = runs.transform("max")
    several = runs.transform("nunique") > 1
    assert several.sum() > 50
    older = several & (agg["measured_on"] < latest)
    assert (agg["superseded"] == older).all()
    from perfkit.calibration.predict import predict
    sample = agg[several].head(40)
    valid = predict(sample)["valid"].to_numpy(bool)
    assert not valid[sample["superseded"].to_numpy(bool)].any()  # neither fitted nor scored


def test_a_csv_without_the_optional_source_columns_loads(tmp_path):
    """A user's own benchmarks need only the required columns (no source note, no derived columns, no ids)."""
    import pandas as pd

    raw = pd.read_csv(measurements.default_csv())
    raw = raw[(raw["mode"] == "agg") & raw["system"].eq("h100_sxm")].head(30)
    path = tmp_path / "mine.csv"
    raw.drop(columns=["silicon_data_source", "derived_total_concurrency", "id"]).to_csv(path, index=False)
    mine = measurements.load(path)
    assert len(mine) == 30 and not mine["superseded"].any() and mine["measured_on"].isna().all()


def test_a_missing_file_or_a_file_of_unknown_systems_is_a_clear_error(tmp_path):
    import pandas as pd

    from perfkit.errors import PerfkitError

    with pytest.raises(PerfkitError, match="nowhere.csv' does not exist"):
        measurements.load(tmp_path / "nowhere.csv")
    raw = pd.read_csv(measurements.default_csv()).head(5).assign(system="tpu_v9")
    raw.to_csv(tmp_path / "tpu.csv", index=False)
    with pytest.raises(PerfkitError, match=r"names \['tpu_v9'\]; valid systems: \['b200_sxm'"):
        measurements.load(tmp_path / "tpu.csv")


def test_held_out_groups_are_disjoint_from_training(accuracy):
    held = accuracy[accuracy["split"] == "held-out"]
    train = accuracy[accuracy["split"] == "train"]
    held_groups = set(zip(held["model_family"], held["system"]))
    assert held_groups == set(split.HELD_OUT)
    assert not held_groups & set(zip(train["model_family"], train["system"]))


def test_held_out_tpot_error_does_not_regress(accuracy):
    s = report.summary(accuracy)
    assert s["points"] > 400
    assert s["tpot_median"] <= GUARD_TPOT_MEDIAN, s


def test_held_out_ttft_error_does_not_regress(accuracy):
    s = report.summary(accuracy)
    assert s["ttft_median"] <= GUARD_TTFT_MEDIAN, s


@pytest.mark.xfail(strict=True, reason="TPOT targets (issue 10) not met: see benchmarks/ACCURACY.md")
def test_held_out_tpot_meets_the_targets(accuracy):
    s = report.summary(accuracy)
    assert s["tpot_median"] <= report.TARGETS["tpot_median"]
    assert s["tpot_p90"] <= report.TARGETS["tpot_p90"]


@pytest.mark.xfail(strict=True, reason="TTFT targets not met: see benchmarks/ACCURACY.md")
def test_held_out_ttft_meets_the_targets(accuracy):
    s = report.summary(accuracy)
    assert s["ttft_median"] <= report.TARGETS["ttft_median"]
    assert s["ttft_p90"] <= report.TARGETS["ttft_p90"]


def test_predictions_track_measurements_in_order(accuracy):
    """Across all agg points, predicted and measured TPOT rank alike (Spearman > 0.8)."""
    agg = accuracy[accuracy["mode"] == "agg"]
    ranks = agg[["predicted_tpot_ms", "measured_tpot_ms"]].rank()
    assert np.corrcoef(ranks.T.to_numpy())[0, 1] > 0.8  # 0.83 with the shipped parameters


def test_fit_is_deterministic_and_improves_on_priors(measured):
    """A short fit on a small fixed subset: reproducible, within bounds, and better than its start. The kernel
    models stay frozen: the serving fit fits no hardware figure."""
    rows = measured[(measured["mode"] == "agg") & measured["model_id"].eq("meta-llama/Llama-3.1-70B")
                    & measured["system"].eq("h200_sxm") & measured["backend"].eq("trtllm")]
    first = fit(rows, max_nfev=6)
    second = fit(rows, max_nfev=6)
    assert first.hardware == {} and HARDWARE_BOUNDS == {}
    assert first.profiles["trtllm"] == second.profiles["trtllm"]
    fitted = first.profiles["trtllm"]
    for key, (low, high) in PROFILE_BOUNDS.items():
        assert low <= getattr(fitted, key) <= high, key
    band = fitted.band["fitted_continuous"]
    assert band["tpot_p10"] <= 1.0 <= band["tpot_p90"]

    def median_error(profiles):
        frame = report.evaluate_accuracy(rows, None, profiles, groups=())
        return frame["tpot_error_pct"].median() + frame["ttft_error_pct"].median()

    start = dataclasses.replace(catalog.serving_profile("trtllm"), **{k: PRIORS[k] for k in PROFILE_BOUNDS})
    assert median_error(first.profiles) < median_error({"trtllm": start})


def test_sourced_chips_get_a_band_at_least_as_wide_as_fitted_ones():
    """Bands come from residuals per calibration status and mode: a chip without kernel tables is never
    known better than one with them, and a closed loop is less certain than a static pass of kernels."""
    for name in ("trtllm", "vllm", "sglang"):
        band = catalog.serving_profile(name).band
        for mode in ("continuous", "static"):
            fitted, sourced = band[f"fitted_{mode}"], band[f"sourced_{mode}"]
            for figure in ("ttft", "tpot"):
                assert sourced[f"{figure}_p10"] <= fitted[f"{figure}_p10"] <= 1.0 <= fitted[f"{figure}_p90"]
                assert fitted[f"{figure}_p90"] <= sourced[f"{figure}_p90"]
    from perfkit import system_metrics

    body = {"model_id": "meta-llama/Llama-3.1-8B", "batch_size": 8, "input_seq": 1024, "output_seq": 128,
            "uncertainty": True}
    nvidia = system_metrics({**body, "hardware_config": "nvidia_h100_hgx"})
    amd = system_metrics({**body, "hardware_config": "amd_mi300x_platform"})
    width = {name: r["uncertainty"]["tpot_ms_p90"] / r["uncertainty"]["tpot_ms_p10"]
             for name, r in (("nvidia", nvidia), ("amd", amd))}
    assert width["amd"] > width["nvidia"]


def test_uncertainty_band_brackets_the_estimate():
    from perfkit import system_metrics

    body = system_metrics({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                           "batch_size": 16, "input_seq": 1024, "output_seq": 256, "serving_mode": "continuous",
                           "serving_engine": "vllm", "uncertainty": True})
    u = body["uncertainty"]
    assert u["ttft_ms_p10"] < body["ttft_ms"] < u["ttft_ms_p90"]
    assert u["tpot_ms_p10"] < body["tpot_ms"] < u["tpot_ms_p90"]
    plain = system_metrics({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                            "batch_size": 16, "input_seq": 1024, "output_seq": 256})
    assert "uncertainty" not in plain  # the seed's shape by default


def test_continuous_batching_costs_more_than_a_static_step():
    """Closed-loop TPOT carries arriving prefills, so it is never below the static decode step."""
    from perfkit import system_metrics

    base = {"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h200_hgx", "batch_size": 64,
            "input_seq": 4096, "output_seq": 512, "serving_engine": "trtllm",
            "layers": {t: {"tensor_parallel": 8, "dtype": "fp8"} for t in ("attention", "feedforward")}}
    static = system_metrics(base)
    continuous = system_metrics({**base, "serving_mode": "continuous"})
    assert continuous["tpot_ms"] > static["tpot_ms"]
    assert continuous["memory"] == static["memory"]


def test_calibrate_cli_writes_loadable_parameters(tmp_path, monkeypatch, measured):
    """`perfkit calibrate --out-dir` writes hardware and serving files that load as specs."""
    from perfkit.cli import main

    csv = tmp_path / "points.csv"
    raw = __import__("pandas").read_csv(measurements.default_csv())
    raw[(raw["mode"] == "agg") & raw["system"].eq("h100_sxm") & raw["backend"].eq("vllm")].head(40).to_csv(
        csv, index=False)
    out = tmp_path / "calibrated"
    assert main(["calibrate", "--csv", str(csv), "--holdout", "", "--out-dir", str(out), "--max-evals", "3",
                 "--report", str(tmp_path / "ACC.md")]) == 0
    assert (tmp_path / "ACC.md").read_text().startswith("# perfkit accuracy")
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(out / "hardware"))
    monkeypatch.setenv("PERFKIT_SERVING_DIR", str(out / "serving"))
    caches = [catalog._hardware_root, catalog._hardware_files, catalog._hardware_spec, catalog._serving_root,
              catalog._profile_files, catalog._serving_profile]
    for c in caches:
        c.cache_clear()
    try:
        spec = catalog.hardware_spec("nvidia_h100_hgx")
        assert "perfkit calibrate --kernels" in spec.kernels.source  # the kernel models stay as shipped
        assert catalog.hardware_spec("nvidia_h200_hgx").kernels.status == "fitted"
        assert "perfkit calibrate" in catalog.serving_profile("vllm").source
    finally:
        monkeypatch.undo()
        for c in caches:
            c.cache_clear()


def test_calibrate_disagg_only_writes_loadable_transfer_profiles(tmp_path, monkeypatch):
    """`perfkit calibrate --disagg-only --out-dir` fits the disaggregated-serving profiles on disagg rows
    with recorded pools (the agg parameters as shipped) and writes files that load."""
    from perfkit.cli import main

    csv = tmp_path / "points.csv"
    raw = __import__("pandas").read_csv(measurements.default_csv())
    rows = raw[(raw["mode"] == "disagg") & raw["system"].eq("gb200") & raw["backend"].eq("sglang")
               & raw["decode_num_workers"].notna()].head(24)
    rows.to_csv(csv, index=False)
    out = tmp_path / "calibrated"
    assert main(["calibrate", "--disagg-only", "--csv", str(csv), "--holdout", "", "--out-dir", str(out),
                 "--max-evals", "3"]) == 0
    assert (out / "serving" / "disagg" / "sglang.yaml").is_file()
    monkeypatch.setenv("PERFKIT_SERVING_DIR", str(out / "serving"))
    caches = [catalog._serving_root, catalog._profile_files, catalog._serving_profile, catalog._transfer_profile]
    for c in caches:
        c.cache_clear()
    try:
        fitted = catalog.transfer_profile("sglang")
        assert "fitted by `perfkit calibrate` on 24 disagg points" in fitted.source
        assert 0 < fitted.kv_transfer_efficiency <= 1 and fitted.prefill_max_tokens == 8192
    finally:
        monkeypatch.undo()
        for c in caches:
            c.cache_clear()
