"""Fitting the collective model of :mod:`perfkit.engine.timing` to measured NCCL and custom all-reduce timings.

The tables are ``shared/data/kernels/<system>/nccl_perf.*.parquet`` and ``custom_allreduce_perf.*.parquet``
(NVIDIA aiconfigurator-core 0.12.0, measured on 2, 4 and 8 GPUs of one NVLink domain; see that folder's
README). For each system and kind the fit minimizes the robust sum of squared log-ratios of the engine's own
:func:`perfkit.engine.timing.op_seconds` to the measured latency. The serving engine's custom all-reduce
(one-shot / two-shot kernels, what TP decode steps run under CUDA graphs: TensorRT-LLM's table) is fitted on
messages up to 16 MiB, where engines use it. ``fit_system`` returns the ``collectives`` block of a hardware
file, ``write_blocks`` writes it into the catalog's YAML files (``perfkit calibrate --collectives``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.timing import OPS, op_seconds
from ..specs import CollectiveFit
from . import yaml_blocks
from .kernels.tables import SYSTEMS as CATALOG
from .measurements import shared_data

#: Bytes per element of the tables' ``nccl_dtype`` / ``allreduce_dtype``.
ELEMENT_BYTES = {"half": 2, "bfloat16": 2, "float16": 2, "int8": 1, "float32": 4}
#: The tables' operation names for the engine's collective kinds.
TABLE_OPS = {"allreduce": "all_reduce", "allgather": "all_gather", "alltoall": "alltoall"}
#: Catalog systems each kernel-table system describes: one mapping for every table fit (``kernels.tables``).
CUSTOM_MAX_BYTES = 16 << 20


def default_dir() -> Path:
    """``shared/data/kernels`` beside the checkout (as CI lays it out)."""
    return shared_data("kernels")


def read_table(folder: Path, stem: str) -> tuple[pd.DataFrame, str] | None:
    """The newest ``<stem>.*.parquet`` of a system's folder with a ``bytes`` column, and its file name."""
    files = sorted(Path(folder).glob(f"{stem}*.parquet"))
    if not files:
        return None
    frame = pd.read_parquet(files[-1])
    dtype_col = "nccl_dtype" if "nccl_dtype" in frame else "allreduce_dtype"
    frame["bytes"] = frame["message_size"] * frame[dtype_col].map(ELEMENT_BYTES)
    return frame, files[-1].name


def fit_op(frame: pd.DataFrame, kind: str, with_steps: bool = True) -> CollectiveFit:
    """The parameters of one kind from its rows (``num_gpus``, ``bytes``, ``latency`` in ms)."""
    from scipy.optimize import least_squares  # the fit needs scipy; predictions do not

    n = frame["num_gpus"].to_numpy(float)
    nbytes = frame["bytes"].to_numpy(float)
    seconds = frame["latency"].to_numpy(float) / 1e3

    def params(x) -> CollectiveFit:
        return CollectiveFit(float(np.exp(x[0])), float(np.exp(x[1])) if with_steps else 0.0,
                             float(np.exp(x[2])), float(x[3]))

    x0 = np.array([np.log(5e-6), np.log(1e-6), np.log(3e11), 0.0])
    result = least_squares(lambda x: np.log(op_seconds(params(x), kind, n, nbytes) / seconds), x0,
                           bounds=([np.log(1e-7), np.log(1e-8), np.log(1e8), -1.0],
                                   [np.log(1e-3), np.log(1e-4), np.log(1e13), 2.5]),
                           loss="soft_l1", f_scale=0.1)
    return params(result.x)


