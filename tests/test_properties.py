"""Property tests over random valid requests: the seed's arithmetic and the design's invariants hold for
every model, hardware and layout, and one engine call over a batch of configurations equals the single
answers row by row (a sweep row is the single-request answer)."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perfkit
from perfkit import catalog
from perfkit.dtypes import DTYPES
from perfkit.engine import layout
from perfkit.engine.system import BOTTLENECKS, evaluate
from perfkit.inputs import system_config, to_arrays
from test_specs import check_layer_metrics, check_system_metrics

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POWERS = (1, 2, 4, 8, 16)


def attention_tp(model) -> list[int]:
    """Powers of two that split the query heads, and the KV heads or their replicas (not MLA)."""
    ok = [t for t in POWERS if model.num_heads % t == 0]
    if not model.is_mla:
        ok = [t for t in ok if model.num_kv_heads % t == 0 or t % model.num_kv_heads == 0]
    return ok


def feedforward_tp(model) -> list[int]:
    widths = [model.intermediate_size] if model.num_layers > model.num_moe_layers else []
    widths += [model.moe_intermediate_size] if model.is_moe else []
    return [t for t in POWERS if all(w % t == 0 for w in widths)]


@st.composite
def layouts(draw, model, hw) -> dict:
    """Random valid layer settings of ``model`` (powers of two, so every layer's chips divide the largest)."""
    runnable = [d for d in DTYPES if hw.compute_dtype(d)]
    dtype = st.sampled_from(runnable)
    small = st.sampled_from((1, 2))
    ffn = {"tensor_parallel": draw(st.sampled_from(feedforward_tp(model))), "sequence_parallel": draw(small),
           "dtype": draw(dtype)}
    if model.is_moe:
        ffn["expert_parallel"] = draw(st.sampled_from([e for e in (1, 2, 4, 8) if model.num_experts % e == 0]))
    return {
        "attention": {"tensor_parallel": draw(st.sampled_from(attention_tp(model))),
                      "context_parallel": draw(small), "data_parallel": draw(small), "dtype": draw(dtype)},
        "feedforward": ffn,
        "norm": {"sequence_parallel": draw(small), "dtype": draw(dtype)},
        "embedding": {"tensor_parallel": draw(st.sampled_from((1, 2, 4, 8))), "dtype": draw(dtype)},
    }


def fits_the_hardware(request: dict, hw) -> bool:
    chips = request.get("pipeline_parallel", 1) * max(
        math.prod(v for k, v in settings_.items() if k != "dtype") for settings_ in request["layers"].values())
    if hw.max_chips is not None and chips > hw.max_chips:
        return False
    return hw.scaleout_bytes_per_s is not None or chips <= hw.chips_per_node


@st.composite
def system_requests(draw, model_id=None, hardware=None) -> dict:
    model_id = model_id or draw(st.sampled_from(catalog.list_models()))
    hardware = hardware or draw(st.sampled_from(catalog.list_hardware()))
    model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hardware)
    request = {
        "model_id": model_id,
        "hardware_config": hardware,
        "batch_size": draw(st.integers(1, 512)),
        "input_seq": draw(st.integers(1, 32768)),
        "output_seq": draw(st.integers(1, 4096)),
        "layers": draw(layouts(model, hw)),
        "pipeline_parallel": draw(st.sampled_from([p for p in (1, 2, 4) if p <= model.num_layers])),
        "kv_dtype": draw(st.sampled_from(DTYPES)),
    }
    if not fits_the_hardware(request, hw):
        request["pipeline_parallel"] = 1
        request["layers"] = {t: {"dtype": s["dtype"]} for t, s in request["layers"].items()}
    return request


@SETTINGS
@given(request=system_requests())
def test_system_metrics_invariants(request):
    check_system_metrics(perfkit.system_metrics(request), request)


@st.composite
def layer_requests(draw) -> dict:
    system = draw(system_requests())
    layer_type = draw(st.sampled_from(layout.LAYER_TYPES))
    request = {"model_id": system["model_id"], "hardware_config": system["hardware_config"],
               "layer_type": layer_type, "batch_size": system["batch_size"],
               "seq_length": system["input_seq"], "phase": draw(st.sampled_from(("prefill", "decode"))),
               "pipeline_parallel": system["pipeline_parallel"], **system["layers"][layer_type]}
    return request


@SETTINGS
@given(request=layer_requests())
def test_layer_metrics_invariants(request):
    body = perfkit.layer_metrics(request)
    check_layer_metrics(body, request)
    assert body["memory"]["weights_per_chip_gb"] > 0
    assert body["compute"]["flops_per_chip_tflops"] > 0
    if request["layer_type"] != "attention":
        assert body["memory"]["kv_cache_per_chip_gb"] == 0


# -- a batch of configurations equals the single answers ---------------------------------------------------


def run_engine(model, hw, flats: list[dict]) -> dict:
    """One engine call over the configurations ``flats`` stacked along one axis."""
    per_row = [to_arrays(f) for f in flats]
    cfg = {key: np.stack([row[key] for row in per_row]) for key in per_row[0]}
    extra = {}
    if "profile" in inspect.signature(evaluate).parameters:  # the serving-engine profile, when the engine has one
        extra["profile"] = catalog.serving_profile(flats[0].get("serving_engine", "generic"))
    return evaluate(model, hw, cfg, **extra)


def flatten(body: dict) -> dict:
    out = {}
    for key, value in body.items():
        if isinstance(value, dict):
            out.update(flatten(value))
        else:
            out[key] = value
    return out


@st.composite
def request_batches(draw) -> list[dict]:
    """2 to 6 random requests for one model and one hardware (an engine call is per model/hardware pair);
    some may be impossible layouts, which the batch must flag instead of raising."""
    model_id = draw(st.sampled_from(catalog.list_models()))
    hardware = draw(st.sampled_from(catalog.list_hardware()))
    requests = draw(st.lists(system_requests(model_id, hardware), min_size=2, max_size=6))
    if draw(st.booleans()):  # a layout whose chips do not divide the largest: structural, not fatal in a batch
        requests[0]["layers"]["norm"]["sequence_parallel"] = 3
    return requests


@SETTINGS
@given(requests=request_batches())
def test_one_engine_call_equals_the_single_answers(requests):
    model = catalog.model_spec(requests[0]["model_id"])
    hw = catalog.hardware_spec(requests[0]["hardware_config"])
    flats = [system_config(r) for r in requests]
    batch = run_engine(model, hw, flats)
    assert all(np.shape(v) == (len(requests),) for v in batch.values())
    for i, request in enumerate(requests):
        try:
            single = flatten(perfkit.system_metrics(request))
        except perfkit.PerfkitError:
            assert batch["code"][i] & layout.STRUCTURAL, "the single call refused a row the batch let through"
            continue
        assert not batch["code"][i] & layout.STRUCTURAL
        figures = set(single) - {"notes"}
        assert figures <= set(batch), figures - set(batch)
        for key in figures:
            row, one = batch[key][i], single[key]
            if key == "bottleneck":  # the engine's index into BOTTLENECKS
                row = BOTTLENECKS[row]
            if isinstance(one, float):
                # the same numpy expressions over an array and over one element: equal to the last bits,
                # up to the vectorized transcendental functions (np.power) some CPUs evaluate differently
                assert row == pytest.approx(one, rel=1e-12, abs=0), key
            else:
                assert row == one, key
