"""The three responses keep the seed's keys, nesting, types and arithmetic (SEED-stateless-api.md).

Only the extra keys the design documents may appear: ``kind``/``experts`` on a layers entry; ``phase`` and
``time_per_instance_ms`` and ``hbm_traffic_per_instance_gb`` on layer metrics (whose ``parallelism`` may also list ``expert_parallel`` and
``data_parallel``); ``system.num_nodes`` and ``system.notes`` on system metrics.
"""
from __future__ import annotations

import math

import pytest

import perfkit
from perfkit import catalog
from perfkit.api import SIGNIFICANT_DIGITS, rounded

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


def _check_shape(body: dict, required: dict, optional: dict = {}) -> None:
    """``required``/``optional`` map each key to its type, or to a nested dict of the same form."""
    assert set(required) <= set(body), f"missing keys {set(required) - set(body)}"
    assert set(body) <= set(required) | set(optional), f"undocumented keys {set(body) - set(required) - set(optional)}"
    for key, value in body.items():
        kind = required.get(key, optional.get(key))
        if isinstance(kind, dict):
            assert isinstance(value, dict), key
            _check_shape(value, kind)
        else:
            # bool is an int in Python: an int field must not be a bool, and a float field must be a float
            assert isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)), \
                f"{key}={value!r} is not {kind}"


# -- GET /api/layers -----------------------------------------------------------------------------------------

LAYER_ENTRY = {"type": str, "count": int, "available_parallelism": list, "available_dtypes": list}


@pytest.mark.parametrize("model_id", catalog.list_models())
def test_layers_keys_and_types(model_id):
    body = perfkit.layers(model_id)
    # the seed's key, and the documented extra describing the deployment-wide degrees
    assert set(body) == {"layers", "deployment"} and isinstance(body["layers"], list)
    assert all(isinstance(v, str) for v in body["deployment"].values())
    for entry in body["layers"]:
        _check_shape(entry, LAYER_ENTRY, {"kind": str, "experts": dict})
        assert all(isinstance(p, str) for p in entry["available_parallelism"])
        assert all(isinstance(d, str) for d in entry["available_dtypes"])
        assert entry["count"] >= 1


def test_layers_seed_request():
    body = perfkit.layers(TINY)
    by_type = {e["type"]: e for e in body["layers"]}
    # The seed lists attention and feedforward first, 22 of each (TinyLlama config.json: num_hidden_layers 22).
    assert [e["type"] for e in body["layers"]][:2] == ["attention", "feedforward"]
    assert by_type["attention"]["count"] == by_type["feedforward"]["count"] == 22
    # Everything the seed lists is offered (perfkit offers more, e.g. data_parallel, fp4).
    assert {"tensor_parallel", "context_parallel"} <= set(by_type["attention"]["available_parallelism"])
    assert {"tensor_parallel", "sequence_parallel"} <= set(by_type["feedforward"]["available_parallelism"])
    for entry in body["layers"]:
        assert {"fp32", "fp16", "bf16", "fp8", "int8"} <= set(entry["available_dtypes"])
    assert by_type["attention"]["kind"] == "gqa"
    assert "experts" not in by_type["feedforward"]  # a dense model


def test_layers_moe_and_mla_extras():
    v3 = {e["type"]: e for e in perfkit.layers("deepseek-ai/DeepSeek-V3")["layers"]}
    assert v3["attention"]["kind"] == "mla"
    # DeepSeek-V3 config.json: n_routed_experts 256, num_experts_per_tok 8, n_shared_experts 1,
    # first_k_dense_replace 3 of 61 layers.
    assert v3["feedforward"]["experts"] == {"num_experts": 256, "experts_per_token": 8,
                                            "num_shared_experts": 1, "num_moe_layers": 58}
    assert "expert_parallel" in v3["feedforward"]["available_parallelism"]


# -- POST /config/layer-metrics ------------------------------------------------------------------------------

LAYER_METRICS = {
    "layer_type": str,
    "num_instances": int,
    "num_chips": int,
    "parallelism": dict,  # checked separately: its keys depend on the layer
    "memory": {k: float for k in ("weights_per_chip_gb", "activation_per_chip_gb", "kv_cache_per_chip_gb",
                                  "total_weights_gb", "total_activation_gb", "total_kv_cache_gb")},
    "compute": {"flops_per_chip_tflops": float, "total_flops_tflops": float},
    "bottleneck": {"compute_pct": float, "memory_pct": float, "communication_pct": float},
}
LAYER_METRICS_EXTRA = {"phase": str, "time_per_instance_ms": float, "hbm_traffic_per_instance_gb": float}
SEED_DEGREES = {"tensor_parallel", "context_parallel", "sequence_parallel"}


