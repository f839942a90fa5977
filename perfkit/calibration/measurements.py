"""Reading measured serving points (the aiconfigurator silicon CSV layout) into engine configurations.

Each measured row becomes one flat configuration (the same paths as a system-metrics request) plus its
measured ``ttft_ms`` / ``tpot_ms``, its serving ``mode`` (``agg``: one engine does prefill and decode with
continuous batching; ``disagg``: separate prefill and decode workers), the request ``concurrency`` and the
group labels used for held-out evaluation. Rows whose layout perfkit cannot express are dropped with a
reason, never silently.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import catalog

#: aiconfigurator system names -> perfkit hardware files.
SYSTEMS = {
    "h100_sxm": "nvidia_h100_hgx",
    "h200_sxm": "nvidia_h200_hgx",
    "b200_sxm": "nvidia_b200_hgx",
    "b300_sxm": "nvidia_b300_hgx",
    "gb200": "nvidia_nvl72_rack",
    "gb300": "nvidia_gb300_nvl72",
}

#: GEMM / MoE quantization modes -> perfkit dtypes.
QUANT = {"fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4", "w4a16_mxfp4": "fp4", "int8": "int8"}

#: What makes two agg rows the same benchmark configuration (with the model's architecture).
CONFIGURATION = ["system", "backend", "gemm_dtype", "moe_dtype", "decode_gpus", "decode_attn_dp", "decode_moe_tp",
                 "decode_moe_ep", "decode_pp", "decode_batch", "input_seq", "output_seq"]

REQUIRED_COLUMNS = ("model_path", "system", "backend", "mode", "isl", "osl", "silicon_ttft_ms", "silicon_tpot_ms")


def shared_data(*parts: str) -> Path:
    """``shared/data/<parts>`` beside the checkout (as CI lays it out): the nearest one that exists, else where
    it would be."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.joinpath("shared", "data", *parts)
        if candidate.exists():
            return candidate
    return here.parents[3].joinpath("shared", "data", *parts)


def default_csv() -> Path:
    """``shared/data/calibration/measured_serving.csv`` beside the checkout."""
    return shared_data("calibration", "measured_serving.csv")


def _num(frame: pd.DataFrame, column: str, default: float = 1.0) -> pd.Series:
    values = pd.to_numeric(frame.get(column, pd.Series(np.nan, index=frame.index)), errors="coerce")
    return values.where(values >= 1, default)


def _source(frame: pd.DataFrame) -> pd.Series:
    """The free-text ``silicon_data_source`` column (empty where a CSV has none)."""
    return frame.get("silicon_data_source", pd.Series("", index=frame.index)).astype(str)


def _concurrency(frame: pd.DataFrame) -> pd.Series:
    """Total concurrent requests: the derived column for agg rows, the source note for disagg rows."""
    from_source = _source(frame).str.extract(r"silicon_concurrency=(\d+)")[0]
    from_source = pd.to_numeric(from_source, errors="coerce")
    derived = pd.to_numeric(frame.get("derived_total_concurrency", pd.Series(np.nan, index=frame.index)),
                            errors="coerce")
    return derived.fillna(from_source)


