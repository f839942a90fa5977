"""The catalogs: listings come from the folders, files are checked when loaded, models resolve
local folder -> bundled -> hub (config.json only)."""
from __future__ import annotations

import copy
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
    catalog._hub_model_spec.cache_clear()
    yield
    catalog._model_spec.cache_clear()
    catalog._hub_model_spec.cache_clear()


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
    ("{not json", r"model 'local-org/bad': config\.json is not valid JSON"),
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


# -- broken catalog files: each is a clear error naming the entry and the field, never a path -----------------

HARDWARE_CACHES = ("_hardware_root", "_hardware_files", "_hardware_spec")
PROFILE_CACHES = ("_serving_root", "_profile_files", "_serving_profile")


def _clear(names) -> None:
    for name in names:
        getattr(catalog, name).cache_clear()


@pytest.fixture
def hardware_dir(tmp_path, monkeypatch):
    """A copy of the hardware catalog in ``PERFKIT_HARDWARE_DIR``, with fresh caches before and after."""
    folder = tmp_path / "hardware"
    folder.mkdir()
    for path in (REPO / "hardware").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(folder))
    _clear(HARDWARE_CACHES)
    yield folder
    _clear(HARDWARE_CACHES)


def _edit_yaml(path: Path, field: str, value_text: str) -> None:
    """Replace one top-level (or ``efficiency.``) field's value in a YAML file, keeping everything else."""
    key = field.split(".")[-1]
    indent = "  " if "." in field else ""
    lines = path.read_text().splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{indent}{key}:")]
    assert hits, field
    lines[hits[0]] = f"{indent}{key}: {value_text}"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("field, value, message", [
    ("scaleup_latency_s", "-0.5", r"scaleup_latency_s must be a number between 0 and 1, got -0\.5"),
    ("memory_bytes", ".nan", r"memory_bytes must be a finite number, got nan"),
    ("hbm_bytes_per_s", '"3350000000000"', r"hbm_bytes_per_s must be a number .*got the string '3350000000000'"),
    ("chips_per_node", "0", r"chips_per_node must be an integer between 1 and"),
    ("chips_per_node", "8.5", r"chips_per_node must be an integer, got 8\.5"),
    ("efficiency.hbm", "-1", r"efficiency\.hbm must be a fraction in \(0, 1\]"),
    ("efficiency.matmul_half_tokens", ".inf", r"efficiency\.matmul_half_tokens must be a finite number"),
    ("scaleout_latency_s", "true", r"scaleout_latency_s must be .*got True"),
])
def test_broken_hardware_file_names_entry_and_field(hardware_dir, field, value, message):
    _edit_yaml(hardware_dir / "nvidia_h100_hgx.yaml", field, value)
    with pytest.raises(SpecError, match=r"^hardware 'nvidia_h100_hgx': " + message) as info:
        catalog.hardware_spec("nvidia_h100_hgx")
    assert str(hardware_dir) not in str(info.value) and ".yaml" not in str(info.value)
    assert info.value.status == 500  # the server's data is broken, not the request
    assert catalog.hardware_spec("nvidia_h200_hgx").name == "nvidia_h200_hgx"  # the others still load
    assert catalog.catalog_problems() == [str(info.value)]


def test_collective_fit_written_as_a_string_is_refused(hardware_dir):
    path = hardware_dir / "nvidia_h100_hgx.yaml"
    data = yaml.safe_load(path.read_text())
    assert "collectives" in data, "the H100 file carries fitted collectives"
    data["collectives"]["allreduce"]["step_s"] = "0.000001"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"^hardware 'nvidia_h100_hgx': collectives\.allreduce\.step_s must be a "
                                        r"number between 0 and 0\.01, got the string '0\.000001'"):
        catalog.hardware_spec("nvidia_h100_hgx")


def test_yaml_parse_error_names_the_entry_and_the_line(hardware_dir):
    (hardware_dir / "nvidia_h100_hgx.yaml").write_text("name: nvidia_h100_hgx\nchip: [unclosed\n")
    with pytest.raises(SpecError, match=r"^hardware 'nvidia_h100_hgx': not valid YAML .*line \d+") as info:
        catalog.hardware_spec("nvidia_h100_hgx")
    assert str(hardware_dir) not in str(info.value)


