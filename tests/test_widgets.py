"""Widget panels driven from Python: set widget values, read what the panel shows.

What a panel shows must be what the public functions answer for the configuration its widgets describe;
only degrees a layer accepts are offered; a configuration that cannot run is explained in the panel.
"""
from __future__ import annotations

import json
import re

import numpy as np

import pytest

pytest.importorskip("ipywidgets")

import perfkit  # noqa: E402
from perfkit import catalog  # noqa: E402
from perfkit.engine.layout import valid_tensor_parallel  # noqa: E402
from perfkit import examples  # noqa: E402
from perfkit.widgets import ComparisonPanel, ConfigForm, ConfigPanel  # noqa: E402
from perfkit.widgets import frames, render  # noqa: E402
from perfkit.widgets.compare import css_class  # noqa: E402

LLAMA_8B = "meta-llama/Llama-3.1-8B"
MIXTRAL = "mistralai/Mixtral-8x7B-v0.1"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def options(box) -> list:
    return [o[1] if isinstance(o, tuple) else o for o in box.options]


def same_configuration(shown: dict, asked: dict) -> bool:
    """The form spells out every offered degree; a request may also spell out degrees of 1 that a layer does
    not offer. Both describe the same configuration when every value agrees (absent = 1)."""
    layers = set(shown.get("layers", {})) | set(asked.get("layers", {}))
    for layer in layers:
        a, b = shown["layers"].get(layer, {}), asked.get("layers", {}).get(layer, {})
        if any(a.get(k, 1) != b.get(k, 1) for k in set(a) | set(b) if k != "dtype") or \
                a.get("dtype", b.get("dtype")) != b.get("dtype", a.get("dtype")):
            return False
    rest = lambda r: {k: v for k, v in r.items() if k != "layers"}  # noqa: E731
    return rest(shown) == rest(asked)


# -- the form ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", perfkit.list_models())
def test_form_offers_only_what_each_layer_accepts(model_id):
    form = ConfigForm({**examples.SEED_SYSTEM_REQUEST, "model_id": model_id, "layers": {}})
    spec = catalog.model_spec(model_id)
    for layer in perfkit.layers(model_id)["layers"]:
        boxes = form.degrees[layer["type"]]
        assert list(boxes) == layer["available_parallelism"]
        assert options(form.dtypes[layer["type"]]) == layer["available_dtypes"]
        if "tensor_parallel" in boxes and layer["type"] in ("attention", "feedforward"):
            tp = options(boxes["tensor_parallel"])
            assert tp == [t for t in valid_tensor_parallel(spec, layer["type"], 64)]
        if layer["type"] == "attention":
            assert all(spec.num_heads % t == 0 for t in options(boxes["tensor_parallel"]))
        if "expert_parallel" in boxes:
            assert all(spec.num_experts % e == 0 for e in options(boxes["expert_parallel"]))
    assert form.request()["model_id"] == model_id


def test_form_round_trips_a_request_and_rejects_what_it_cannot_show():
    form = ConfigForm(examples.SEED_SYSTEM_REQUEST)
    assert same_configuration(form.request(), examples.SEED_SYSTEM_REQUEST)
    assert perfkit.system_metrics(form.request()) == perfkit.system_metrics(examples.SEED_SYSTEM_REQUEST)
    with pytest.raises(perfkit.PerfkitError, match=r"tensor_parallel=3 is not offered; valid choices: 1, 2, 4"):
        form.set_request({**examples.SEED_SYSTEM_REQUEST, "layers": {"attention": {"tensor_parallel": 3}}})
    with pytest.raises(perfkit.PerfkitError, match="does not offer tensor_parallel"):
        form.set_request({**examples.SEED_SYSTEM_REQUEST, "layers": {"norm": {"tensor_parallel": 2}}})
    with pytest.raises(perfkit.PerfkitError, match="cannot show the field 'tensor_paralel'"):
        form.set_request({**examples.SEED_SYSTEM_REQUEST, "tensor_paralel": 2})
    # the documented extra fields round-trip
    extra = {**examples.SEED_SYSTEM_REQUEST, "kv_dtype": "fp8", "pipeline_parallel": 2, "serving_mode": "continuous",
             "uncertainty": True}
    form.set_request(extra)
    assert {k: form.request()[k] for k in ("kv_dtype", "pipeline_parallel", "serving_mode", "uncertainty")} == \
        {"kv_dtype": "fp8", "pipeline_parallel": 2, "serving_mode": "continuous", "uncertainty": True}
    assert "kv_dtype" not in ConfigForm(examples.SEED_SYSTEM_REQUEST).request()  # absent stays absent
    # a new request starts afresh: what it leaves out is 1, not what the form showed before
    form.set_request({k: v for k, v in examples.SEED_SYSTEM_REQUEST.items() if k != "layers"})
    assert all(box.value == 1 for boxes in form.degrees.values() for box in boxes.values())
    with pytest.raises(perfkit.NotFoundError, match="unknown model_id"):
        form.set_request({**examples.SEED_SYSTEM_REQUEST, "model_id": "no/such-model"})


