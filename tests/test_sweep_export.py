"""Streaming export (CSV, Parquet), the ``perfkit sweep`` command, and the same sweep on a local Dask cluster."""
import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import perfkit  # noqa: E402
from perfkit import PerfkitError  # noqa: E402
from perfkit.cli import main  # noqa: E402
from perfkit.sweeps import export  # noqa: E402
from perfkit.sweeps.run import ONLY_IF_VALID  # noqa: E402

GRID = {"model_id": ["meta-llama/Llama-3.1-8B", "mistralai/Mixtral-8x7B-v0.1"],
        "hardware_config": ["nvidia_h100_hgx", "nvidia_gb200_single"],
        "batch_size": [1, 8, 64, 512], "input_seq": [512, 4096], "output_seq": 128,
        "layers": {"all": {"tensor_parallel": [1, 2, 3, 4, 8]}}}


def _same_table(read: pd.DataFrame, df: pd.DataFrame) -> None:
    assert list(read.columns) == list(df.columns)
    for name in df.columns:
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            assert read[name].astype(str).fillna("").tolist() == df[name].astype(str).tolist(), name
        elif df[name].dtype.kind == "f":
            np.testing.assert_allclose(read[name].to_numpy(float), df[name].to_numpy(), rtol=1e-15)
        else:
            assert (read[name].to_numpy() == df[name].to_numpy()).all(), name


@pytest.fixture(scope="module")
def table():
    return perfkit.sweep(GRID)


def test_parquet_streams_chunks_into_row_groups(tmp_path, table):
    import pyarrow.parquet as pq

    path = tmp_path / "sweep.parquet"
    assert export.write(GRID, path, chunk_rows=7) == len(table)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups > 10  # one per chunk: the table was never whole in memory
    read = pd.read_parquet(path)
    _same_table(read, table)
    assert isinstance(read["reason"].dtype, pd.CategoricalDtype)  # dictionary-encoded on disk
    assert json.loads(meta.metadata[b"perfkit"])["axes"] == table.attrs["axes"]


def test_csv_round_trips(tmp_path, table):
    path = tmp_path / "sweep.csv"
    assert export.write(GRID, path, chunk_rows=50) == len(table)
    read = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in ONLY_IF_VALID})
    # the fixed setting stays in the file (issue 12: a CSV dropped what had one value), right after the axes
    at = len(table.attrs["axes"])
    assert list(read.columns[at:at + 1]) == ["output_seq"] and (read["output_seq"] == 128).all()
    _same_table(read.drop(columns="output_seq"), table)


def test_unknown_output_format(tmp_path):
    with pytest.raises(PerfkitError, match=r"'\.xlsx'.*\.parquet"):
        export.write(GRID, tmp_path / "sweep.xlsx")


def test_cli_options_make_axes(tmp_path, capsys):
    out = tmp_path / "s.parquet"
    png = tmp_path / "front.png"
    code = main(["sweep", "--model", "meta-llama/Llama-3.1-70B", "--hardware", "nvidia_nvl72_rack",
                 "--tp", "1,2,4,8", "--batch", "1,8,64", "--input-seq", "1024,8192", "--output-seq", "256",
                 "--layer", "attention.context_parallel=1,2", "--dtype", "bf16,fp8", "-o", str(out),
                 "--serving-engine", "vllm", "--serving-mode", "static,continuous",
                 "--pareto-png", str(png), "--no-progress"])
    assert code == 0
    df = pd.read_parquet(out)
    assert len(df) == 4 * 3 * 2 * 2 * 2 * 2
    assert set(df["serving_engine"]) == {"vllm"} and set(df["serving_mode"]) == {"static", "continuous"}
    assert {"layers.all.tensor_parallel", "layers.attention.context_parallel", "layers.all.dtype"} <= set(df)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "192 configurations" in capsys.readouterr().err


def test_cli_grid_file_with_overrides_writes_csv_to_stdout(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model_id: meta-llama/Llama-3.1-8B\nhardware_config: nvidia_h100_hgx\n"
                    "batch_size: [1, 2]\ninput_seq: 128\noutput_seq: 16\n"
                    "layers:\n  attention:\n    tensor_parallel: [1, 2]\n")
    assert main(["sweep", str(grid), "--batch", "4,8,16", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # the fixed settings stay as columns after the axes (issue 12)
    assert lines[0].startswith("model_id,hardware_config,serving_engine,batch_size,layers.attention.tensor_parallel,"
                               "input_seq,output_seq,ttft_ms")
    assert len(lines) == 1 + 3 * 2


def test_cli_list_of_requests(tmp_path, capsys):
    path = tmp_path / "requests.json"
    path.write_text(json.dumps([{"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                                 "batch_size": b, "input_seq": 128, "output_seq": 16} for b in (1, 2, 3)]))
    assert main(["sweep", str(path), "--no-progress"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert main(["sweep", str(path), "--batch", "1,2"]) == 2
    assert "list of requests takes no axis options" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--batch", "1,x"], "integers"),
    (["--layer", "attention=1"], "TYPE.SETTING"),
    (["--tp", "1,3", "--layer", "norm.tensor_parallel=2"], "does not offer"),
    (["--dask", "local"], "give it with -o"),
    (["--chunk-rows", "0"], "chunk_rows must be a positive integer"),
])
def test_cli_bad_options_exit_2_with_a_message(argv, words, capsys):
    base = ["sweep", "--model", "meta-llama/Llama-3.1-8B", "--hardware", "nvidia_h100_hgx",
            "--input-seq", "128", "--output-seq", "16", "--batch", "1"]
    assert main(base + argv) == 2
    assert words in capsys.readouterr().err


def test_cli_bad_grid_file(tmp_path, capsys):
    bad = tmp_path / "grid.json"
    bad.write_text("{not json")
    assert main(["sweep", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_dask_local_cluster_writes_partitioned_parquet(tmp_path, table):
    distributed = pytest.importorskip("distributed")
    from perfkit.sweeps.distributed import to_dask, to_parquet

    folder = tmp_path / "parts"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        rows = to_parquet(GRID, folder, chunk_rows=16, client=client)
        lazy = to_dask(GRID, chunk_rows=16)
        assert lazy.npartitions > 4
        total = lazy["throughput_tokens_s"].sum().compute()
    assert rows == len(table)
    parts = sorted(folder.glob("part-*.parquet"))
    assert len(parts) > 4
    read = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    _same_table(read, table)
    assert total == pytest.approx(table["throughput_tokens_s"].sum(), rel=1e-12)


def test_dask_takes_a_list_of_requests(tmp_path):
    from perfkit.sweeps.distributed import to_parquet

    requests = [{"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                 "batch_size": b, "input_seq": 128, "output_seq": 16} for b in range(1, 8)]
    import dask

    with dask.config.set(scheduler="synchronous"):
        assert to_parquet(requests, tmp_path, chunk_rows=3) == 7
    read = pd.read_parquet(tmp_path)
    assert sorted(read["batch_size"]) == list(range(1, 8))
