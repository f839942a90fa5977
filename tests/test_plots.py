"""Charts draw what their DataFrame holds and nothing else; the frames built from API responses keep the
responses' numbers and the physics of memory per chip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

import perfkit  # noqa: E402
from perfkit import plots  # noqa: E402
from perfkit import examples  # noqa: E402
from perfkit.widgets import frames  # noqa: E402

LLAMA_8B = "meta-llama/Llama-3.1-8B"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def new_ax():
    return Figure().subplots()


def request_8b(tp: int = 1, batch: int = 4, **extra) -> dict:
    return {"model_id": LLAMA_8B, "hardware_config": "nvidia_h100_hgx", "batch_size": batch, "input_seq": 1024,
            "output_seq": 128, "layers": examples.tensor_parallel(tp), **extra}


@pytest.fixture(scope="module")
def seed_frame():
    return frames.system_frame(examples.SEED_COMPARISON)


# -- frames ----------------------------------------------------------------------------------------------------


def test_system_frame_rows_are_the_responses(seed_frame):
    for label, request in examples.SEED_COMPARISON.items():
        response = perfkit.system_metrics(request)
        row = seed_frame.loc[label]
        assert row["ttft_ms"] == response["ttft_ms"] and row["tpot_ms"] == response["tpot_ms"]
        for key, value in {**response["memory"], **response["system"]}.items():
            if key != "notes":
                assert row[key] == value, key
        assert row["model_id"] == request["model_id"] and row["batch_size"] == request["batch_size"]


def test_comparison_table_differences_and_ratios(seed_frame):
    table = frames.comparison_table(seed_frame)
    ttft = frames.HEADLINE["ttft_ms"]
    a, b = seed_frame.loc["A", "ttft_ms"], seed_frame.loc["B", "ttft_ms"]
    assert table.loc[ttft, "B - A"] == pytest.approx(b - a)
    assert table.loc[ttft, "B / A"] == pytest.approx(b / a)
    # text and booleans are shown, not subtracted
    assert pd.isna(table.loc[frames.HEADLINE["bottleneck"], "B - A"])


def test_memory_frame_parts_fit_under_the_busiest_chip():
    frame = frames.system_frame({tp: request_8b(tp) for tp in (1, 2, 4, 8)})
    memory = frames.memory_frame(frame)
    parts = memory[["weights_gb", "kv_cache_gb", "activation_gb"]].sum(axis=1)
    # the average chip never holds more than the busiest one, and nothing exceeds what the response says
    assert (parts <= memory["memory_per_chip_gb"] * (1 + 1e-9)).all()
    # Megatron splits every weight matrix: doubling tensor parallelism halves the weights per chip (norms,
    # replicated, are a rounding error)
    ratio = memory["weights_gb"].iloc[1:].to_numpy() / memory["weights_gb"].iloc[:-1].to_numpy()
    assert ratio == pytest.approx([0.5] * 3, rel=0.02)


def test_layer_frame_covers_every_layer_and_phase():
    request = request_8b(tp=2)
    layers = frames.layer_frame(request)
    counts = {layer["type"]: layer["count"] for layer in perfkit.layers(LLAMA_8B)["layers"]}
    assert len(layers) == 2 * len(counts)
    for _, row in layers.iterrows():
        assert row["num_instances"] == counts[row["layer_type"]]
        assert row["flops_per_byte"] > 0 and row["attained_tflops_s"] > 0
        # nothing runs faster than the chip's peak
        assert row["attained_tflops_s"] <= row["peak_tflops_s"] * (1 + 1e-9)
    decode = layers[(layers.phase == "decode") & (layers.layer_type.isin(["attention", "feedforward"]))]
    prefill = layers[(layers.phase == "prefill") & (layers.layer_type.isin(["attention", "feedforward"]))]
    # a decode step of 4 sequences reuses each weight byte far less than a 1024-token prefill
    assert (decode["flops_per_byte"].to_numpy() < prefill["flops_per_byte"].to_numpy()).all()


# -- charts ----------------------------------------------------------------------------------------------------


def test_memory_breakdown_stacks_the_frame(seed_frame):
    memory = frames.memory_frame(seed_frame)
    before = memory.copy()
    ax = new_ax()
    assert plots.memory_breakdown(memory, ax=ax) is ax
    bars = [p for p in ax.patches]
    assert len(bars) == 3 * len(memory)
    heights = np.array([b.get_height() for b in bars]).reshape(3, len(memory))
    assert heights.sum(axis=0) == pytest.approx(memory[["weights_gb", "kv_cache_gb", "activation_gb"]].sum(axis=1))
    pd.testing.assert_frame_equal(memory, before)  # the chart changed nothing


def test_comparison_bars_show_the_column(seed_frame):
    ax = plots.comparison_bars(seed_frame, "tpot_ms", ax=new_ax())
    assert [b.get_height() for b in ax.patches] == list(seed_frame["tpot_ms"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]


def test_roofline_places_each_layer_under_its_roof():
    layers = frames.layer_frame(request_8b())
    ax = plots.roofline(layers, ax=new_ax())
    points = np.vstack([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(points, layers[["flops_per_byte", "attained_tflops_s"]].to_numpy())
    roof = ax.lines[0].get_ydata()
    assert roof.max() == pytest.approx(layers["peak_tflops_s"].iloc[0])
    assert ax.get_xscale() == "log"


@pytest.mark.parametrize("request_", [request_8b(), request_8b(tp=8, batch=64), examples.SEED_SYSTEM_REQUEST])
def test_roofline_points_lie_under_the_roofs(request_):
    # issue 12: with FLOPs per byte *held* on the x axis, decode points sat above the memory roof; per byte
    # *moved* through HBM no layer attains more than min(peak, bandwidth x intensity)
    layers = frames.layer_frame(request_)
    roof = np.minimum(layers["peak_tflops_s"], layers["hbm_tb_s"] * layers["flops_per_byte"])
    assert (layers["attained_tflops_s"] <= roof * (1 + 1e-9)).all(), layers[["layer_type", "phase"]]
    ax = plots.roofline(layers, ax=new_ax())
    assert "moved" in ax.get_xlabel() and layers["chip"].iloc[0] in ax.get_title()


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _drawn_inside(fig) -> None:
    """Every title, axis label and legend of ``fig`` lies inside the picture (nothing clipped)."""
    renderer = _renderer(fig)
    box = fig.bbox
    texts = [fig._suptitle] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.get_legend():
            texts.append(ax.get_legend())
    for artist in texts:
        if artist.get_visible() and (not hasattr(artist, "get_text") or artist.get_text()):
            extent = artist.get_window_extent(renderer)
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, artist
            assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, artist


def _no_overlap(ax) -> None:
    """The axes' legend covers none of its tick labels or axis labels."""
    renderer = _renderer(ax.figure)
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
    for text in labels:
        if text.get_text():
            assert not legend.overlaps(text.get_window_extent(renderer)), text.get_text()