def test_changing_the_model_rebuilds_the_layers_and_keeps_valid_choices():
    form = ConfigForm({"model_id": LLAMA_8B, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                       "input_seq": 512, "output_seq": 64, "layers": examples.tensor_parallel(4)})
    assert "expert_parallel" not in form.degrees["feedforward"]
    form.model.value = MIXTRAL
    assert "expert_parallel" in form.degrees["feedforward"]
    assert form.request()["layers"]["attention"]["tensor_parallel"] == 4  # still offered, so kept


# -- the configuration panel ---------------------------------------------------------------------------------


def test_config_panel_shows_the_api_responses():
    panel = ConfigPanel(examples.SEED_SYSTEM_REQUEST, charts=False)
    expected = perfkit.system_metrics(examples.SEED_SYSTEM_REQUEST)
    assert panel.error == ""
    assert json.loads(panel.result_json.value) == expected == panel.response
    assert "TTFT (ms)" in panel.table.value and render.number(expected['ttft_ms']) in panel.table.value
    # the layer JSON is the layer-metrics response of the chosen layer and phase, exactly
    panel.layer_choice.value = "attention (prefill)"
    layer_request = {"model_id": examples.TINYLLAMA, "hardware_config": "nvidia_gb200_single",
                     "layer_type": "attention", "batch_size": 1, "seq_length": 2048, "phase": "prefill",
                     **examples.SEED_SYSTEM_REQUEST["layers"]["attention"]}
    assert json.loads(panel.layer_json.value) == perfkit.layer_metrics(layer_request)
    assert len(panel.layer_choice.options) == 8
    assert json.loads(panel.request_json.value) == panel.request()
    panel.layer_choice.value = "feedforward (decode)"
    panel.form.batch_size.value = 4  # an edit keeps the layer the user was reading
    assert panel.layer_choice.value == "feedforward (decode)"
    assert json.loads(panel.layer_json.value)["layer_type"] == "feedforward"
    assert "feedforward" in panel.layer_table.value and "decode" in panel.layer_table.value


def test_config_panel_follows_the_widgets():
    panel = ConfigPanel({"model_id": LLAMA_8B, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                         "input_seq": 1024, "output_seq": 128}, charts=False)
    before = panel.response
    panel.form.batch_size.value = 32
    assert panel.response == perfkit.system_metrics(panel.request())
    assert panel.response["throughput_tokens_s"] > before["throughput_tokens_s"]
    for layer_type in ("attention", "feedforward", "embedding"):
        panel.form.degrees[layer_type]["tensor_parallel"].value = 4
    assert panel.response["system"]["num_chips"] == 4
    # weights are sharded four ways: the busiest chip holds less than before
    assert panel.response["memory"]["memory_per_chip_gb"] < before["memory"]["memory_per_chip_gb"]
    # the serving options beyond the seed are offered from the catalog and sent only when changed
    assert "serving_engine" not in panel.request()
    assert list(panel.form.serving_engine.options) == catalog.list_serving_engines()
    panel.form.serving_engine.value = "vllm"
    panel.form.serving_mode.value = "continuous"
    assert panel.request()["serving_engine"] == "vllm" and panel.request()["serving_mode"] == "continuous"
    assert panel.response == perfkit.system_metrics(panel.request()) and panel.error == ""
    # the uncertainty band of the estimates (issue 6) is one choice away, and shown in the table
    assert "TTFT p10" not in panel.table.value
    panel.form.uncertainty.value = True
    band = panel.response["uncertainty"]
    assert panel.request()["uncertainty"] is True and panel.response == perfkit.system_metrics(panel.request())
    assert band["tpot_ms_p10"] < panel.response["tpot_ms"] < band["tpot_ms_p90"]
    assert "TTFT p10 (ms)" in panel.table.value and "TPOT p90 (ms)" in panel.table.value