def test_broken_hardware_file_is_parsed_once(hardware_dir, monkeypatch):
    (hardware_dir / "nvidia_h100_hgx.yaml").write_text("name: [")
    reads = []
    real = catalog._read_text
    monkeypatch.setattr(catalog, "_read_text", lambda entry, origin: reads.append(origin) or real(entry, origin))
    for _ in range(5):
        with pytest.raises(SpecError):
            catalog.hardware_spec("nvidia_h100_hgx")
    assert reads == ["hardware 'nvidia_h100_hgx'"]


def test_missing_hardware_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFKIT_HARDWARE_DIR", str(tmp_path / "nowhere"))
    _clear(HARDWARE_CACHES)
    try:
        with pytest.raises(SpecError, match=r"PERFKIT_HARDWARE_DIR is set but names no folder") as info:
            catalog.list_hardware()
        assert "nowhere" not in str(info.value)
        assert catalog.catalog_problems()[0] == str(info.value)
    finally:
        _clear(HARDWARE_CACHES)


@pytest.fixture
def serving_dir(tmp_path, monkeypatch):
    folder = tmp_path / "serving"
    folder.mkdir()
    for path in (REPO / "perfkit" / "serving").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text())
    monkeypatch.setenv("PERFKIT_SERVING_DIR", str(folder))
    _clear(PROFILE_CACHES)
    yield folder
    _clear(PROFILE_CACHES)


@pytest.mark.parametrize("field, value, message", [
    ("step_overhead_s", "-0.001", r"step_overhead_s must be a number between 0 and 10, got -0\.001"),
    ("memory_utilization", "1.5", r"memory_utilization must be a fraction in \(0, 1\]"),
    ("ramp", "'0.1'", r"ramp must be a number between 0 and 1000, got the string '0\.1'"),
    ("fitted_continuous", "{ttft_p10: 9.5, ttft_p90: 1.4, tpot_p10: 0.9, tpot_p90: 1.1}",
     r"band\.fitted_continuous\.ttft_p10 \(9\.5\) exceeds band\.fitted_continuous\.ttft_p90"),
])
def test_broken_serving_profile_names_entry_and_field(serving_dir, field, value, message):
    path = serving_dir / "vllm.yaml"
    text = path.read_text()
    lines = [(f"  {field}: {value}" if line.strip().startswith(f"{field}:") and line.startswith("  ") else
              f"{field}: {value}" if line.startswith(f"{field}:") else line) for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=r"^serving profile 'vllm': " + message) as info:
        catalog.serving_profile("vllm")
    assert str(serving_dir) not in str(info.value)
    assert catalog.serving_profile("sglang").name == "sglang"


@pytest.mark.parametrize("change, message", [
    ({"num_attention_heads": -8}, r"config\.json num_attention_heads must be an integer between 1 and 65536, got -8"),
    ({"num_attention_heads": 0}, r"config\.json num_attention_heads must be an integer between 1"),
    ({"num_hidden_layers": 10**12}, r"config\.json num_hidden_layers must be an integer between 1 and 10000"),
    ({"hidden_size": "256"}, r"config\.json hidden_size must be an integer .*got the string '256'"),
    ({"num_key_value_heads": 3}, r"num_attention_heads \(8\) is not a multiple of num_key_value_heads \(3\)"),
    ({"vocab_size": 1000.5}, r"config\.json vocab_size must be an integer, got 1000\.5"),
    ({"intermediate_size": True}, r"config\.json intermediate_size must be an integer .*got True"),
    ({"num_local_experts": 8, "num_experts_per_tok": 9}, r"experts per token \(9\) must be between 1 and"),
])
def test_broken_local_config_names_model_and_field(tmp_path, monkeypatch, fresh_models, change, message):
    (tmp_path / "local-org--bad_config.json").write_text(json.dumps({**SMALL_CONFIG, **change}))
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    with pytest.raises(SpecError, match=r"^model 'local-org/bad'.*" + message) as info:
        catalog.model_spec("local-org/bad")
    assert str(tmp_path) not in str(info.value) and "_config.json" not in str(info.value)
    assert catalog.catalog_problems() == [str(info.value)]