def test_readme_pictures_clip_nothing_and_legends_cover_no_labels():
    from perfkit import figures

    for name, fig in figures.readme_figures().items():
        _drawn_inside(fig)
        for ax in fig.axes:
            if ax.get_legend():
                _no_overlap(ax)


def test_pareto_colours_chip_counts_as_categories_and_shapes_hardware():
    table = frames.sweep_table(examples.SWEEP_GRID)
    from perfkit.sweeps import pareto_front

    front = pareto_front(table, x="tpot_ms", y="throughput_per_chip_tokens_s")
    ax = plots.pareto_front(table[table["valid"]], front=front, y="throughput_per_chip_tokens_s",
                            color="num_chips", marker="hardware_config", ax=new_ax())
    entries = [t.get_text() for t in ax.get_legend().get_texts()]
    chips = sorted(front["num_chips"].unique())
    assert [e for e in entries if e.endswith(("chip", "chips"))] == \
        [f"{c} chip{'s' if c != 1 else ''}" for c in chips]  # discrete, not a colour bar
    assert len(ax.figure.axes) == 1  # no colour bar
    assert all(f"hardware {h}" in entries for h in front["hardware_config"].astype(str).unique())


def test_a_configuration_that_does_not_fit_is_grey_and_says_so():
    split = frames.system_frame(examples.parallelism_variants())
    assert not split.loc["TP2", "fits_on_hardware"]
    ax = plots.comparison_bars(split, "ttft_ms", ax=new_ax())
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in ax.patches]
    assert colours[0] == plots.NO_FIT_COLOR.lower() and plots.NO_FIT_COLOR.lower() not in colours[1:]
    assert "does not fit" in ax.texts[0].get_text()  # the bar label of TP2
    ax = plots.memory_breakdown(frames.memory_frame(split), ax=new_ax())
    assert sum("DOES NOT FIT" in t.get_text() for t in ax.texts) == 1


