"""`perfkit demo`, the README's main job: the seed's three responses, a sweep table, its front and a plot."""
from __future__ import annotations

import json

import pandas as pd

import perfkit
from perfkit import examples
from perfkit.cli import main


def test_demo_prints_the_seed_responses_and_writes_the_sweep(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    blocks = out.split("# ")
    bodies = {b.split("\n", 1)[0]: b.split("\n", 1)[1] for b in blocks if b.startswith(("GET", "POST"))}
    system = json.loads(bodies["POST /config/system-metrics"])
    assert system == json.loads(json.dumps(perfkit.system_metrics(examples.SEED_SYSTEM_REQUEST)))
    layer = json.loads(bodies["POST /config/layer-metrics"])
    assert layer["layer_type"] == "attention" and layer["num_instances"] == 22
    table = pd.read_csv(tmp_path / "sweep.csv")
    front = pd.read_csv(tmp_path / "pareto.csv")
    assert len(table) == 3 * 9 * 2 * 4 * 2  # hardware x batch x prompt x tensor parallel x dtype
    assert front["valid"].all() and front["tpot_ms"].is_monotonic_increasing
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
