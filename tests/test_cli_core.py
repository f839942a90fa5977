"""The core sub-commands of the ``perfkit`` console script: layers, metrics, models, hardware."""
from __future__ import annotations

import io
import json

import pytest

import perfkit
from perfkit import catalog
from perfkit.cli import main

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_layers(capsys):
    status, out, err = run(capsys, "layers", TINY)
    assert status == 0 and err == ""
    assert json.loads(out) == perfkit.layers(TINY)


def test_metrics_system_from_stdin(capsys, monkeypatch, seed_system_request):
    status, out, err = run(capsys, "metrics", "-", stdin=json.dumps(seed_system_request), monkeypatch=monkeypatch)
    assert status == 0 and err == ""
    assert json.loads(out) == perfkit.system_metrics(seed_system_request)


def test_metrics_layer_from_stdin(capsys, monkeypatch, seed_layer_request):
    status, out, err = run(capsys, "metrics", "-", stdin=json.dumps(seed_layer_request), monkeypatch=monkeypatch)
    assert status == 0
    assert json.loads(out) == perfkit.layer_metrics(seed_layer_request)


def test_metrics_from_a_file(capsys, tmp_path, seed_system_request):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(seed_system_request))
    status, out, _ = run(capsys, "metrics", str(path))
    assert status == 0 and json.loads(out)["system"]["num_chips"] == 8


def test_models(capsys):
    status, out, _ = run(capsys, "models")
    assert status == 0 and out.splitlines() == catalog.list_models()


def test_hardware(capsys):
    status, out, _ = run(capsys, "hardware")
    listed = json.loads(out)
    assert status == 0 and [h["name"] for h in listed] == catalog.list_hardware()
    h100 = next(h for h in listed if h["name"] == "nvidia_h100_hgx")
    # H100 SXM: 80 GiB HBM3, nvidia-smi's 81559 MiB, listed in decimal GB
    assert h100["chips_per_node"] == 8 and h100["memory_gb"] == 81559 * 2**20 / 1e9


def _one_line_error(status, out, err, *words):
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("perfkit: error: ") and "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize("request_body, words", [
    ({"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 0, "input_seq": 8, "output_seq": 8},
     ["batch_size", "got 0"]),
    ({"model_id": "acme/none", "hardware_config": "nvidia_h100_hgx", "batch_size": 1, "input_seq": 8,
      "output_seq": 8}, ["acme/none", TINY]),
    ({"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "layer_type": "mlp", "batch_size": 1,
      "seq_length": 8}, ["'mlp'", "attention"]),
    ([1, 2], ["JSON object"]),
])
def test_bad_request_exits_2_with_one_line(capsys, monkeypatch, request_body, words):
    _one_line_error(*run(capsys, "metrics", "-", stdin=json.dumps(request_body), monkeypatch=monkeypatch), *words)


def test_bad_json_exits_2(capsys, monkeypatch):
    _one_line_error(*run(capsys, "metrics", "-", stdin="{not json", monkeypatch=monkeypatch), "not valid JSON")


def test_missing_request_file_exits_2(capsys, tmp_path):
    _one_line_error(*run(capsys, "metrics", str(tmp_path / "nope.json")), "nope.json")


def test_unknown_model_for_layers_exits_2(capsys):
    _one_line_error(*run(capsys, "layers", "../etc/passwd"), "'../etc/passwd'")


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