def test_small_bars_stay_readable():
    # TinyLlama's 0.6 GB beside a 70B model's 18 GB per chip, and far below a GB200's 199 GB
    seed = frames.system_frame(examples.SEED_COMPARISON)
    ax = plots.memory_breakdown(frames.memory_frame(seed), ax=new_ax())
    assert ax.get_yscale() == "log"
    one = frames.system_frame({"A": examples.SEED_SYSTEM_REQUEST})
    ax = plots.memory_breakdown(frames.memory_frame(one), ax=new_ax())
    assert ax.get_ylim()[1] < 5 * one["memory_per_chip_gb"].iloc[0]  # scaled to the bar, capacity in words
    assert any("above the scale" in t.get_text() for t in ax.texts)


def test_predicted_vs_measured_names_each_axis_once():
    frame = pd.DataFrame({"measured_ttft_ms": [1.0, 10.0, 100.0], "predicted_ttft_ms": [2.0, 9.0, 120.0]})
    ax = plots.predicted_vs_measured(frame, "predicted_ttft_ms", "measured_ttft_ms", ax=new_ax())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("measured TTFT (ms)", "predicted TTFT (ms)")


def test_latency_vs_batch_draws_ttft_and_tpot():
    frame = frames.system_frame({b: request_8b(batch=b) for b in (1, 4, 16, 64)})
    ax = plots.latency_vs_batch(frame, ax=new_ax())
    ttft, tpot = ax.lines
    assert list(ttft.get_xdata()) == [1, 4, 16, 64]
    assert list(ttft.get_ydata()) == list(frame["ttft_ms"]) and list(tpot.get_ydata()) == list(frame["tpot_ms"])
    # TTFT never falls as the batch grows (more prompt tokens per pass)
    assert np.all(np.diff(ttft.get_ydata()) >= 0)


def test_pareto_front_joins_the_front_rows():
    frame = pd.DataFrame({"tpot_ms": [1.0, 2.0, 2.0, 4.0], "throughput_tokens_s": [10.0, 30.0, 20.0, 50.0],
                          "pareto": [True, True, False, True]})
    for front in ("pareto", frame.iloc[[3, 0, 1]]):  # a flag column, or the front's rows in any order
        ax = plots.pareto_front(frame, ax=new_ax(), front=front)
        line = ax.lines[0]
        assert list(line.get_xdata()) == [1.0, 2.0, 4.0] and list(line.get_ydata()) == [10.0, 30.0, 50.0]
        assert len(ax.collections[0].get_offsets()) == 4  # every configuration is drawn


def test_heatmap_shows_the_pivot_and_leaves_holes_blank():
    table = pd.DataFrame([[1.0, 2.0], [np.nan, 4.0]], index=pd.Index([1, 2], name="batch_size"),
                         columns=pd.Index([1024, 2048], name="input_seq"))
    ax = plots.heatmap(table, ax=new_ax(), value="ttft_ms")
    shown = ax.images[0].get_array()
    assert shown[0, 1] == 2.0 and (np.ma.is_masked(shown[1, 0]) or np.isnan(shown[1, 0]))
    assert len(ax.texts) == 3 and ax.get_xlabel() == "input tokens"


def test_predicted_vs_measured_plots_pairs_and_diagonal():
    frame = pd.DataFrame({"measured": [1.0, 10.0, 100.0], "predicted": [2.0, 9.0, 120.0]})
    ax = plots.predicted_vs_measured(frame, "predicted", "measured", ax=new_ax())
    assert ax.collections[0].get_offsets().tolist() == [[1.0, 2.0], [10.0, 9.0], [100.0, 120.0]]
    diagonal = ax.lines[0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())


def test_error_histogram_counts_every_finite_point():
    frame = pd.DataFrame({"err": [-1.0, -0.5, 0.0, 0.1, 0.2, np.inf], "mode": list("aabbbb")})
    ax = plots.error_histogram(frame, "err", ax=new_ax(), by="mode", bins=4)
    counted = sum(p.get_path().vertices[:, 1].max() > 0 for p in ax.patches)
    assert counted == 2  # one outline per mode
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (2)", "b (4)"]
    assert ax.lines[0].get_xdata()[0] == 0  # the zero line


# -- the README's pictures and the docstring examples ----------------------------------------------------------


def test_perfkit_figures_writes_the_readme_pictures(tmp_path):
    from perfkit import cli

    assert cli.main(["figures", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["comparison.png", "memory.png", "pareto.png"]
    for path in tmp_path.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    # the README shows exactly these pictures
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(f"docs/images/{name}" in readme for name in written)


@pytest.mark.parametrize("module", ["perfkit.plots", "perfkit.figures", "perfkit.widgets.frames"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
