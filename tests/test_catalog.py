"""The catalogs: listings come from the folders, files are checked when loaded, models resolve
local folder -> bundled -> hub (config.json only)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

import perfkit
from perfkit import NotFoundError, PerfkitError, catalog
from perfkit.errors import SpecError
from perfkit.specs import HardwareSpec, ModelSpec

REPO = Path(__file__).resolve().parent.parent
TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"

#: A small Llama-shaped config.json (the fields perfkit reads).
SMALL_CONFIG = {
    "model_type": "llama", "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 2,
    "num_hidden_layers": 3, "intermediate_size": 512, "vocab_size": 1000, "torch_dtype": "bfloat16",
    "max_position_embeddings": 4096,
}


@pytest.fixture
def fresh_models():
    """Model specs are cached per process: start and end each test with an empty cache."""
    catalog._model_spec.cache_clear()
    yield
    catalog._model_spec.cache_clear()


# -- hardware -----------------------------------------------------------------------------------------------


def test_list_hardware_is_the_folder():
    assert catalog.list_hardware() == sorted(p.stem for p in (REPO / "hardware").glob("*.yaml"))
    assert perfkit.list_hardware() == catalog.list_hardware()


def test_hardware_is_read_from_this_checkout():
    assert Path(str(catalog._hardware_root())).resolve() == (REPO / "hardware").resolve()


@pytest.mark.parametrize("name", catalog.list_hardware())
def test_every_hardware_file_loads(name):
    spec = catalog.hardware_spec(name)
    assert isinstance(spec, HardwareSpec) and spec.name == name
    assert catalog.hardware_spec(name) is spec  # cached
    assert spec.memory_bytes > 1e9 and spec.hbm_bytes_per_s > 1e11 and spec.chips_per_node >= 1
    # decimal units: a peak in FLOP/s, not in binary "tera" (2**40) or TFLOP/s
    assert all(v is None or 1e12 <= v <= 1e17 for v in spec.peak_flops_per_s.values())
    assert spec.max_chips is None or spec.max_chips >= spec.chips_per_node
    summary = spec.summary()
    assert summary["name"] == name and summary["memory_gb"] == spec.memory_bytes / 1e9
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.memory_bytes = 1.0


def _hardware_dict(name="nvidia_h100_hgx") -> dict:
    return yaml.safe_load((REPO / "hardware" / f"{name}.yaml").read_text())


def test_hardware_dict_round_trips():
    assert HardwareSpec.from_dict(_hardware_dict(), "test") == catalog.hardware_spec("nvidia_h100_hgx")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(hbm_gb_per_s=3350), r"test: unknown keys \['hbm_gb_per_s'\]"),
    (lambda d: d.pop("memory_bytes"), r"test: missing keys \['memory_bytes'\]"),
    (lambda d: d["efficiency"].update(matmull=0.7), r"test: unknown keys \['matmull'\]"),
    (lambda d: d["efficiency"].pop("hbm"), r"test: missing keys \['hbm'\]"),
    (lambda d: d["peak_flops_per_s"].update(tf32=1e15), r"test: unknown keys \['tf32'\]"),
    (lambda d: d["peak_flops_per_s"].pop("bf16"), r"test: missing keys \['bf16'\]"),
    (lambda d: d.update(memory_bytes=0), r"test: memory_bytes must be positive"),
    (lambda d: d["efficiency"].update(hbm=1.5), r"test: efficiency.hbm must be in \(0, 1\]"),
    (lambda d: d.update(efficiency=0.8), r"test: 'efficiency' must be a mapping"),
    (lambda d: d.update(peak_flops_per_s=None), r"test: expected a mapping with keys \['bf16', .*got NoneType"),
])
def test_malformed_hardware_dict_is_a_spec_error(change, message):
    data = _hardware_dict()
    change(data)
    with pytest.raises(SpecError, match=message):
        HardwareSpec.from_dict(data, "test")


# -- models -------------------------------------------------------------------------------------------------


def test_list_models_is_the_folder():
    files = sorted(p.name for p in (REPO / "perfkit" / "models").glob("*_config.json"))
    assert catalog.list_models() == sorted(f[: -len("_config.json")].replace("--", "/", 1) for f in files)
    assert TINY in catalog.list_models()


@pytest.mark.parametrize("model_id", catalog.list_models())
def test_every_bundled_model_loads(model_id):
    spec = catalog.model_spec(model_id)
    assert isinstance(spec, ModelSpec) and spec.name == model_id
    assert spec.num_heads % spec.num_kv_heads == 0
    assert spec.num_layers >= 1 and spec.hidden_size >= 1 and spec.vocab_size >= 1
    assert spec.is_moe == (spec.num_experts > 0)
    assert spec.num_moe_layers <= spec.num_layers
    assert abs(sum(f for f, _ in spec.window_fractions) - 1.0) < 1e-12


ALIASES = json.loads((REPO / "perfkit" / "models" / "aliases.json").read_text())


@pytest.mark.parametrize("alias, base", sorted(ALIASES.items()))
def test_aliases_resolve_to_the_base_numbers(alias, base):
    assert base in catalog.list_models() and alias not in catalog.list_models()
    spec = catalog.model_spec(alias)
    assert spec.name == alias
    assert dataclasses.replace(spec, name=base) == catalog.model_spec(base)


def test_instruct_alias_answers_like_the_base():
    body = {"hardware_config": "nvidia_h100_hgx", "batch_size": 4, "input_seq": 512, "output_seq": 64,
            "layers": {"attention": {"tensor_parallel": 8}, "feedforward": {"tensor_parallel": 8}}}
    alias = perfkit.system_metrics({"model_id": "meta-llama/Llama-3.1-70B-Instruct", **body})
    base = perfkit.system_metrics({"model_id": "meta-llama/Llama-3.1-70B", **body})
    assert alias == base


def test_local_folder_is_searched_first(tmp_path, monkeypatch, fresh_models):
    local = tmp_path / "one"
    local.mkdir()
    (local / "local-org--small_config.json").write_text(json.dumps(SMALL_CONFIG))
    # a local copy of a bundled model wins over the bundled one
    (local / "TinyLlama--TinyLlama-1.1B-Chat-v1.0_config.json").write_text(json.dumps(SMALL_CONFIG))
    second = tmp_path / "two"
    second.mkdir()
    (second / "other-org--small_config.json").write_text(json.dumps({**SMALL_CONFIG, "num_hidden_layers": 5}))
    monkeypatch.setenv("PERFKIT_MODEL_DIR", f"{local}{os.pathsep}{second}")

    assert perfkit.layers("local-org/small")["layers"][0]["count"] == 3
    assert perfkit.layers(TINY)["layers"][0]["count"] == 3
    assert perfkit.layers("other-org/small")["layers"][0]["count"] == 5
    spec = catalog.model_spec("local-org/small")
    assert (spec.hidden_size, spec.num_kv_heads, spec.head_dim) == (256, 2, 32)
    r = perfkit.system_metrics({"model_id": "local-org/small", "hardware_config": "nvidia_h100_hgx",
                                "batch_size": 1, "input_seq": 16, "output_seq": 16})
    assert r["system"]["num_chips"] == 1


@pytest.mark.parametrize("text, message", [
    ("{not json", r"local-org--bad_config\.json: not valid JSON"),
    ("[1, 2]", r"config\.json must hold an object"),
    (json.dumps({k: v for k, v in SMALL_CONFIG.items() if k != "hidden_size"}), r"lacks 'hidden_size'"),
    (json.dumps({k: v for k, v in SMALL_CONFIG.items() if k != "vocab_size"}), r"lacks 'vocab_size'"),
])
def test_malformed_local_config_is_a_spec_error(tmp_path, monkeypatch, fresh_models, text, message):
    (tmp_path / "local-org--bad_config.json").write_text(text)
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    with pytest.raises(SpecError, match=message):
        perfkit.layers("local-org/bad")


def _forbid_network(monkeypatch):
    """Any attempt to reach the hub fails the test."""
    import socket

    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args} {kwargs}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


def test_offline_unknown_model_fails_at_once_without_network(monkeypatch, fresh_models):
    _forbid_network(monkeypatch)
    with pytest.raises(NotFoundError, match=r"unknown model_id 'acme/unknown'.*valid choices: .*" + TINY) as info:
        catalog.model_spec("acme/unknown")
    assert info.value.status == 404


def test_unreachable_hub_fails_without_calling_the_client(monkeypatch, fresh_models):
    _forbid_network(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(catalog, "_hub_reachable", lambda: False)
    with pytest.raises(NotFoundError, match=r"unknown model_id 'acme/unknown'"):
        catalog.model_spec("acme/unknown")


def test_hub_fetches_config_json_only(tmp_path, monkeypatch, fresh_models):
    import huggingface_hub

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL_CONFIG, "num_hidden_layers": 7}))
    calls = []

    def fake_download(*args, **kwargs):
        calls.append((args, kwargs))
        return str(config)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(catalog, "_hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)

    assert perfkit.layers("acme/hub-only")["layers"][0]["count"] == 7
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert not args
    assert kwargs["repo_id"] == "acme/hub-only" and kwargs["filename"] == "config.json"
    assert set(kwargs) <= {"repo_id", "filename", "etag_timeout", "revision"}  # no weights, no remote code
    perfkit.layers("acme/hub-only")
    assert len(calls) == 1  # cached


def test_hub_failure_is_not_found(monkeypatch, fresh_models):
    import huggingface_hub

    def fail(**kwargs):
        raise OSError("401 gated repo")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(catalog, "_hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(NotFoundError, match=r"unknown model_id 'acme/gated'.*valid choices"):
        perfkit.layers("acme/gated")


def test_bundled_models_never_touch_the_hub(monkeypatch, fresh_models):
    _forbid_network(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for model_id in [*catalog.list_models(), *ALIASES]:
        catalog.model_spec(model_id)


def test_check_model_id():
    assert catalog.check_model_id(TINY) == TINY
    with pytest.raises(PerfkitError, match="is not a model id"):
        catalog.check_model_id("../" + TINY)
