"""Models from ``PERFKIT_MODEL_DIR`` are listed wherever bundled ones are (issue 12: they resolved everywhere
but were missing from ``list_models()``, ``/api/models`` and the panels' model pickers)."""
from __future__ import annotations

import shutil
from importlib import resources

import pytest

import perfkit

LOCAL = "acme/Tiny-Local-1B"


@pytest.fixture
def local_model(tmp_path, monkeypatch):
    source = resources.files("perfkit.models") / "TinyLlama--TinyLlama-1.1B-Chat-v1.0_config.json"
    shutil.copy(str(source), tmp_path / "acme--Tiny-Local-1B_config.json")
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.setenv("PERFKIT_MODEL_DIR", str(tmp_path))
    return LOCAL


def test_listed_by_list_models(local_model):
    models = perfkit.list_models()
    assert local_model in models and "meta-llama/Llama-3.1-70B" in models and models == sorted(models)
    assert perfkit.system_metrics({"model_id": local_model, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                                   "input_seq": 128, "output_seq": 16})["system"]["num_chips"] == 1


def test_listed_by_the_api(local_model):
    from perfkit.server import create_app

    body = create_app({"SECRET_KEY": "test"}).test_client().get("/api/models").get_json()
    assert local_model in [m["id"] for m in body["models"]]


def test_offered_by_the_panels(local_model):
    pytest.importorskip("ipywidgets")
    from perfkit.widgets import ConfigForm, SweepPanel

    assert local_model in ConfigForm().model.options
    assert local_model in SweepPanel(charts=False).model.options