def test_config_panel_explains_a_layout_that_cannot_run():
    panel = ConfigPanel({"model_id": LLAMA_8B, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                         "input_seq": 1024, "output_seq": 128, "layers": examples.tensor_parallel(8)},
                        charts=False)
    panel.form.degrees["feedforward"]["tensor_parallel"].value = 7  # offered (divides 14336) but 7 ∤ 8 chips
    assert "must divide" in panel.error and panel.response is None
    assert "cannot run" in panel.message.value and "must divide" in panel.message.value
    assert json.loads(panel.result_json.value)["field"] == "layers"
    assert panel.table.value == ""
    panel.form.degrees["feedforward"]["tensor_parallel"].value = 8
    assert panel.error == "" and panel.response["system"]["num_chips"] == 8


def test_random_edits_are_answered_or_explained_never_raised():
    import random

    rng = random.Random(5)
    panel = ConfigPanel(charts=False)
    explained = 0
    for model_id in perfkit.list_models():
        panel.form.model.value = model_id
        for _ in range(12):
            form = panel.form
            boxes = [*(b for d in form.degrees.values() for b in d.values()), *form.dtypes.values(),
                     form.hardware, form.pipeline_parallel, form.kv_dtype, form.serving_mode, form.serving_engine]
            box = rng.choice(boxes)
            box.value = rng.choice(options(box))
            if panel.error:
                explained += 1
                assert panel.response is None and "cannot run" in panel.message.value
            else:
                assert panel.response == perfkit.system_metrics(panel.request())
    assert explained > 0  # the walk did meet layouts that cannot run, and each was explained


def test_config_panel_warns_when_the_model_does_not_fit():
    panel = ConfigPanel({"model_id": "meta-llama/Llama-3.1-405B", "hardware_config": "nvidia_h100_hgx",
                         "batch_size": 1, "input_seq": 1024, "output_seq": 128}, charts=False)
    assert panel.response["system"]["fits_on_hardware"] is False
    # issue 12: prominent, with the figures and the smallest doubling that fits (from the API's notes)
    warning = panel.fit_warning.value
    assert "perfkit-warning" in warning and "does not fit" in warning
    assert re.search(r"\d+\.\d GB per chip &gt; 85\.5 GB", warning), warning
    assert "the smallest layout of this family that fits" in warning and "chips at" in warning


def test_comparison_panel_flags_a_configuration_that_does_not_fit():
    variants = examples.parallelism_variants()  # TP2 of Llama-3.3-70B needs ~104 GB on an 85.5 GB H100
    panel = ComparisonPanel(variants)
    assert not panel.frame.loc["TP2", "fits_on_hardware"] and panel.frame["fits_on_hardware"].sum() == 4
    assert panel.fit_warning.value.count("does not fit") == 1 and "TP2 does not fit" in panel.fit_warning.value
    note = panel.responses["TP2"]["system"]["notes"][0]
    assert note.startswith("does not fit") and "tensor_parallel x2" in note and "4 chips" in note


def test_labels_with_spaces_make_valid_css_classes():
    # issue 12: "TP4 x PP2" as a class name broke the browser's DOMTokenList (0 px wide columns)
    panel = ComparisonPanel(examples.parallelism_variants(), charts=False)
    classes = [c for form in panel.forms for c in form.widget._dom_classes if c.startswith("perfkit-form-")]
    assert len(classes) == len(set(classes)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c) for c in classes), classes
    assert css_class("TP4 x PP2") != css_class("TP4-x-PP2") and css_class("B") == "perfkit-form-B"


def test_kv_dtype_drop_down_shows_a_choice():
    # issue 12: options mixing ("as attention", None) with plain values made the value a tuple or None: blank
    form = ConfigForm()
    assert form.kv_dtype.index == 0 and form.kv_dtype.label == "as attention"
    assert all(isinstance(o, tuple) and len(o) == 2 for o in form.kv_dtype.options)
    form.kv_dtype.value = "fp8"
    assert form.request()["kv_dtype"] == "fp8"
    form.kv_dtype.index = 0
    assert "kv_dtype" not in form.request()


def test_a_panel_displays_as_its_widget_and_says_how_to_use_it_elsewhere():
    panel = ConfigPanel(charts=False)
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert "run this cell" in bundle["text/plain"]


