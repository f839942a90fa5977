"""Composed figures (several charts of :mod:`perfkit.plots` on one matplotlib Figure) and ``perfkit figures``,
the command that redraws the README's pictures.

The figures are built without pyplot (no global state), so panels, notebooks and the command draw the same
pictures the same way::

    perfkit figures --out docs/images

>>> from perfkit import examples
>>> from perfkit.widgets import frames
>>> fig = comparison_figure(frames.system_frame(examples.SEED_COMPARISON))
>>> len(fig.axes)
4
"""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pandas as pd

from . import plots

#: Figures a comparison draws as bars, one chart each (memory per chip comes last, stacked).
COMPARED = ("ttft_ms", "tpot_ms", "throughput_tokens_s")


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    """A Figure with ``ncols`` axes side by side (pyplot-free) and the list of its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def png(fig, dpi: int = 100) -> bytes:
    """The Figure as PNG bytes, without the matplotlib version stamp (so redrawing changes nothing)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def comparison_figure(frame: pd.DataFrame):
    """Bars of TTFT, TPOT and throughput per configuration, and memory per chip against capacity; ``frame``
    is :func:`perfkit.widgets.frames.system_frame` (one row per configuration)."""
    from .widgets import frames

    fig, axes = new_figure(len(COMPARED) + 1, width=3.3, height=3.4)
    for ax, column in zip(axes, COMPARED):
        plots.comparison_bars(frame, column, ax=ax)
    plots.memory_breakdown(frames.memory_frame(frame), ax=axes[-1])
    fig.suptitle("\n".join(frames.captions(frame)), fontsize=9)
    return fig


def memory_figure(frame: pd.DataFrame, title: str = ""):
    """Memory of one chip by part, per configuration, against the chip's capacity."""
    from .widgets import frames

    fig, (ax,) = new_figure(1, width=7.0, height=4.0)
    plots.memory_breakdown(frames.memory_frame(frame), ax=ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def pareto_figure(table: pd.DataFrame, front: pd.DataFrame, x: str = "tpot_ms", y: str = "throughput_tokens_s",
                  color: str | None = None, title: str = "", marker: str | None = None):
    """Every configuration of a sweep and its Pareto front (``front``: the front's rows), the front's
    markers coloured by ``color`` and shaped by ``marker`` (e.g. ``num_chips`` and ``hardware_config``)."""
    fig, (ax,) = new_figure(1, width=7.6, height=4.4)
    plots.pareto_front(table, front=front, x=x, y=y, color=color, marker=marker, ax=ax)
    if title:
        ax.set_title(title)
    return fig


# -- the README's pictures -----------------------------------------------------------------------------------

def readme_figures() -> dict[str, object]:
    """File name -> Figure of every picture the README shows (the same configurations as the notebooks)."""
    from . import examples
    from .widgets import frames

    variants = examples.parallelism_variants()
    out = {
        "comparison.png": comparison_figure(frames.system_frame(examples.SEED_COMPARISON)),
        "memory.png": memory_figure(frames.system_frame(variants),
                                    title="Llama-3.3-70B-Instruct on H100 servers, batch 32, 4096 + 512 tokens"),
    }
    if importlib.util.find_spec("perfkit.sweeps") is not None:
        from .sweeps import pareto_front

        table = frames.sweep_table(examples.SWEEP_GRID)
        front = pareto_front(table, x="tpot_ms", y="throughput_per_chip_tokens_s")
        out["pareto.png"] = pareto_figure(table[table["valid"]], front, y="throughput_per_chip_tokens_s",
                                          color="num_chips", marker="hardware_config",
                                          title=examples.SWEEP_TITLE)
    return out


def register(sub) -> None:
    p = sub.add_parser("figures", help="redraw the README's pictures (comparison, memory, Pareto front)")
    p.add_argument("--out", default="docs/images", help="folder for the PNG files (default: docs/images)")
    p.set_defaults(func=_write)


def _write(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in readme_figures().items():
        (out / name).write_bytes(png(fig))
        print(out / name)
    return 0
