"""Every class of bad input is a PerfkitError whose message names the bad value and the valid choices."""
from __future__ import annotations

import re

import pytest

import perfkit
from perfkit import NotFoundError, PerfkitError, catalog

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
LLAMA8 = "meta-llama/Llama-3.1-8B"
DTYPES_LISTED = "valid choices: fp32, fp16, bf16, fp8, fp8_block, int8, fp4, int4"


def system(**changes) -> dict:
    body = {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1, "input_seq": 128,
            "output_seq": 16, **changes}
    return perfkit.system_metrics(body)


def layer(**changes) -> dict:
    body = {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layer_type": "attention", "batch_size": 1,
            "seq_length": 128, **changes}
    return perfkit.layer_metrics(body)


def test_error_family():
    assert issubclass(PerfkitError, ValueError) and issubclass(NotFoundError, PerfkitError)
    assert PerfkitError.status == 400 and NotFoundError.status == 404
    err = PerfkitError("bad", field="batch_size")
    assert err.to_dict() == {"error": "bad", "field": "batch_size"}


# -- unknown names ------------------------------------------------------------------------------------------


def test_unknown_model_lists_bundled_models():
    with pytest.raises(NotFoundError, match=r"unknown model_id 'acme/no-such-model'.*valid choices: ") as info:
        system(model_id="acme/no-such-model")
    assert info.value.field == "model_id"
    for model_id in catalog.list_models():
        assert model_id in str(info.value)


@pytest.mark.parametrize("call", [lambda: perfkit.layers("acme/x"), lambda: layer(model_id="acme/x")])
def test_unknown_model_everywhere(call):
    with pytest.raises(NotFoundError, match=r"'acme/x'.*meta-llama/Llama-3.1-8B"):
        call()


def test_unknown_hardware_suggests_the_closest():
    with pytest.raises(NotFoundError, match=r"'nvidia_h100'; did you mean 'nvidia_h100_hgx'\? valid choices: ") as info:
        system(hardware_config="nvidia_h100")
    assert info.value.field == "hardware_config"
    assert all(name in str(info.value) for name in catalog.list_hardware())


@pytest.mark.parametrize("name", ["../hardware/nvidia_h100_hgx", "NVIDIA_H100_HGX", "", None, ["nvidia_h100_hgx"]])
def test_hardware_that_is_not_a_name(name):
    with pytest.raises(NotFoundError, match=r"unknown hardware_config .*valid choices: .*nvidia_h100_hgx"):
        system(hardware_config=name)


def test_unknown_layer_type():
    with pytest.raises(PerfkitError, match=r"'attn' is not valid; did you mean 'attention'\? "
                                           r"valid choices: attention, feedforward, norm, embedding") as info:
        system(layers={"attn": {}})
    assert info.value.field == "layers.attn"
    with pytest.raises(PerfkitError, match=r"layer_type='mlp' is not valid; valid choices: attention, feedforward"):
        layer(layer_type="mlp")


@pytest.mark.parametrize("where, call", [
    ("layers.attention.dtype", lambda v: system(layers={"attention": {"dtype": v}})),
    ("kv_dtype", lambda v: system(kv_dtype=v)),
    ("dtype", lambda v: layer(dtype=v)),
])
@pytest.mark.parametrize("value", ["bf17", "float16", "", 16])
def test_unknown_dtype(where, call, value):
    with pytest.raises(PerfkitError, match=re.escape(f"{where}={value!r} is not valid") + ".*" + DTYPES_LISTED) as info:
        call(value)
    assert info.value.field == where


def test_unknown_phase():
    with pytest.raises(PerfkitError, match=r"phase='generate' is not valid; valid choices: prefill, decode"):
        layer(phase="generate")


# -- sizes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["batch_size", "input_seq", "output_seq", "pipeline_parallel"])
@pytest.mark.parametrize("value, message", [
    (0, r"must be between 1 and \d+, got 0"),
    (-3, r"must be between 1 and \d+, got -3"),
    ("8", r"must be a positive integer, got '8'"),
    (True, r"must be a positive integer, got True"),
    (8.5, r"must be a positive integer, got 8.5"),
    (8.0, r"must be a positive integer, got 8.0 \(write 8\)"),
    (float("nan"), r"must be a positive integer, got nan"),
    (None, r"must be a positive integer, got None"),
    ([8], r"must be a positive integer, got \[8\]"),
])
def test_bad_sizes(field, value, message):
    with pytest.raises(PerfkitError, match=f"^{field} {message}") as info:
        system(**{field: value})
    assert info.value.field == field