def check_layer_metrics(body: dict, request: dict) -> None:
    """Keys, types and the seed's arithmetic of one layer-metrics response."""
    _check_shape(body, LAYER_METRICS, LAYER_METRICS_EXTRA)
    par = body["parallelism"]
    assert SEED_DEGREES <= set(par) <= SEED_DEGREES | {"expert_parallel", "data_parallel"}
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in par.values())
    for degree in par:
        assert par[degree] == request.get(degree, 1)
    assert body["layer_type"] == request["layer_type"]
    n, mem, comp = body["num_instances"], body["memory"], body["compute"]
    # total_* = per-chip value x num_instances, exactly at the documented precision (perfkit.api.rounded)
    for part in ("weights", "activation", "kv_cache"):
        assert mem[f"total_{part}_gb"] == rounded(mem[f"{part}_per_chip_gb"] * n)
    assert comp["total_flops_tflops"] == rounded(comp["flops_per_chip_tflops"] * n)
    _check_no_float_noise(body)
    shares = body["bottleneck"]
    assert all(0.0 <= v <= 100.0 for v in shares.values())
    assert math.fsum(shares.values()) == pytest.approx(100.0, rel=1e-9)
    # chips = tp x cp x sp (x ep x dp x pp where given)
    chips = request.get("pipeline_parallel", 1)
    for degree in par:
        chips *= par[degree]
    assert body["num_chips"] == chips
    assert body["phase"] == request.get("phase", "prefill")
    assert body["time_per_instance_ms"] > 0


def test_layer_metrics_seed_request(seed_layer_request):
    body = perfkit.layer_metrics(seed_layer_request)
    check_layer_metrics(body, seed_layer_request)
    assert body["num_instances"] == 22
    assert body["parallelism"]["tensor_parallel"] == 4
    assert body["parallelism"]["context_parallel"] == 2
    # tp 4 x cp 2 (the seed's example figure of 4 chips is illustrative; DESIGN.md: chips = tp x cp x sp)
    assert body["num_chips"] == 8