def test_nan_in_a_config_is_refused(tmp_path, monkeypatch, fresh_models):
    (tmp_path / "local-org--bad_config.json").write_text(json.dumps(SMALL_CONFIG).replace("256", "NaN"))
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    with pytest.raises(SpecError, match=r"^model 'local-org/bad'.*hidden_size must be a finite number, got nan"):
        catalog.model_spec("local-org/bad")


def test_huge_config_is_refused_unread_and_once(tmp_path, monkeypatch, fresh_models):
    with open(tmp_path / "local-org--huge_config.json", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse): invalid, and far past the size limit
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    parsed = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1) or real(*a, **k))
    for _ in range(5):
        with pytest.raises(SpecError, match=r"^model 'local-org/huge' .*larger than 1024 KiB, refused unread"):
            catalog.model_spec("local-org/huge")
    assert parsed == []
    assert catalog._model_spec.cache_info().misses == 1


def test_model_id_with_a_trailing_newline_is_not_a_model_id():
    for bad in (TINY + "\n", TINY + "\r\n", "\n" + TINY):
        with pytest.raises(PerfkitError, match="is not a model id") as info:
            catalog.model_spec(bad)
        assert info.value.status == 400


def test_model_id_pattern_is_what_is_enforced():
    import re

    pattern = re.compile(catalog.MODEL_ID_PATTERN)
    for good in (TINY, "a/b", "Org.x/na_me-1"):
        assert pattern.search(good) and catalog.check_model_id(good)
    for bad in ("a", "a/b/c", "../x/y", "a/" + "b" * 97, "-a/b"):
        assert not pattern.search(bad)
        with pytest.raises(PerfkitError):
            catalog.check_model_id(bad)


# -- the hub: a deadline, a bounded pool of its own, failures remembered ---------------------------------------