def test_config_panel_redraws_its_charts():
    panel = ConfigPanel(examples.SEED_SYSTEM_REQUEST)
    first = panel.chart.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    panel.form.batch_size.value = 64
    assert panel.chart.value != first


# -- the comparison panel ------------------------------------------------------------------------------------


def test_comparison_panel_starts_with_the_seed_comparison():
    panel = ComparisonPanel(charts=False)
    assert all(same_configuration(panel.requests()[k], r) for k, r in examples.SEED_COMPARISON.items())
    for label, request in examples.SEED_COMPARISON.items():
        response = perfkit.system_metrics(request)
        assert panel.responses[label] == response
        assert panel.frame.loc[label, "tpot_ms"] == response["tpot_ms"]
    shown = json.loads(panel.result_json.value)
    assert shown == {label: perfkit.system_metrics(r) for label, r in examples.SEED_COMPARISON.items()}
    assert "B - A" in panel.table.value and "B / A" in panel.table.value
    assert "Llama-3.3-70B-Instruct" in panel.table.value and "nvidia_nvl72_rack" in panel.table.value


def test_comparison_panel_adds_edits_and_removes_configurations():
    panel = ComparisonPanel(charts=False)
    panel.add_button.click()
    assert panel.labels == ["A", "B", "C"] and panel.requests()["C"] == panel.requests()["B"]
    panel.forms[2].hardware.value = "nvidia_h200_hgx"
    assert panel.frame.loc["C", "hardware_config"] == "nvidia_h200_hgx"
    assert panel.responses["C"] == perfkit.system_metrics(panel.requests()["C"])
    assert "C - A" in panel.table.value
    panel.forms[0].widget.children[1].click()  # A's remove button
    assert panel.labels == ["B", "C"] and list(panel.frame.index) == ["B", "C"]
    panel.remove("B")
    assert panel.forms[0].widget.children[1].disabled  # the last one cannot be removed
    with pytest.raises(perfkit.PerfkitError, match="at least one"):
        panel.remove("C")
    with pytest.raises(perfkit.PerfkitError, match="no configuration 'Z'; valid choices: C"):
        panel.remove("Z")


def test_comparison_panel_keeps_the_runnable_ones_when_one_cannot_run():
    panel = ComparisonPanel(charts=False)
    panel.forms[1].degrees["feedforward"]["tensor_parallel"].value = 7
    assert set(panel.errors) == {"B"} and "must divide" in panel.errors["B"]
    assert list(panel.frame.index) == ["A"]
    assert "B cannot run" in panel.message.value
    assert json.loads(panel.result_json.value)["B"] == {"error": panel.errors["B"], "field": "layers"}


def test_comparison_panel_compares_parallelism_variants_with_charts():
    variants = examples.parallelism_variants(LLAMA_8B, "nvidia_h100_hgx", batch_size=8)
    panel = ComparisonPanel(variants)
    assert list(panel.frame.index) == list(variants)
    for label, request in variants.items():  # every field of every variant reached the API (fp8 KV cache too)
        assert panel.responses[label] == perfkit.system_metrics(request)
    # more tensor parallelism, less memory on each chip
    assert panel.frame.loc["TP8", "memory_per_chip_gb"] < panel.frame.loc["TP4", "memory_per_chip_gb"]
    first = panel.chart.value
    panel.forms[0].batch_size.value = 1
    assert panel.chart.value != first and panel.frame.loc[panel.labels[0], "batch_size"] == 1


# -- the sweep panel -----------------------------------------------------------------------------------------


@pytest.fixture
def sweep_panel():
    pytest.importorskip("perfkit.sweeps", reason="the sweep panel runs perfkit.sweep")
    from perfkit.widgets import SweepPanel

    panel = SweepPanel({"model_id": LLAMA_8B, "hardware_config": ["nvidia_h100_hgx", "nvidia_l40s_server"],
                        "batch_size": [1, 16, 256], "input_seq": [1024], "output_seq": [128],
                        "layers": {"all": {"tensor_parallel": [1, 2], "dtype": ["bf16", "fp8"]}}}, charts=False)
    return panel