@pytest.mark.parametrize("layer_type", ["attention", "feedforward", "norm", "embedding"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_layer_metrics_every_layer_type(layer_type, phase):
    request = {"model_id": "Qwen/Qwen3-30B-A3B", "hardware_config": "nvidia_h100_hgx",
               "layer_type": layer_type, "batch_size": 4, "seq_length": 1024, "phase": phase}
    if layer_type == "feedforward":
        request.update(tensor_parallel=2, expert_parallel=4)
    check_layer_metrics(perfkit.layer_metrics(request), request)


# -- POST /config/system-metrics -----------------------------------------------------------------------------

SYSTEM_METRICS = {
    "ttft_ms": float,
    "tpot_ms": float,
    "throughput_tokens_s": float,
    "total_latency_ms": float,
    "memory": {k: float for k in ("weight_memory_gb", "activation_memory_gb", "kv_cache_gb", "total_memory_gb",
                                  "memory_per_chip_gb", "hw_capacity_gb")},
    "system": dict,  # checked below: the seed's three keys plus num_nodes and notes
}
SYSTEM_PART = {"num_chips": int, "bottleneck": str, "fits_on_hardware": bool}
SYSTEM_PART_EXTRA = {"num_nodes": int, "notes": list}


def layer_chips(request: dict, layer_type: str) -> int:
    settings = request.get("layers", {}).get(layer_type, {})
    chips = request.get("pipeline_parallel", 1)
    for degree in ("tensor_parallel", "context_parallel", "sequence_parallel", "expert_parallel",
                   "data_parallel"):
        chips *= settings.get(degree, 1)
    return chips


def _floats(body):
    if isinstance(body, dict):
        for value in body.values():
            yield from _floats(value)
    elif isinstance(body, list):
        for value in body:
            yield from _floats(value)
    elif isinstance(body, float):
        yield body


def _check_no_float_noise(body: dict) -> None:
    """Every float of a response prints in at most SIGNIFICANT_DIGITS digits: no ``0.16724787200000002``
    (the last-bit noise of ``0.007602176 * 22``, issue 12)."""
    for value in _floats(body):
        digits = repr(value).lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
        assert len(digits) <= SIGNIFICANT_DIGITS, value


def test_json_has_no_float_noise(seed_layer_request):
    # the seed's layer: 22 instances of 0.007602176 GB of activations sum to 0.167247872 GB, not ...0002
    body = perfkit.layer_metrics(seed_layer_request)
    assert body["memory"]["total_activation_gb"] == 0.167247872
    assert '0.16724787200000002' not in __import__("json").dumps(body)


def check_system_metrics(body: dict, request: dict) -> None:
    """Keys, types and the seed's arithmetic of one system-metrics response (shared with the property tests)."""
    _check_shape(body, SYSTEM_METRICS)
    system, mem = body["system"], body["memory"]
    _check_shape(system, SYSTEM_PART, SYSTEM_PART_EXTRA)
    assert set(system) == set(SYSTEM_PART) | set(SYSTEM_PART_EXTRA)
    assert all(isinstance(n, str) for n in system["notes"])

    batch, osl = request["batch_size"], request["output_seq"]
    assert body["ttft_ms"] > 0 and body["tpot_ms"] > 0
    assert all(math.isfinite(v) for v in (body["ttft_ms"], body["tpot_ms"], *mem.values()))
    # The seed's arithmetic, exactly at the documented precision (DESIGN.md "Seed arithmetic, kept exactly";
    # perfkit.api.SIGNIFICANT_DIGITS: the derived figures are the rounded arithmetic of the rounded parts)
    assert body["total_latency_ms"] == rounded(body["ttft_ms"] + osl * body["tpot_ms"])
    assert body["throughput_tokens_s"] == rounded(batch * 1000 / body["tpot_ms"])
    assert mem["total_memory_gb"] == rounded(mem["weight_memory_gb"] + mem["activation_memory_gb"] + mem["kv_cache_gb"])
    _check_no_float_noise(body)
    assert all(v >= 0 for v in mem.values())
    if request.get("pipeline_parallel", 1) == 1:
        assert mem["memory_per_chip_gb"] == pytest.approx(mem["total_memory_gb"] / system["num_chips"], rel=1e-12)
    assert system["bottleneck"] in {"compute", "memory", "communication"}
    assert system["fits_on_hardware"] == (mem["memory_per_chip_gb"] <= mem["hw_capacity_gb"])
    hw = catalog.hardware_spec(request["hardware_config"])
    assert mem["hw_capacity_gb"] == hw.memory_bytes / 1e9
    chips = max(layer_chips(request, t) for t in ("attention", "feedforward", "norm", "embedding"))
    assert system["num_chips"] == chips
    assert system["num_nodes"] == math.ceil(chips / hw.chips_per_node)


def test_system_metrics_seed_request(seed_system_request):
    body = perfkit.system_metrics(seed_system_request)
    check_system_metrics(body, seed_system_request)
    # feedforward tensor_parallel 8 is the widest layer; nvidia_gb200_single is a 4-GPU tray: 2 trays.
    assert body["system"]["num_chips"] == 8
    assert body["system"]["num_nodes"] == 2
    assert body["system"]["fits_on_hardware"] is True
    # 186 GiB per GB200 GPU: nvidia-smi's 189471 MiB (hardware/nvidia_gb200_single.yaml), in decimal GB
    assert body["memory"]["hw_capacity_gb"] == 189471 * 2**20 / 1e9


def test_system_metrics_minimal_request_defaults_to_one_chip():
    request = {"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 2, "input_seq": 512,
               "output_seq": 64}
    body = perfkit.system_metrics(request)
    check_system_metrics(body, request)
    assert body["system"]["num_chips"] == 1 and body["system"]["num_nodes"] == 1


def test_system_metrics_pipeline_parallel_multiplies_chips():
    request = {"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h100_hgx", "batch_size": 8,
               "input_seq": 1024, "output_seq": 128, "pipeline_parallel": 2,
               "layers": {"attention": {"tensor_parallel": 8}, "feedforward": {"tensor_parallel": 8}}}
    body = perfkit.system_metrics(request)
    check_system_metrics(body, request)
    assert body["system"]["num_chips"] == 16 and body["system"]["num_nodes"] == 2
    single = perfkit.system_metrics({**request, "pipeline_parallel": 1})
    # each stage holds half of the layers: the per-chip footprint shrinks
    assert body["memory"]["memory_per_chip_gb"] < single["memory"]["memory_per_chip_gb"]


def test_responses_are_json_serializable(seed_layer_request, seed_system_request):
    import json

    for body in (perfkit.layers(TINY), perfkit.layer_metrics(seed_layer_request),
                 perfkit.system_metrics(seed_system_request)):
        assert json.loads(json.dumps(body)) == body


def test_requests_are_not_mutated(seed_system_request, seed_layer_request):
    import copy

    before = copy.deepcopy((seed_system_request, seed_layer_request))
    perfkit.system_metrics(seed_system_request)
    perfkit.layer_metrics(seed_layer_request)
    assert (seed_system_request, seed_layer_request) == before