def _online_hub(monkeypatch, download, timeout_s: float) -> None:
    """The catalog asks a hub whose ``hf_hub_download`` is ``download``, on a fresh client of two threads."""
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(catalog, "_hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    client = catalog.HubClient(threads=2, timeout_s=timeout_s)
    monkeypatch.setattr(catalog, "_hub", lambda: client)


def test_a_hub_that_never_answers_is_bounded_and_remembered(monkeypatch, fresh_models):
    import threading

    release = threading.Event()
    calls = []

    def hanging_download(**kwargs):  # a hub that accepted the connection and never answers
        calls.append(kwargs["repo_id"])
        release.wait(30)
        raise OSError("read timed out")

    _online_hub(monkeypatch, hanging_download, timeout_s=0.2)
    try:
        with pytest.raises(NotFoundError, match=r"'acme/stuck-0'.*did not answer within 0\.2 s"):
            catalog.model_spec("acme/stuck-0")
        with pytest.raises(NotFoundError, match=r"'acme/stuck-1'.*did not answer"):
            catalog.model_spec("acme/stuck-1")
        # both slots are held by the stuck look-ups: the next unknown id is refused at once, not queued
        with pytest.raises(NotFoundError, match=r"'acme/stuck-2'.*every Hugging Face hub look-up is busy"):
            catalog.model_spec("acme/stuck-2")
        # a failed id is remembered: asking again does not reach the hub
        with pytest.raises(NotFoundError, match="did not answer"):
            catalog.model_spec("acme/stuck-0")
        assert sorted(calls) == ["acme/stuck-0", "acme/stuck-1"]
        assert catalog.model_spec(TINY).name == TINY  # bundled models never wait for the hub
    finally:
        release.set()
    assert catalog._hub_model_spec.cache_info().maxsize == catalog.HUB_CACHE_SIZE


def test_a_remembered_hub_failure_is_asked_again_once_it_is_older_than_its_ttl(monkeypatch, fresh_models):
    """A failure is remembered from when it happened (not until a clock epoch turns, which could forget it
    a moment later), then retried."""
    calls = []

    def missing(**kwargs):
        calls.append(kwargs["repo_id"])
        raise OSError("404")

    _online_hub(monkeypatch, missing, timeout_s=5.0)
    for _ in range(2):
        with pytest.raises(NotFoundError, match="not found on the Hugging Face hub"):
            catalog.model_spec("acme/missing")
    assert calls == ["acme/missing"]  # remembered
    monkeypatch.setattr(catalog, "HUB_NEGATIVE_TTL_S", 0.0)
    with pytest.raises(NotFoundError, match="not found on the Hugging Face hub"):
        catalog.model_spec("acme/missing")
    assert calls == ["acme/missing", "acme/missing"]  # expired: asked again


# -- any config.json: a spec with physical figures, or a SpecError; never another exception ------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ODD_VALUES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
               | st.lists(st.integers(-3, 100), max_size=3) | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
_KEYS = sorted({*SMALL_CONFIG, "head_dim", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size",
                "first_k_dense_replace", "mlp_only_layers", "sliding_window", "layer_types", "kv_lora_rank",
                "q_lora_rank", "qk_rope_head_dim", "n_shared_experts", "quantization_config", "tie_word_embeddings"})


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(_KEYS), _ODD_VALUES, min_size=1, max_size=3))
def test_any_config_is_a_physical_spec_or_a_spec_error(changes):
    text = json.dumps({**SMALL_CONFIG, **changes}, allow_nan=True)
    try:
        spec = catalog._build_model("fuzz/model", text)
    except SpecError as exc:
        assert exc.message.startswith("model 'fuzz/model'"), exc.message
        return
    assert 1 <= spec.num_layers <= 10_000 and 1 <= spec.num_heads and spec.num_heads % spec.num_kv_heads == 0
    assert spec.hidden_size >= 1 and spec.head_dim >= 1 and spec.vocab_size >= 1
    assert 0 <= spec.num_moe_layers <= spec.num_layers
    # and the engine turns it into finite, non-negative figures (one chip, the request's defaults)
    from perfkit.engine.system import evaluate
    from perfkit.inputs import system_config, to_arrays

    flat = system_config({"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                          "input_seq": 8, "output_seq": 8})
    figures = evaluate(spec, catalog.hardware_spec("nvidia_h100_hgx"), to_arrays(flat), catalog.serving_profile())
    for key in ("ttft_ms", "tpot_ms", "weight_memory_gb", "kv_cache_gb", "memory_per_chip_gb"):
        value = float(figures[key])
        assert 0 <= value < float("inf"), (key, value, changes)


_H100 = _hardware_dict("nvidia_h100_hgx")
_HW_FIELDS = ["chips_per_node", "max_chips", "memory_bytes", "hbm_bytes_per_s", "scaleup_bytes_per_s",
              "scaleup_latency_s", "scaleout_bytes_per_s", "scaleout_latency_s", "efficiency.matmul",
              "efficiency.hbm", "efficiency.scaleup", "efficiency.scaleout", "efficiency.matmul_half_tokens",
              "efficiency.expert_half_tokens", "peak_flops_per_s.bf16", "peak_flops_per_s.fp8"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(_HW_FIELDS), _ODD_VALUES, min_size=1, max_size=3))
def test_any_hardware_file_is_a_physical_spec_or_a_spec_error(changes):
    from perfkit.catalog_checks import check_hardware
    from perfkit.engine.system import evaluate
    from perfkit.inputs import system_config, to_arrays

    data = copy.deepcopy(_H100)
    for field, value in changes.items():
        *parents, key = field.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = value
    try:
        check_hardware(data, "hardware 'fuzz'")
        spec = HardwareSpec.from_dict(data, "hardware 'fuzz'")
    except SpecError as exc:
        assert exc.message.startswith("hardware 'fuzz': "), exc.message
        return
    flat = system_config({"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                          "input_seq": 8, "output_seq": 8})
    figures = evaluate(catalog.model_spec(TINY), spec, to_arrays(flat), catalog.serving_profile())
    for key in ("ttft_ms", "tpot_ms", "memory_per_chip_gb"):
        value = float(figures[key])
        assert 0 <= value < float("inf") or (int(figures["code"]) & ~(1 << 8)), (key, value, changes)