def load(path: str | Path | None = None) -> pd.DataFrame:
    """Measured points as a DataFrame of flat configurations (one row per measured point that perfkit can
    express), with columns ``measured_ttft_ms``, ``measured_tpot_ms``, ``mode``, ``concurrency``,
    ``prefill_workers``, ``decode_workers``, ``model_family``, ``backend``, ``system``, the prefill and
    decode layouts (``prefill_*`` / ``decode_*``: batch, GPUs, attention DP, MoE TP/EP, PP),
    ``layout_defined``, ``relabelled`` (agg rows whose declared layout was read as a single node, see
    :func:`_node_layout`), ``measured_on`` (the run's date where the source gives one) and ``superseded``
    (agg rows that a later run of the same configuration replaces, see :func:`_superseded`)."""
    from ..errors import PerfkitError

    path = Path(path or default_csv())
    if not path.is_file():
        raise PerfkitError(f"measurements file {str(path)!r} does not exist", field="csv")
    raw = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise PerfkitError(f"measurements file lacks columns {missing}; it needs {list(REQUIRED_COLUMNS)}")
    known = raw["system"].isin(SYSTEMS)
    if not known.any():
        raise PerfkitError(f"measurements file has no rows on a known system: it names "
                           f"{sorted(map(str, raw['system'].unique()))[:10]}; valid systems: {sorted(SYSTEMS)}",
                           field="system")
    raw = raw[known].copy()
    out = pd.DataFrame(index=raw.index)
    out["id"] = raw.get("id", pd.Series(raw.index.astype(str), index=raw.index))
    out["model_id"] = raw["model_path"].map(catalog.canonical_model_id)
    out["hardware_config"] = raw["system"].map(SYSTEMS)
    out["system"] = raw["system"]
    out["backend"] = raw["backend"]
    out["mode"] = raw["mode"]
    out["model_family"] = out["model_id"].map(_family)
    out["input_seq"] = raw["isl"].astype(int)
    out["output_seq"] = raw["osl"].astype(int)
    out["concurrency"] = _concurrency(raw)
    gemm = raw["gemm_quant_mode"].map(QUANT).fillna("bf16")
    moe = raw["moe_quant_mode"].map(QUANT).fillna(gemm)
    out["gemm_dtype"] = gemm
    out["moe_dtype"] = moe
    out["measured_on"] = _source(raw).str.extract(r"measured=(\d{4}-\d{2}-\d{2})")[0]
    out["measured_ttft_ms"] = raw["silicon_ttft_ms"].astype(float)
    out["measured_tpot_ms"] = raw["silicon_tpot_ms"].astype(float)
    # The layout of the worker that produces each figure: agg rows use one layout for both; disagg rows
    # time the first token on a prefill worker and the next ones on a decode worker.
    is_agg = raw["mode"].eq("agg")
    node = raw["system"].map(lambda s: catalog.hardware_spec(SYSTEMS[s]).chips_per_node).to_numpy(float)
    for side, prefix in (("prefill", "prefill_"), ("decode", "decode_")):
        cols = {k: np.where(is_agg, _num(raw, k), _num(raw, prefix + k))
                for k in ("tp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "pp_size")}
        gpus = cols["attention_dp_size"] * cols["tp_size"]  # _num reads missing or zero sizes as 1
        cols, gpus, slip = _node_layout(cols, gpus, node)
        if side == "decode":
            out["relabelled"] = slip & is_agg.to_numpy()
        batch = np.where(is_agg, _num(raw, "batch_size"), _num(raw, prefix + "batch_size"))
        out[f"{side}_batch"] = batch * cols["attention_dp_size"]  # batch_size is per attention-DP rank
        # A MoE layer spans moe_tp x moe_ep GPUs even where tp_size declares fewer (vLLM Qwen3-235B rows
        # declare tp_size 1 with moe_tp_size 2: its 235 GB of fp8 weights need the two H200s).
        out[f"{side}_gpus"] = np.maximum(gpus, cols["moe_tp_size"] * cols["moe_ep_size"])
        out[f"{side}_attn_dp"] = cols["attention_dp_size"]
        out[f"{side}_moe_tp"] = cols["moe_tp_size"]
        out[f"{side}_moe_ep"] = cols["moe_ep_size"]
        out[f"{side}_pp"] = cols["pp_size"]
    out["prefill_workers"] = np.where(is_agg, 1, _num(raw, "prefill_num_workers"))
    # A zero in a layout column (a handful of rows) leaves the layout undefined: such rows are not used.
    layout_columns = [c for c in raw.columns if c.endswith(("tp_size", "dp_size", "ep_size"))]
    out["layout_defined"] = ~(raw[layout_columns] == 0).any(axis=1).to_numpy()
    out["decode_workers"] = np.where(is_agg, 1, _num(raw, "decode_num_workers"))
    # A disagg row that records neither pool's worker count describes no deployment (how many chips served its
    # concurrency is unknown): it is scored apart (perfkit.calibration.disagg) and never fitted.
    workers = [raw.get(f"{side}_num_workers", pd.Series(np.nan, index=raw.index)) for side in ("prefill", "decode")]
    out["pools_recorded"] = (is_agg | (workers[0].notna() & workers[1].notna())).to_numpy()
    # The same measurement listed twice counts once: the same point, layout and figures under another id, or
    # under the other name of one architecture (177 DeepSeek points appear as both DeepSeek-V3 and -R1).
    arch = out["model_id"].map(architecture)
    keys = out.drop(columns=["id", "relabelled", "model_id", "measured_on"]).assign(architecture=arch)
    for k in ("measured_ttft_ms", "measured_tpot_ms"):  # copies of a figure may differ in the last float digit
        keys[k] = keys[k].round(6)
    out = out[~keys.duplicated()].copy()
    out["superseded"] = _superseded(out)
    return out.reset_index(drop=True)


def configurations(frame: pd.DataFrame) -> list[pd.Series]:
    """Group keys that make rows of one benchmark configuration (``CONFIGURATION`` and the architecture)."""
    return [frame[c] for c in CONFIGURATION] + [frame["model_id"].map(architecture).rename("architecture")]


def _superseded(out: pd.DataFrame) -> np.ndarray:
    """Agg rows of a configuration that a later benchmark run measured again: perfkit predicts current engine
    releases, and the runs disagree by tens of percent (see ``report.repeatability``), so the latest run
    stands for the configuration. Rows without a date are never superseded."""
    agg = out[out["mode"].eq("agg")]
    latest = agg.groupby(configurations(agg), dropna=False)["measured_on"].transform("max")
    older = agg["measured_on"].notna() & latest.notna() & (agg["measured_on"] < latest)
    return out.index.isin(older[older].index)


@functools.lru_cache(maxsize=None)
def architecture(model_id: str) -> tuple:
    """What makes two model ids run alike: every field of the spec but its names."""
    spec = catalog.model_spec(model_id)
    return tuple(v for k, v in vars(spec).items() if k not in ("name", "aliases"))


def _node_layout(cols: dict, gpus: np.ndarray, node: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """Undo a labelling slip of the source data: on 8-GPU servers, some MoE points declare
    ``tp_size = moe_tp_size x moe_ep_size`` with ``moe_tp_size = moe_ep_size`` (16 = 4 x 4, 64 = 8 x 8), i.e.
    a layout wider than the node, yet 42 of them repeat to the last digit the TTFT and TPOT of the same point
    recorded under the single-node layout of ``moe_ep_size`` GPUs with expert parallel ``moe_ep_size`` (and
    attention DP divided by ``moe_tp_size``). Such layouts are read as that single-node layout; the third
    value marks them."""
    tp, ep, dp = cols["moe_tp_size"], cols["moe_ep_size"], cols["attention_dp_size"]
    slip = (gpus > node) & (tp == ep) & (tp > 1) & (gpus == tp * ep)
    fixed = dict(cols)
    fixed["tp_size"] = np.where(slip, cols["tp_size"] / tp, cols["tp_size"])
    fixed["attention_dp_size"] = np.where(slip, np.maximum(dp / tp, 1), dp)
    fixed["moe_tp_size"] = np.where(slip, 1.0, tp)
    return fixed, np.where(slip, ep, gpus), slip


def _family(model_id: str) -> str:
    name = model_id.split("/")[-1]
    match = re.match(r"([A-Za-z]+(?:-oss)?)[-_]?(\d+(?:\.\d+)?)?", name)
    return match.group(1).lower() if match else name.lower()