def test_sweep_panel_runs_the_grid_its_widgets_describe(sweep_panel):
    from perfkit.sweeps import pareto_front

    panel = sweep_panel
    panel.run()
    assert panel.error == ""
    expected = perfkit.sweep(panel.grid())
    assert len(panel.table) == len(expected) == 2 * 3 * 2 * 2
    np.testing.assert_array_equal(panel.table["tpot_ms"].to_numpy(), expected["tpot_ms"].to_numpy())  # NaN: no run
    front = pareto_front(expected, x="tpot_ms", y="throughput_per_chip_tokens_s")
    assert panel.front.index.tolist() == front.index.tolist()
    assert f"{len(expected)} configurations" in panel.status.value
    assert panel.best["ttft_ms"] <= panel.max_ttft_ms.value and panel.best["tpot_ms"] <= panel.max_tpot_ms.value
    assert panel.best["valid"] and "best" in panel.best_table.value
    # the front's rows are the table's own rows, best throughput per chip for each TPOT
    assert panel.front["tpot_ms"].is_monotonic_increasing


def test_sweep_panel_offers_only_degrees_that_split_the_model(sweep_panel):
    panel = sweep_panel
    spec = catalog.model_spec(LLAMA_8B)
    assert all(spec.num_heads % t == 0 and spec.intermediate_size % t == 0 for t in panel.tensor_parallel.options)
    panel.model.value = "Qwen/Qwen2.5-7B-Instruct"  # 28 heads, 4 KV heads: no TP=8
    assert 8 not in panel.tensor_parallel.options and set(panel.tensor_parallel.value) <= {1, 2}
    assert list(panel.dtypes.options) == perfkit.layers("Qwen/Qwen2.5-7B-Instruct")["layers"][0]["available_dtypes"]


def test_sweep_panel_refuses_a_grid_it_cannot_show(sweep_panel):
    from perfkit.widgets import SweepPanel

    with pytest.raises(perfkit.PerfkitError, match="cannot show 'pipeline_parallel'"):
        SweepPanel({**sweep_panel.grid(), "pipeline_parallel": [1, 2]})
    with pytest.raises(perfkit.PerfkitError, match="cannot show 'layers.attention'"):
        SweepPanel({**sweep_panel.grid(), "layers": {"attention": {"context_parallel": [1, 2]}}})
    one = SweepPanel({**sweep_panel.grid(), "hardware_config": "nvidia_h200_hgx"}, charts=False)
    assert one.grid()["hardware_config"] == ["nvidia_h200_hgx"]


def test_sweep_panel_explains_bad_ranges_and_impossible_budgets(sweep_panel):
    panel = sweep_panel
    panel.batch_sizes.value = "1, two, 4"
    panel.run()
    assert "batch_size" in panel.error and "1, two, 4" in panel.status.value and panel.table is None
    panel.batch_sizes.value = "1, 4"
    panel.hardware.value = ()
    panel.run()
    assert "at least one hardware" in panel.error
    panel.hardware.value = ("nvidia_h100_hgx",)
    panel.max_tpot_ms.value = 0.001
    panel.run()
    assert panel.error == "" and panel.best is None and "no configuration" in panel.best_table.value


def test_sweep_panel_with_nothing_that_fits_says_so(sweep_panel):
    panel = sweep_panel
    panel._charts = True
    panel.model.value = "meta-llama/Llama-3.1-405B"
    panel.hardware.value = ("nvidia_l40s_server",)
    panel.tensor_parallel.value = (1,)
    panel.run()
    assert panel.error == "" and int(panel.table["valid"].sum()) == 0
    assert "none of the" in panel.status.value and "does not fit" in panel.status.value  # and why
    assert panel.best is None and panel.pareto_chart.value == b""
    panel.heat_x.value = panel.heat_y.value  # the same axis twice draws nothing rather than failing


def test_sweep_panel_draws_heatmaps_and_exports_csv(sweep_panel, tmp_path):
    import pandas as pd

    panel = sweep_panel
    panel._charts = True
    panel.run()
    assert panel.pareto_chart.value[:4] == b"\x89PNG"
    first = panel.heatmap_chart.value
    assert set(panel.heat_x.options) >= {"batch_size", "hardware_config"}
    panel.heat_value.value = "tpot_ms"
    assert panel.heatmap_chart.value != first
    panel.csv_path.value = str(tmp_path / "sub" / "sweep.csv")
    path = panel.export()
    written = pd.read_csv(path)
    assert len(written) == len(panel.table) and "reason" in written.columns
    assert str(len(panel.table)) in panel.export_status.value