@pytest.mark.parametrize("field, value", [("batch_size", 10**30), ("batch_size", 1 << 21), ("input_seq", 1 << 30),
                                          ("output_seq", 10**12), ("pipeline_parallel", 1 << 20)])
def test_absurdly_large_sizes(field, value):
    with pytest.raises(PerfkitError, match=rf"{field} must be between 1 and \d+, got {value}"):
        system(**{field: value})


@pytest.mark.parametrize("value", [0, 2.0, False, 1 << 40])
def test_bad_degrees(value):
    with pytest.raises(PerfkitError, match=r"layers\.attention\.tensor_parallel must be") as info:
        system(layers={"attention": {"tensor_parallel": value}})
    assert info.value.field == "layers.attention.tensor_parallel"


def test_bad_seq_length():
    with pytest.raises(PerfkitError, match=r"seq_length must be between 1 and \d+, got 0"):
        layer(seq_length=0)


# -- layouts ------------------------------------------------------------------------------------------------


def test_degree_the_layer_does_not_offer():
    with pytest.raises(PerfkitError, match=r"layers\.feedforward\.context_parallel=2: .*does not offer "
                                           r"context_parallel; it offers tensor_parallel, sequence_parallel"):
        system(layers={"feedforward": {"context_parallel": 2}})
    with pytest.raises(PerfkitError, match=r"expert_parallel=4: .*does not offer expert_parallel; it offers "
                                           r"tensor_parallel, sequence_parallel") as info:
        system(layers={"feedforward": {"expert_parallel": 4}})  # TinyLlama is dense
    assert info.value.field == "layers.feedforward.expert_parallel"
    with pytest.raises(PerfkitError, match=r"context_parallel=2: the feedforward layer .* does not offer") as info:
        layer(layer_type="feedforward", context_parallel=2)
    assert info.value.field == "context_parallel"


def test_tensor_parallel_must_split_the_heads():
    # TinyLlama config.json: 32 attention heads, 4 KV heads
    with pytest.raises(PerfkitError, match=r"tensor_parallel=3 does not split .*32 attention heads "
                                           r"\(4 KV heads\) evenly; valid choices: 1, 2, 4, 8, 16, 32$") as info:
        system(layers={"attention": {"tensor_parallel": 3}})
    assert info.value.field == "layers.attention.tensor_parallel"
    with pytest.raises(PerfkitError, match=r"tensor_parallel=64 does not split") as info:
        layer(tensor_parallel=64)
    assert info.value.field == "tensor_parallel"  # the layer-metrics request's own field name


def test_feedforward_tensor_parallel_must_divide_the_width():
    # TinyLlama config.json: intermediate_size 5632 = 2^9 x 11
    with pytest.raises(PerfkitError, match=r"tensor_parallel=3 does not divide the feed-forward width 5632; "
                                           r"valid choices: 1, 2, 4, 8, 11, 16"):
        system(layers={"feedforward": {"tensor_parallel": 3}})


def test_expert_parallel_must_divide_the_experts():
    # Qwen3-30B-A3B config.json: 128 experts
    with pytest.raises(PerfkitError, match=r"expert_parallel=3 does not divide 128 experts; "
                                           r"valid choices: 1, 2, 4, 8, 16, 32, 64, 128"):
        system(model_id="Qwen/Qwen3-30B-A3B", layers={"feedforward": {"expert_parallel": 3}})


def test_layer_chips_must_divide_the_system():
    with pytest.raises(PerfkitError, match=r"must divide the system's 8 chips, got attention 4, feedforward 8, "
                                           r"norm 3, embedding 1"):
        system(layers={"attention": {"tensor_parallel": 4}, "feedforward": {"tensor_parallel": 8},
                       "norm": {"sequence_parallel": 3}})


def test_layout_beyond_the_hardware_maximum():
    # hardware/google_tpu_v5e_pod.yaml: max_chips 256 (one pod)
    with pytest.raises(PerfkitError, match=r"needs 512 chips but google_tpu_v5e_pod has at most 256"):
        system(model_id=LLAMA8, hardware_config="google_tpu_v5e_pod",
               layers={"attention": {"tensor_parallel": 8, "context_parallel": 64}})
    # 256 is fine
    ok = system(model_id=LLAMA8, hardware_config="google_tpu_v5e_pod",
                layers={"attention": {"tensor_parallel": 8, "context_parallel": 32}})
    assert ok["system"]["num_chips"] == 256


