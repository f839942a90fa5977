"""Charts of a plan (matplotlib, imported lazily by the caller's ``ax``): they draw columns, compute nothing.

>>> import pandas as pd
>>> from perfkit.figures import new_figure
>>> curve = pd.DataFrame({"arrival_rate_qps": [1.0, 2.0], "load_ttft_ms_p50": [100.0, 120.0],
...     "load_ttft_ms_p99": [150.0, 300.0], "load_tpot_ms_p50": [10.0, 11.0], "load_tpot_ms_p99": [12.0, 14.0]})
>>> fig, (ax,) = new_figure(1)
>>> latency_vs_rate(curve, ax, ttft_slo_ms=250.0, tpot_slo_ms=40.0).get_xlabel()
'arrival rate (requests/s)'
"""
from __future__ import annotations

import pandas as pd

from .. import plots


def latency_vs_rate(curve: pd.DataFrame, ax, ttft_slo_ms: float | None = None, tpot_slo_ms: float | None = None,
                    rate: float | None = None):
    """TTFT p50/p99 (left axis) and TPOT p50/p99 (right axis) of one layout against the arrival rate, with the
    SLOs as dashed lines and the planned ``rate`` as a vertical line."""
    x = curve["arrival_rate_qps"]
    ax.plot(x, curve["load_ttft_ms_p50"], color=plots.COLORS["ttft_ms"], lw=1, ls=":", label="TTFT p50")
    ax.plot(x, curve["load_ttft_ms_p99"], color=plots.COLORS["ttft_ms"], lw=2, label="TTFT p99")
    right = ax.twinx()
    right.plot(x, curve["load_tpot_ms_p50"], color=plots.COLORS["tpot_ms"], lw=1, ls=":", label="TPOT p50")
    right.plot(x, curve["load_tpot_ms_p99"], color=plots.COLORS["tpot_ms"], lw=2, label="TPOT p99")
    if ttft_slo_ms:
        ax.axhline(ttft_slo_ms, color=plots.COLORS["ttft_ms"], ls="--", lw=1, label="TTFT p99 SLO")
    if tpot_slo_ms:
        right.axhline(tpot_slo_ms, color=plots.COLORS["tpot_ms"], ls="--", lw=1, label="TPOT p99 SLO")
        right.set_ylim(0, max(tpot_slo_ms, float(curve["load_tpot_ms_p99"].max())) * 1.15)
    if rate:
        ax.axvline(rate, color="black", lw=1, alpha=0.6)
    if ttft_slo_ms:
        ax.set_ylim(0, ttft_slo_ms * 2.5)
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel("TTFT (ms)", color=plots.COLORS["ttft_ms"])
    right.set_ylabel("TPOT (ms)", color=plots.COLORS["tpot_ms"])
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=7, loc="upper left")
    ax.grid(True, alpha=0.2)
    ax.set_title("latency under load (best layout)")
    return ax


def per_chip_vs_per_user(rows: pd.DataFrame, front: pd.DataFrame, ax):
    """Output tokens/s per chip against tokens/s per user of every layout that meets the SLOs, and the
    Pareto front."""
    ax = plots.pareto_front(rows, ax=ax, x="tokens_s_per_user", y="tokens_s_per_chip", front=front)
    ax.set_xlabel("tokens/s per user (1000 / mean TPOT)")
    ax.set_ylabel("output tokens/s per chip")
    ax.set_title("layouts within the SLOs")
    return ax


def plan_figure(plan, curve: pd.DataFrame | None = None, title: str = ""):
    """The two charts of a non-empty plan side by side (``curve``: :meth:`Plan.curve`, swept if not given)."""
    from ..figures import new_figure

    fig, (left, right) = new_figure(2, width=5.6, height=4.0)
    latency_vs_rate(plan.curve() if curve is None else curve, left, plan.slo["ttft_p99_ms"],
                    plan.slo["tpot_p99_ms"], rate=float(plan.best["arrival_rate_qps"]))
    per_chip_vs_per_user(plan.layouts, plan.pareto, right)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