def fit_system(folder: Path) -> dict:
    """The ``collectives`` block (a dict) of one system's kernel-table folder."""
    nccl = read_table(folder, "nccl_perf.nccl")
    if nccl is None:
        raise FileNotFoundError(f"no nccl_perf table in {Path(folder).name}")
    frame, name = nccl
    block = {kind: fit_op(frame[frame["op_name"].eq(op)], kind) for kind, op in TABLE_OPS.items()}
    sources = [name]
    custom = read_table(folder, "custom_allreduce_perf.trtllm")
    if custom is not None:
        rows, cname = custom
        rows = rows[rows["bytes"] <= CUSTOM_MAX_BYTES]
        block["custom_allreduce"] = fit_op(rows, "allreduce", with_steps=False)
        sources.append(cname)
    block["source"] = "fitted by `perfkit calibrate --collectives` to " + ", ".join(sources)
    return block


def errors(folder: Path, block: dict) -> pd.DataFrame:
    """Absolute percentage error of the fitted block on every table row (custom rows up to 16 MiB)."""
    out = []
    frame, _ = read_table(folder, "nccl_perf.nccl")
    for kind, op in TABLE_OPS.items():
        rows = frame[frame["op_name"].eq(op)]
        out.append(_err(rows, block[kind], kind, f"nccl {kind}"))
    custom = read_table(folder, "custom_allreduce_perf.trtllm")
    if custom is not None and block.get("custom_allreduce") is not None:
        rows = custom[0][custom[0]["bytes"] <= CUSTOM_MAX_BYTES]
        out.append(_err(rows, block["custom_allreduce"], "allreduce", "custom allreduce"))
    return pd.concat(out, ignore_index=True)


def _err(rows, fit, kind, label):
    predicted = op_seconds(fit, kind, rows["num_gpus"].to_numpy(float), rows["bytes"].to_numpy(float))
    return pd.DataFrame({"kernel": label, "num_gpus": rows["num_gpus"].to_numpy(), "bytes": rows["bytes"].to_numpy(),
                         "error_pct": 100 * np.abs(predicted / (rows["latency"].to_numpy(float) / 1e3) - 1)})


def yaml_block(block: dict) -> str:
    """The ``collectives:`` block as YAML text, human units in comments."""
    lines = ["collectives:                         # inside one node; across nodes: see engine/timing.py",
             "  # A group spanning k nodes runs hierarchically, as NCCL does: the fitted intra-node part over the",
             "  # members of one node, then the scale-out network, whose latency grows with the algorithm's depth",
             "  # (all-reduce: a tree, 2 log2(k) hops of scaleout_latency_s; all-gather: a ring, k - 1 hops;",
             "  # all-to-all: direct sends, one hop) and whose bytes spread over the NICs of the node's members.",
             "  # A two-node group therefore costs more than one node but far less than 2(n-1) ring steps."]
    for kind in (*OPS, "custom_allreduce"):
        fit = block.get(kind)
        if fit is None:
            continue
        lines.append(f"  {kind}:")
        lines.append(f"    launch_s: {fit.launch_s:.4g}                # {fit.launch_s * 1e6:.2f} us per call")
        lines.append(f"    step_s: {fit.step_s:.4g}                  # {fit.step_s * 1e6:.2f} us per ring step")
        lines.append(f"    bus_bytes_per_s: {fit.bus_bytes_per_s:.4g}     # {fit.bus_bytes_per_s / 1e9:.0f} GB/s bus "
                     "bandwidth at 2 GPUs")
        lines.append(f"    bandwidth_exponent: {fit.bandwidth_exponent:.4g}     # bus ~ (n/2)^-exponent")
    lines.append(f'  source: "{block["source"]}"')
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: dict) -> str:
    """A hardware file's text with its ``collectives:`` block replaced (or added before ``sources:``)."""
    return yaml_blocks.replace_block(text, "collectives", yaml_block(block))


def write_blocks(tables: Path, hardware_dir: Path) -> dict[str, dict]:
    """Fit every system folder of ``tables`` and write its block into the catalog files it describes."""
    fitted = {}
    for system, names in CATALOG.items():
        folder = Path(tables) / system
        if not folder.is_dir():
            continue
        block = fit_system(folder)
        fitted[system] = block
        for name in names:
            path = Path(hardware_dir) / f"{name}.yaml"
            if path.is_file():
                path.write_text(replace_block(path.read_text(), block))
    return fitted