def test_pipeline_deeper_than_the_model():
    with pytest.raises(PerfkitError, match=r"pipeline_parallel=23 exceeds .*22 layers; valid choices: 1 to 22"):
        system(pipeline_parallel=23)


def test_a_configuration_that_does_not_fit_is_an_answer_not_an_error():
    r = system(model_id="meta-llama/Llama-3.1-405B", hardware_config="nvidia_l40s_server")
    assert r["system"]["fits_on_hardware"] is False


# -- request structure --------------------------------------------------------------------------------------


@pytest.mark.parametrize("typo, field, suggestion", [
    ({"layers": {"attention": {"tensor_paralel": 2}}}, "layers.attention.tensor_paralel", "tensor_parallel"),
    ({"batch_sise": 2}, "batch_sise", "batch_size"),
    ({"kv_dtpye": "fp8"}, "kv_dtpye", "kv_dtype"),
])
def test_unknown_fields_are_errors_with_a_suggestion(typo, field, suggestion):
    with pytest.raises(PerfkitError, match=rf"unknown field '{field}'; did you mean '{suggestion}'\? valid choices: ") as info:
        system(**typo)
    assert info.value.field == field


def test_unknown_layer_metrics_field():
    with pytest.raises(PerfkitError, match=r"unknown field 'tensor_paralel'; did you mean 'tensor_parallel'\?"):
        layer(tensor_paralel=2)
    with pytest.raises(PerfkitError, match=r"unknown field 'input_seq'"):
        layer(input_seq=128)  # a system-metrics field


def test_keys_that_are_not_strings():
    body = {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1, "input_seq": 8,
            "output_seq": 8, 1: 2}
    with pytest.raises(PerfkitError, match=r"unknown field '1'"):
        perfkit.system_metrics(body)
    with pytest.raises(PerfkitError, match=r"unknown field 'layers.attention.1'"):
        system(layers={"attention": {1: 2}})
    with pytest.raises(PerfkitError, match=r"layers.1=1 is not valid; valid choices: attention"):
        system(layers={1: {}})


@pytest.mark.parametrize("missing", ["model_id", "hardware_config", "batch_size", "input_seq", "output_seq"])
def test_missing_required_field(missing):
    body = {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1, "input_seq": 8, "output_seq": 8}
    del body[missing]
    with pytest.raises(PerfkitError, match=rf"missing required field '{missing}'") as info:
        perfkit.system_metrics(body)
    assert info.value.field == missing


@pytest.mark.parametrize("model_id", ["../etc/passwd", "/etc/passwd", "C:\\x", "https://x/y", "a/../b", "org/a/b",
                                      "~/models", "org/na me", "", 5, None, {"id": TINY}])
def test_model_id_that_is_not_an_id(model_id):
    for call in (lambda: system(model_id=model_id), lambda: perfkit.layers(model_id),
                 lambda: layer(model_id=model_id)):
        with pytest.raises(PerfkitError, match=re.escape(f"model_id {model_id!r} is not a model id of the form "
                                                         "'org/name'") + r".*bundled models: .*" + re.escape(TINY)) as info:
            call()
        assert info.value.field == "model_id" and not isinstance(info.value, NotFoundError)


def test_model_id_path_is_never_opened(monkeypatch, tmp_path):
    # even a config that exists at the path must not be read: a model id is not a path
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PerfkitError, match="is not a model id"):
        perfkit.layers("./config.json")


@pytest.mark.parametrize("body", [[1, 2], "{}", None, 3, b"{}"])
def test_body_that_is_not_an_object(body):
    for call in (perfkit.system_metrics, perfkit.layer_metrics):
        with pytest.raises(PerfkitError, match=r"^the request body must be a JSON object, got \w+$"):
            call(body)


@pytest.mark.parametrize("value", [[{"type": "attention"}], "attention", 1, None])
def test_layers_that_is_not_an_object(value):
    with pytest.raises(PerfkitError, match=r"^layers must be an object keyed by layer type, got \w+$") as info:
        system(layers=value)
    assert info.value.field == "layers"


@pytest.mark.parametrize("value", [[1], "tp=2", None])
def test_layer_settings_that_are_not_an_object(value):
    with pytest.raises(PerfkitError, match=r"^layers\.attention must be a JSON object, got \w+$") as info:
        system(layers={"attention": value})
    assert info.value.field == "layers.attention"
