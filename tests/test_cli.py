"""What the ``perfkit`` command does around its sub-commands (issue 12): ``--version``, a closed pipe, plain
help text, a summary line for every sweep, and ``calibrate`` writing to a user folder by default."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import perfkit
from perfkit.cli import BROKEN_PIPE, build_parser, main
from perfkit.sweeps.cli import NOTHING_RUNS

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"perfkit {perfkit.__version__}"


def test_a_reader_that_stops_early_gets_no_traceback():
    # `perfkit hardware | head -1`: the reader closes the pipe after one line
    writer = subprocess.Popen([sys.executable, "-m", "perfkit.cli", "hardware"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    writer.stdout.readline()
    writer.stdout.close()
    err = writer.stderr.read().decode()
    assert writer.wait(timeout=60) == BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_help_has_no_raw_double_backticks():
    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [p.format_help() for p in action.choices.values()]
            texts += [a.help or "" for a in action._choices_actions]
    assert len(texts) > 10 and not [t for t in texts if "``" in t]


SWEEP = ["sweep", "--model", "meta-llama/Llama-3.1-70B", "--hardware", "nvidia_h100_hgx", "--no-progress"]


def test_every_sweep_ends_with_a_summary_line(capsys, tmp_path):
    out = tmp_path / "s.csv"
    assert main([*SWEEP, "--tp", "1,3,8", "--batch", "1,64", "--input-seq", "1024", "--output-seq", "128",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("perfkit sweep: 2 of 6 configurations run; best throughput_per_chip_tokens_s")
    assert "layers.all.tensor_parallel=8" in summary and "top reasons" in summary
    assert "tensor_parallel=3" in summary and "does not fit" in summary
    table = pd.read_csv(out)
    assert (table["input_seq"] == 1024).all() and (table["output_seq"] == 128).all()  # fixed settings kept


def test_a_sweep_where_nothing_runs_says_so_and_fails(capsys, tmp_path):
    status = main([*SWEEP, "--tp", "1", "--batch", "512,1024", "--input-seq", "32768", "--output-seq", "1024",
                   "-o", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert status == NOTHING_RUNS
    assert "NONE of the 2 configurations runs" in err and "2 x does not fit" in err


def test_pareto_png_draws_one_labelled_front_per_workload(tmp_path, monkeypatch):
    from perfkit import plots

    drawn = {}
    original = plots.pareto_fronts

    def spy(fronts, by, **kwargs):
        drawn["by"], drawn["fronts"] = by, fronts
        ax = original(fronts, by, **kwargs)
        drawn["labels"] = [t.get_text() for t in ax.get_legend().get_texts()]
        drawn["scales"] = ax.get_xscale(), ax.get_yscale()
        return ax

    monkeypatch.setattr(plots, "pareto_fronts", spy)
    png = tmp_path / "front.png"
    assert main(["sweep", "--model", "meta-llama/Llama-3.1-8B,Qwen/Qwen3-32B", "--hardware", "nvidia_h100_hgx",
                 "--tp", "1,2,4", "--batch", "1,8,64", "--input-seq", "1024,8192", "--output-seq", "128",
                 "--no-progress", "-o", str(tmp_path / "s.parquet"), "--pareto-png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["by"] == ["model_id", "input_seq"] and drawn["scales"] == ("log", "log")
    assert len(drawn["labels"]) == 4 and any("Qwen3-32B, input tokens 8192" in t for t in drawn["labels"])
    for _, front in drawn["fronts"].groupby(["model_id", "input_seq"], observed=True):
        assert front["tpot_ms"].is_monotonic_increasing or len(front) == 1


def test_calibrate_without_out_dir_writes_to_the_user_cache(tmp_path, monkeypatch):
    from perfkit import catalog
    from perfkit.calibration.cli import default_out_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_out_dir() == tmp_path / "perfkit" / "calibrated"
    shipped = {p: p.read_bytes() for p in Path(catalog._hardware_root()).glob("*.yaml")}
    assert main(["calibrate", "--max-evals", "1"]) == 0
    written = default_out_dir()
    assert sorted(p.name for p in (written / "hardware").glob("*.yaml")) == sorted(p.name for p in shipped)
    assert (written / "serving" / "vllm.yaml").is_file()
    assert all(p.read_bytes() == text for p, text in shipped.items())  # the package's files are untouched


def test_a_dask_sweep_ends_with_the_summary_line_too(capsys, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:  # threads: starts in a second
        status = main([*SWEEP, "--tp", "1,3,8", "--batch", "1,64", "--input-seq", "1024", "--output-seq", "128",
                       "--dask", cluster.scheduler_address, "--chunk-rows", "2", "-o", str(tmp_path / "parts")])
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 0 and summary.startswith("perfkit sweep: 2 of 6 configurations run; best")
