"""Reading a sweep: Pareto fronts, best configuration under limits, largest batch that fits, xarray."""
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import perfkit  # noqa: E402
from perfkit import PerfkitError  # noqa: E402
from perfkit.sweeps import best_config, max_batch_that_fits, pareto_front  # noqa: E402

GRID = {"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_nvl72_rack",
        "batch_size": [1, 4, 16, 64, 256, 1024], "input_seq": [1024, 8192], "output_seq": 512,
        "pipeline_parallel": [1, 2],
        "layers": {"all": {"tensor_parallel": [1, 2, 4, 8, 16]}, "attention": {"context_parallel": [1, 2]}}}


@pytest.fixture(scope="module")
def df():
    return perfkit.sweep(GRID)


def _dominated(points: np.ndarray, by: np.ndarray) -> np.ndarray:
    """For each (x, y) to minimize x and maximize y: does some other point beat it?"""
    return np.array([np.any((by[:, 0] <= x) & (by[:, 1] >= y) & ((by[:, 0] < x) | (by[:, 1] > y)))
                     for x, y in points])


def test_pareto_front_is_exactly_the_undominated_valid_rows(df):
    front = pareto_front(df)
    runs = df[df["valid"]]
    pts = np.column_stack([runs["tpot_ms"], runs["throughput_tokens_s"] / runs["num_chips"]])
    fpts = front[["tpot_ms", "throughput_per_chip_tokens_s"]].to_numpy()
    assert front["valid"].all() and len(front) >= 3
    assert not _dominated(fpts, pts).any()
    assert _dominated(pts, pts).sum() == len(runs) - len(front)  # no ties in this grid: the rest are beaten
    assert front["tpot_ms"].is_monotonic_increasing
    assert front["throughput_per_chip_tokens_s"].is_monotonic_increasing


def test_pareto_front_directions_and_unknown_columns(df):
    front = pareto_front(df, x="ttft_ms", y="memory_per_chip_gb", maximize_y=False)
    assert front["memory_per_chip_gb"].is_monotonic_decreasing
    with pytest.raises(PerfkitError, match="did you mean 'tpot_ms'"):
        pareto_front(df, x="tpot_msx")


def test_best_config_meets_every_limit_and_is_the_best_that_does(df):
    row = best_config(df, max_ttft_ms=2000, max_tpot_ms=40, max_chips=8)
    assert row["valid"] and row["ttft_ms"] <= 2000 and row["tpot_ms"] <= 40 and row["num_chips"] <= 8
    per_chip = df["throughput_tokens_s"] / df["num_chips"]
    ok = df["valid"] & (df["ttft_ms"] <= 2000) & (df["tpot_ms"] <= 40) & (df["num_chips"] <= 8)
    assert row["throughput_per_chip_tokens_s"] == per_chip[ok].max()
    fastest = best_config(df, "tpot_ms", maximize=False)
    assert fastest["tpot_ms"] == df.loc[df["valid"], "tpot_ms"].min()


def test_best_config_without_a_match_says_what_is_possible(df):
    with pytest.raises(PerfkitError, match=r"ttft_ms <= 0.001.*least ttft_ms is"):
        best_config(df, max_ttft_ms=0.001)


def test_best_config_may_ignore_memory(df):
    loose = best_config(df, "throughput_tokens_s", must_fit=False)
    strict = best_config(df, "throughput_tokens_s")
    assert loose["throughput_tokens_s"] >= strict["throughput_tokens_s"]
    assert "tensor_parallel" not in loose["reason"]


def test_max_batch_that_fits_is_the_largest_valid_batch_per_layout(df):
    best = max_batch_that_fits(df)
    others = [a for a in df.attrs["axes"] if a != "batch_size"]
    assert best["valid"].all()
    assert best.set_index(others).index.is_unique
    for _, row in best.head(10).iterrows():
        same = (df[others] == row[others]).all(axis=1)
        assert row["batch_size"] == df.loc[same & df["valid"], "batch_size"].max()
    # more chips hold at least as large a batch
    table = best[(best["pipeline_parallel"] == 1) & (best["layers.attention.context_parallel"] == 1)
                 & (best["input_seq"] == 8192)].set_index("layers.all.tensor_parallel")["batch_size"]
    assert table.is_monotonic_increasing and len(table) >= 3


def test_max_batch_needs_a_batch_axis():
    df = perfkit.sweep({**GRID, "batch_size": 1})
    with pytest.raises(PerfkitError, match="no batch_size column"):
        max_batch_that_fits(df)
    single = max_batch_that_fits(perfkit.sweep({**GRID, "input_seq": 1024, "pipeline_parallel": 1,
                                                "layers": {"all": {"tensor_parallel": 8}}}), by=[])
    assert len(single) == 1 and single["valid"].all()


def test_table_slices_by_named_axes_with_xarray(df):
    xr = pytest.importorskip("xarray")
    data = df.set_index(df.attrs["axes"]).to_xarray()
    assert isinstance(data, xr.Dataset)
    assert dict(data.sizes) == {name: len(values) for name, values in
                                [("model_id", [0]), ("hardware_config", [0]), ("serving_engine", [0]),
                                 ("batch_size", GRID["batch_size"]),
                                 ("input_seq", [0, 0]), ("pipeline_parallel", [0, 0]),
                                 ("layers.all.tensor_parallel", [0] * 5),
                                 ("layers.attention.context_parallel", [0, 0])]}
    one = data["tpot_ms"].sel(batch_size=64, input_seq=8192, pipeline_parallel=1).squeeze()
    assert one.sizes == {"layers.all.tensor_parallel": 5, "layers.attention.context_parallel": 2}
    row = df[(df["batch_size"] == 64) & (df["input_seq"] == 8192) & (df["pipeline_parallel"] == 1)
             & (df["layers.all.tensor_parallel"] == 4) & (df["layers.attention.context_parallel"] == 2)]
    assert float(one.sel({"layers.all.tensor_parallel": 4, "layers.attention.context_parallel": 2})) == \
        row["tpot_ms"].item()
    assert isinstance(pd.Index(df.attrs["axes"]), pd.Index)
