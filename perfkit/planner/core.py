"""The search: every layout of a chip budget, swept over rates with :func:`perfkit.sweep`, filtered by the SLOs.

A *layout* is the tensor, pipeline and expert degrees of one copy, the number of copies (``replicas``), the
weight and KV dtypes and the running-sequence cap of each copy. Its *best rate* is the largest arrival rate
whose p99 TTFT and p99 TPOT (the ``load_*`` figures of the engine) meet the SLOs: found on a geometric grid of
rates, then refined for the leading layouts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import catalog
from ..engine.layout import valid_tensor_parallel
from ..errors import PerfkitError
from ..inputs import SYSTEM_OPTIONAL, check_int, check_real
from ..sweeps import pareto_front, sweep
from . import launch

#: Per-copy running-sequence caps tried (``max_num_seqs`` / ``--max-running-requests``).
RUNNING_CAPS = (8, 16, 32, 64, 128, 256, 512)
#: The geometric grid of rates every layout is evaluated at (requests/s over the deployment: 1e-3 to 1e5,
#: steps of 1.58x); the best rate of the ``REFINED`` leading layouts is then refined with ``FINE_RATES``
#: points up to the next grid rate (steps of 3%).
RATES = tuple(np.geomspace(1e-3, 1e5, 41))
FINE_RATES = 16
REFINED = 12
MIN_FRONT_UTILISATION = 0.1  # the Pareto front's operating points use at least this share of capacity
LAYOUT = ("tensor_parallel", "pipeline_parallel", "expert_parallel", "attention_data_parallel", "replicas",
          "dtype", "kv_dtype",
          "max_running_sequences")


@dataclass
class Plan:
    """The answer of :func:`plan`.

    ``layouts``: one row per layout that meets the SLOs at some rate, at its best rate, ranked by requests/s
    per chip (then tokens/s per user); ``pareto``: the rows (any layout, any rate from a tenth of its
    capacity up) that no other row beats on both output tokens/s per chip and tokens/s per user; ``reason`` says why ``layouts`` is empty and
    ``closest_miss`` is then the configuration nearest to the SLOs; ``commands`` holds the launch commands
    of the best layout for each serving engine.
    """

    layouts: pd.DataFrame
    pareto: pd.DataFrame
    slo: dict
    reason: str = ""
    closest_miss: dict | None = None
    commands: dict = field(default_factory=dict)
    #: With ``plan(..., disaggregated=True)``: the disaggregated layouts within the SLOs, ranked like
    #: ``layouts`` (:mod:`perfkit.planner.disagg`), and the best aggregated against the best disaggregated.
    disaggregated: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None

    @property
    def best(self) -> pd.Series | None:
        return None if self.layouts.empty else self.layouts.iloc[0]

    def command(self, engine: str = "vllm", rank: int = 0) -> str:
        """The launch command of the layout ranked ``rank`` (0 = best) on ``engine``."""
        if self.layouts.empty:
            raise PerfkitError(f"the plan is empty: {self.reason}", field="slo")
        if not 0 <= rank < len(self.layouts):
            raise PerfkitError(f"rank={rank} is not in the plan; valid choices: 0 to {len(self.layouts) - 1}",
                               field="rank")
        row = self.layouts.iloc[rank]
        return launch.command(engine, row, self.slo["model_id"], self.slo["memory_fraction"])

    def request(self, rank: int = 0) -> dict:
        """The system-metrics request of the layout ranked ``rank``, at its best rate."""
        self.command("vllm", rank)  # the same checks of the plan and the rank
        return _request(self.layouts.iloc[rank], self.slo["base"])

    def curve(self, rank: int = 0, points: int = 40) -> pd.DataFrame:
        """The layout ranked ``rank`` swept over rates from 2% to 99% of its capacity (one sweep)."""
        request = self.request(rank)
        capacity = float(self.layouts.iloc[rank]["load_capacity_qps"])
        rates = list(np.linspace(0.02, 0.99, points) * capacity)
        return sweep({**request, "arrival_rate_qps": rates})

    def __repr__(self) -> str:
        if self.layouts.empty:
            return f"Plan(empty: {self.reason})"
        b = self.best
        return (f"Plan({len(self.layouts)} layouts; best: TP{b['tensor_parallel']} PP{b['pipeline_parallel']} "
                f"EP{b['expert_parallel']} DP{b['attention_data_parallel']} x{b['replicas']} {b['dtype']}/{b['kv_dtype']} KV, "
                f"{b['arrival_rate_qps']:.3g} req/s)")


def plan(model_id: str, hardware_config: str, chips: int, input_seq: int, output_seq: int, ttft_p99_ms: float,
         tpot_p99_ms: float, *, serving_engine: str = "generic", input_seq_cv: float = 0.0,
         output_seq_cv: float = 0.0, price_per_chip_hour: float | None = None, dtypes=None, kv_dtypes=None,
         running_caps=RUNNING_CAPS, disaggregated: bool = False) -> Plan:
    """The layouts of ``chips`` chips that serve the most requests/s per chip within p99 TTFT and TPOT SLOs.

    Sweeps tensor x pipeline (x expert, for mixture-of-experts models) degrees, replicas, weight dtypes
    (``dtypes``: the model's own and fp8 where the chip has it), KV dtypes and running-sequence caps, each at
    a grid of Poisson rates, with the engine's open-loop figures; keeps what meets both SLOs unsaturated.
    SLOs no layout meets give an empty plan with the reason and the closest miss, not an error.

    >>> import perfkit
    >>> p = perfkit.plan("meta-llama/Llama-3.1-8B", "nvidia_h100_hgx", 2, 1024, 128, ttft_p99_ms=2000,
    ...                  tpot_p99_ms=50, running_caps=(32, 128))
    >>> bool(p.layouts["load_ttft_ms_p99"].max() <= 2000), p.command("vllm").startswith("vllm serve")
    (True, True)

    With ``disaggregated=True`` the plan also searches every split of the chips into a prefill and a decode
    pool (P:D) with each pool's layout and replicas (``plan.disaggregated``), and ``plan.comparison`` sets the
    best aggregated and the best disaggregated layout side by side.
    """
    if not isinstance(disaggregated, bool):
        raise PerfkitError(f"disaggregated must be true or false, got {disaggregated!r}", field="disaggregated")
    result = _aggregated(model_id, hardware_config, chips, input_seq, output_seq, ttft_p99_ms, tpot_p99_ms,
                         serving_engine, input_seq_cv, output_seq_cv, price_per_chip_hour, dtypes, kv_dtypes,
                         running_caps)
    if disaggregated:
        from . import disagg

        model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hardware_config)
        dtypes, kv_dtypes = _dtypes(model, hw, dtypes, kv_dtypes)
        rows = disagg.table(model_id, hardware_config, result.slo["chips"], result.slo["base"], dtypes, kv_dtypes,
                            running_caps, RATES)
        result.disaggregated = disagg.best_layouts(rows, result.slo, model_id, hardware_config, result.slo["base"],
                                                   RATES[1] / RATES[0], REFINED, FINE_RATES)
        result.comparison = disagg.comparison(result.layouts, result.disaggregated)
    return result


def _dtypes(model, hw, dtypes, kv_dtypes):
    """The weight and KV dtypes searched: the model's own and fp8 where the chip has it, unless given."""
    native = model.default_dtype("attention")
    dtypes = list(dtypes or dict.fromkeys([native] + (["fp8"] if hw.compute_dtype("fp8") == "fp8" else [])))
    kv_dtypes = list(kv_dtypes or dict.fromkeys([native] + (["fp8"] if hw.compute_dtype("fp8") else [])))
    return dtypes, kv_dtypes


def _aggregated(model_id, hardware_config, chips, input_seq, output_seq, ttft_p99_ms, tpot_p99_ms, serving_engine,
                input_seq_cv, output_seq_cv, price_per_chip_hour, dtypes, kv_dtypes, running_caps) -> Plan:
    """:func:`plan` over aggregated layouts."""
    model, hw = catalog.model_spec(model_id), catalog.hardware_spec(hardware_config)
    profile = catalog.serving_profile(serving_engine)
    chips = check_int(chips, "chips", 1 << 16)
    slo = {"ttft_p99_ms": _positive(ttft_p99_ms, "ttft_p99_ms"), "tpot_p99_ms": _positive(tpot_p99_ms, "tpot_p99_ms"),
           "model_id": model_id, "memory_fraction": profile.memory_utilization, "chips": chips}
    base = {"model_id": model_id, "hardware_config": hardware_config, "serving_engine": serving_engine,
            "input_seq": input_seq, "output_seq": output_seq, "serving_mode": "continuous",
            "input_seq_cv": check_real(input_seq_cv, "input_seq_cv"),
            "output_seq_cv": check_real(output_seq_cv, "output_seq_cv")}
    if price_per_chip_hour is not None:
        base["price_per_chip_hour"] = price_per_chip_hour
    slo["base"] = base
    grids = list(_grids(model, hw, chips, base, dtypes, kv_dtypes, running_caps))
    table = _table(grids, list(RATES))
    runs = table["valid"] & (table["num_chips"] == chips)
    if not runs.any():
        return _empty(table, slo, "no layout of {chips} chips runs: {why}".format(
            chips=chips, why=_common_reason(table, chips)))
    table = table[runs].copy()
    table["native_dtype"] = model.default_dtype("attention")  # the checkpoint's format (no re-quantizing)
    meets = _meets(table, slo)
    if not meets.any():
        return _empty(table, slo, _miss_reason(table, slo))
    best = _best(table[meets])
    best = _refine(best, grids, slo)
    ranked = best.sort_values(["requests_s_per_chip", "tokens_s_per_user"], ascending=False).reset_index(drop=True)
    # below a tenth of a layout's capacity a point gives up nearly all its throughput for a few percent of
    # speed per user: such operating points stay out of the front
    points = pd.concat([table[meets], ranked], ignore_index=True)  # the grid and the refined best rates
    points = points[points["load_utilisation"] >= MIN_FRONT_UTILISATION]
    front = pareto_front(points, x="tokens_s_per_user", y="tokens_s_per_chip", minimize_x=False)
    result = Plan(layouts=ranked, pareto=front.reset_index(drop=True), slo=slo)
    result.commands = launch.commands(ranked.iloc[0], model_id, profile.memory_utilization)
    return result


def _positive(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise PerfkitError(f"{field} must be a positive number of milliseconds, got {value!r}", field=field)
    return float(value)


def _grids(model, hw, chips, base, dtypes, kv_dtypes, running_caps):
    """One sweep grid per replicas value over the tensor, pipeline (and expert) degrees that divide the copy;
    the layouts whose degrees' product fills the copy exactly are kept. For
    mixture-of-experts models the expert degree does: attention, on fewer chips, is then replicated over the
    copy and splits its sequences (attention data parallel, as the plan's ``attention_data_parallel``)."""
    replicas_ok = "replicas" in SYSTEM_OPTIONAL
    native = model.default_dtype("attention")
    dtypes = list(dtypes or dict.fromkeys([native] + (["fp8"] if hw.compute_dtype("fp8") == "fp8" else [])))
    kv_dtypes = list(kv_dtypes or dict.fromkeys([native] + (["fp8"] if hw.compute_dtype("fp8") else [])))
    tps = set(valid_tensor_parallel(model, "attention", chips)) & set(valid_tensor_parallel(model, "feedforward", chips))
    for replicas in [r for r in range(1, chips + 1) if chips % r == 0] if replicas_ok else [1]:
        copy = chips // replicas
        divisors = [d for d in range(1, copy + 1) if copy % d == 0]
        grid = {**base, "pipeline_parallel": [p for p in divisors if p <= model.num_layers],
                "batch_size": [c * replicas for c in running_caps], "kv_dtype": kv_dtypes,
                "layers": {"all": {"tensor_parallel": sorted(t for t in tps if copy % t == 0), "dtype": dtypes}}}
        if model.is_moe:
            grid["layers"]["feedforward"] = {"expert_parallel": [e for e in divisors if model.num_experts % e == 0]}
        if replicas_ok:
            grid["replicas"] = replicas
        yield grid


def _table(grids, rates) -> pd.DataFrame:
    frames = []
    for grid in grids:
        df = sweep({**grid, "arrival_rate_qps": rates})
        frames.append(_columns(df, grid))
    return pd.concat(frames, ignore_index=True)


def _columns(df: pd.DataFrame, grid: dict) -> pd.DataFrame:
    """Plan columns: the layout under plain names, then per-chip and per-user figures."""
    replicas = grid.get("replicas", 1)
    n = len(df)

    def column(name, fixed):
        return df[name].to_numpy() if name in df else np.full(n, fixed)

    layers = grid["layers"]
    batch = column("batch_size", grid["batch_size"])
    out = pd.DataFrame({
        "tensor_parallel": column("layers.all.tensor_parallel", layers["all"]["tensor_parallel"]),
        "pipeline_parallel": column("pipeline_parallel", grid["pipeline_parallel"]),
        "expert_parallel": column("layers.feedforward.expert_parallel",
                                  layers.get("feedforward", {}).get("expert_parallel", 1)),
        "replicas": replicas,
        "dtype": column("layers.all.dtype", layers["all"]["dtype"]).astype(str),
        "kv_dtype": column("kv_dtype", grid["kv_dtype"]).astype(str),
        "max_running_sequences": batch // replicas,
        "batch_size": batch,
        "input_seq": grid["input_seq"], "output_seq": grid["output_seq"],
        "arrival_rate_qps": df["arrival_rate_qps"].to_numpy(),
    })
    # attention on fewer chips than the copy is replicated and splits the sequences: attention data parallel
    out["attention_data_parallel"] = np.maximum(
        df["num_chips"].to_numpy() // replicas // (out["tensor_parallel"] * out["pipeline_parallel"]), 1)
    keep = [c for c in df.columns if c.startswith("load_")] + [
        c for c in ("num_chips", "num_nodes", "memory_per_chip_gb", "fits_on_hardware", "joules_per_output_token",
                    "usd_per_million_output_tokens", "valid", "reason") if c in df]
    out = pd.concat([out, df[keep].reset_index(drop=True)], axis=1)
    out["requests_s_per_chip"] = out["load_achieved_requests_s"] / out["num_chips"]
    out["tokens_s_per_chip"] = out["load_output_tokens_s"] / out["num_chips"]
    out["tokens_s_per_user"] = 1e3 / out["load_tpot_ms_mean"]
    return out


def _meets(table: pd.DataFrame, slo: dict) -> pd.Series:
    return (~table["load_saturated"] & (table["load_ttft_ms_p99"] <= slo["ttft_p99_ms"])
            & (table["load_tpot_ms_p99"] <= slo["tpot_p99_ms"]))


def _best(rows: pd.DataFrame) -> pd.DataFrame:
    """Each layout's row at the largest rate that meets the SLOs."""
    order = rows.sort_values("arrival_rate_qps", ascending=False)
    return order.drop_duplicates(list(LAYOUT)).reset_index(drop=True)


def _refine(best: pd.DataFrame, grids, slo) -> pd.DataFrame:
    """Between the best grid rate and the next grid rate of the leading layouts, a finer grid of rates (one
    sweep of the list of those requests)."""
    step = RATES[1] / RATES[0]
    lead = best.sort_values("requests_s_per_chip", ascending=False).head(REFINED)
    requests, rows = [], []
    for _, row in lead.iterrows():
        body = _request(row, slo["base"])
        for rate in np.linspace(row["arrival_rate_qps"], row["arrival_rate_qps"] * step, FINE_RATES + 1)[1:]:
            requests.append({**body, "arrival_rate_qps": float(rate)})
            rows.append(row)
    if not requests:
        return best
    df = sweep(requests)
    fine = pd.DataFrame(rows).reset_index(drop=True)
    for column in ("arrival_rate_qps", *[c for c in fine.columns if c.startswith("load_")],
                   "joules_per_output_token", "usd_per_million_output_tokens"):
        if column in df:
            fine[column] = df[column].to_numpy()
    fine["requests_s_per_chip"] = fine["load_achieved_requests_s"] / fine["num_chips"]
    fine["tokens_s_per_chip"] = fine["load_output_tokens_s"] / fine["num_chips"]
    fine["tokens_s_per_user"] = 1e3 / fine["load_tpot_ms_mean"]
    fine = fine[_meets(fine, slo)]
    return _best(pd.concat([best, fine], ignore_index=True)) if not fine.empty else best


def _request(row, base: dict) -> dict:
    """The system-metrics request of one plan row (its rate included)."""
    layers = {t: {"tensor_parallel": int(row["tensor_parallel"]), "dtype": str(row["dtype"])}
              for t in ("attention", "feedforward", "embedding")}
    layers["norm"] = {"dtype": str(row["dtype"])}
    if int(row["expert_parallel"]) > 1:
        layers["feedforward"]["expert_parallel"] = int(row["expert_parallel"])
    body = {**base, "batch_size": int(row["batch_size"]), "kv_dtype": str(row["kv_dtype"]),
            "pipeline_parallel": int(row["pipeline_parallel"]), "layers": layers,
            "arrival_rate_qps": float(row["arrival_rate_qps"])}
    if int(row["replicas"]) > 1:
        body["replicas"] = int(row["replicas"])
    return body


def _empty(table: pd.DataFrame, slo: dict, reason: str) -> Plan:
    miss = None
    if not table.empty and "load_ttft_ms_p99" in table:
        runs = table[table["valid"]] if table["valid"].any() else table
        ratio = np.maximum(runs["load_ttft_ms_p99"] / slo["ttft_p99_ms"], runs["load_tpot_ms_p99"] / slo["tpot_p99_ms"])
        if np.isfinite(ratio).any():
            miss = runs.loc[ratio.idxmin()].to_dict()
    return Plan(layouts=table.iloc[0:0], pareto=table.iloc[0:0], slo=slo, reason=reason, closest_miss=miss)


def _miss_reason(table: pd.DataFrame, slo: dict) -> str:
    ttft_floor, tpot_floor = table["load_ttft_ms_p99"].min(), table["load_tpot_ms_p99"].min()
    parts = []
    if ttft_floor > slo["ttft_p99_ms"]:
        parts.append(f"the lowest p99 TTFT of any layout is {ttft_floor:.0f} ms, above ttft_p99_ms="
                     f"{slo['ttft_p99_ms']:g}")
    if tpot_floor > slo["tpot_p99_ms"]:
        parts.append(f"the lowest p99 TPOT of any layout is {tpot_floor:.1f} ms, above tpot_p99_ms="
                     f"{slo['tpot_p99_ms']:g}")
    if not parts:
        parts.append("no layout meets both SLOs at once at any rate (those fast enough in TTFT are too slow in "
                     "TPOT, and the other way round)")
    return "no layout meets the SLOs: " + "; ".join(parts)


def _common_reason(table: pd.DataFrame, chips: int) -> str:
    reasons = table.loc[table["reason"].astype(str) != "", "reason"].astype(str)
    if reasons.empty:
        return f"no layout uses exactly {chips} chips"
    return reasons.value_counts().index[0]