@pytest.mark.parametrize("module", ["perfkit.widgets", "perfkit.widgets.form", "perfkit.widgets.config",
                                    "perfkit.widgets.compare", "perfkit.widgets.sweep"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_sweep_panel_picks_with_check_boxes_not_ctrl_click():
    import ipywidgets as w

    from perfkit.widgets import SweepPanel

    panel = SweepPanel(charts=False)
    for picks in (panel.hardware, panel.tensor_parallel, panel.dtypes):
        assert all(isinstance(b, w.Checkbox) for b in picks.boxes) and picks.boxes
    assert not any(isinstance(c, w.SelectMultiple) for c in panel.widget.children[0].children)
    seen = []
    panel.hardware.observe(lambda change: seen.append(change["new"]), names="value")
    panel.hardware.boxes[panel.hardware.options.index("nvidia_l40s_server")].value = True  # one click
    assert "nvidia_l40s_server" in panel.hardware.value and seen[-1] == panel.hardware.value
    assert panel.grid()["hardware_config"] == list(panel.hardware.value)


def test_tables_use_one_number_format():
    # issue 12: "3.326e+05" beside "1,078" in one table
    panel = ComparisonPanel(examples.parallelism_variants(batch_size=256), charts=False)
    text = panel.table.value
    assert "e+" not in text and "e-" not in text and "nan" not in text.lower()
    big = panel.frame["throughput_tokens_s"].max()
    assert big > 1000 and render.number(big) in text and "," in render.number(big)


def test_the_forms_offer_replicas_once_the_api_takes_them():
    from perfkit.inputs import SYSTEM_OPTIONAL
    from perfkit.widgets.form import HAS_REPLICAS

    assert HAS_REPLICAS == ("replicas" in SYSTEM_OPTIONAL)
    form = ConfigForm()
    shown = form.replicas in form.widget.children
    assert shown == HAS_REPLICAS
    if not HAS_REPLICAS:
        pytest.skip("the API has no replicas field yet")
    assert "replicas" not in form.request()  # the default stays implicit
    form.replicas.value = 2
    body = form.request()
    assert body["replicas"] == 2 and ConfigForm(body).request() == body
    panel = ComparisonPanel({"A": examples.SEED_SYSTEM_REQUEST, "B": {**examples.SEED_SYSTEM_REQUEST, "replicas": 2}},
                            charts=False)
    assert panel.responses["B"] == perfkit.system_metrics({**examples.SEED_SYSTEM_REQUEST, "replicas": 2})
    assert "replicas" in panel.table.value


def test_notebook_tables_rerun_to_the_same_output_without_nan():
    frame = frames.comparison_table(frames.system_frame(examples.parallelism_variants()))
    first, again = render.styled(frame), render.styled(frame.copy())
    assert first._repr_html_() == again._repr_html_()  # no random ids: nbval compares stored outputs
    assert "at 0x" not in repr(first) and "NaN" not in repr(first) and "nan" not in first._repr_html_().lower()


@pytest.mark.parametrize("module", ["perfkit.widgets.picks", "perfkit.widgets.render", "perfkit.calibration.predict"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_comparison_panel_sets_aggregated_against_disaggregated():
    """Issue 15: an aggregated and a disaggregated configuration side by side; the disaggregated one is edited
    through one form per pool, and a decode pool on another model is the API's 400, shown as an error."""
    from perfkit.examples import AGG_VS_DISAGG
    from perfkit.widgets.compare import ComparisonPanel

    panel = ComparisonPanel(AGG_VS_DISAGG, charts=False)
    assert list(panel.frame.index) == ["aggregated", "disaggregated"]
    assert panel.frame.loc["disaggregated", "num_chips"] == panel.frame.loc["aggregated", "num_chips"] == 4
    assert panel.responses["disaggregated"] == perfkit.system_metrics(AGG_VS_DISAGG["disaggregated"])
    form = panel.forms[1]
    form.forms["decode"].degrees["attention"]["tensor_parallel"].value = 4
    form.forms["decode"].degrees["feedforward"]["tensor_parallel"].value = 4
    form.forms["decode"].degrees["embedding"]["tensor_parallel"].value = 4
    assert panel.frame.loc["disaggregated", "num_chips"] == 2 + 4
    form.forms["decode"].model.value = "meta-llama/Llama-3.1-70B"
    assert "disaggregated.decode.model_id" in panel.errors["disaggregated"]
