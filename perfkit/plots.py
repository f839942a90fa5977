"""Charts of perfkit results (matplotlib, imported lazily).

Each function takes a DataFrame (a sweep, or a table from :mod:`perfkit.widgets.frames`) and an optional
matplotlib ``ax``, draws on it and returns it. None of them computes a figure: what they show is already a
column of the frame.

>>> import perfkit
>>> from perfkit.widgets import frames
>>> frame = frames.system_frame({"8B": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config":
...     "nvidia_h100_hgx", "batch_size": 1, "input_seq": 1024, "output_seq": 128}})
>>> ax = memory_breakdown(frames.memory_frame(frame))
>>> ax.get_ylabel()
'GB per chip'
"""
from __future__ import annotations

import pandas as pd

#: Colours by meaning, the same in every chart.
COLORS = {"weights_gb": "#4C72B0", "kv_cache_gb": "#DD8452", "activation_gb": "#55A868",
          "compute": "#4C72B0", "memory": "#DD8452", "communication": "#C44E52",
          "ttft_ms": "#4C72B0", "tpot_ms": "#DD8452"}
LABELS = {"ttft_ms": "TTFT (ms)", "tpot_ms": "TPOT (ms)", "throughput_tokens_s": "throughput (tokens/s)",
          "total_latency_ms": "total latency (ms)", "throughput_per_chip_tokens_s": "throughput per chip (tokens/s)",
          "layers.all.tensor_parallel": "tensor parallel", "layers.all.dtype": "dtype",
          "hardware_config": "hardware", "memory_per_chip_gb": "memory per chip (GB)",
          "batch_size": "batch size", "input_seq": "input tokens", "output_seq": "output tokens",
          "num_chips": "chips", "weights_gb": "weights", "kv_cache_gb": "KV cache",
          "activation_gb": "activations"}


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def short(value: float) -> str:
    """A number in at most four characters or so: 0.52, 7.3, 412, 3.1k, 12k, 1.2M."""
    if value != value:
        return ""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2g}{suffix}" if abs(value) < 10 * scale else f"{value / scale:.0f}{suffix}"
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"


def _plain_log(ax, *axes: str, minor_labels: bool = True) -> None:
    """Log axes labelled 1, 10, 100 (and 2, 5 between) rather than 10^k; few minor ticks, which keeps
    drawing fast."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name in axes:
        axis = getattr(ax, f"{name}axis")
        axis.set_major_formatter(FuncFormatter(lambda v, _: short(v)))
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: short(v)) if minor_labels else NullFormatter())


def label(column: str) -> str:
    """Axis words for a column name (the column name itself when there are none)."""
    return LABELS.get(column, column.rsplit(".", 1)[-1].replace("_", " "))


def roofline(layers: pd.DataFrame, ax=None):
    """Layers on the chip's roofline: FLOPs per byte held against attained TFLOP/s, one marker per layer
    type and phase, under the roofs ``min(peak_tflops_s, hbm_tb_s x intensity)``.

    ``layers`` is :func:`perfkit.widgets.frames.layer_frame`.
    """
    import numpy as np

    ax = _ax(ax)
    markers = {"prefill": "o", "decode": "s"}
    colors = {t: f"C{i}" for i, t in enumerate(dict.fromkeys(layers["layer_type"]))}
    for (layer_type, phase), row in layers.set_index(["layer_type", "phase"]).iterrows():
        ax.scatter(row["flops_per_byte"], row["attained_tflops_s"], marker=markers.get(phase, "o"), s=60,
                   color=colors[layer_type], label=f"{layer_type} ({phase})", zorder=3, alpha=0.85)
    finite = layers["flops_per_byte"].replace([np.inf, -np.inf], np.nan).dropna()
    lo, hi = (finite.min() / 4, finite.max() * 4) if len(finite) else (0.1, 1e4)
    x = np.geomspace(max(lo, 1e-3), max(hi, 10.0), 200)
    bandwidth = layers["hbm_tb_s"].iloc[0]
    for peak in sorted(layers["peak_tflops_s"].dropna().unique()):
        ax.plot(x, np.minimum(peak, bandwidth * x), color="0.3", lw=1, zorder=2)
        ax.annotate(f"{peak:,.0f} TFLOP/s", (x[-1], peak), ha="right", va="bottom", fontsize=8, color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs per byte held on the chip")
    ax.set_ylabel("attained TFLOP/s per chip")
    ax.set_title(f"Roofline (HBM {bandwidth:g} TB/s)")
    ax.legend(fontsize=7, loc="lower right")
    _plain_log(ax, "x", "y", minor_labels=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def memory_breakdown(memory: pd.DataFrame, ax=None):
    """Stacked bars of one chip's memory (weights, KV cache, activations) per configuration, the busiest
    chip's footprint as a marker and the chip's capacity as a red tick.

    ``memory`` is :func:`perfkit.widgets.frames.memory_frame`.
    """
    ax = _ax(ax)
    names = [str(i) for i in memory.index]
    bottom = pd.Series(0.0, index=memory.index)
    for part in ("weights_gb", "kv_cache_gb", "activation_gb"):
        ax.bar(names, memory[part], bottom=bottom, color=COLORS[part], label=label(part))
        bottom = bottom + memory[part]
    ax.scatter(names, memory["memory_per_chip_gb"], marker="_", s=900, color="black", zorder=3,
               label="busiest chip")
    ax.scatter(names, memory["hw_capacity_gb"], marker="_", s=900, color="#C44E52", linewidths=3, zorder=3,
               label="chip capacity")
    for name, used, capacity in zip(names, memory["memory_per_chip_gb"], memory["hw_capacity_gb"]):
        ax.annotate(f"{short(used)} of {short(capacity)} GB", (name, used), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=7)
    ax.set_ylabel("GB per chip")
    ax.set_title("Memory per chip")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=3, frameon=False)
    return ax


def latency_vs_batch(frame: pd.DataFrame, ax=None, by: str | None = None, x: str = "batch_size"):
    """TTFT (solid) and TPOT (dashed) against the batch size, one pair of lines per value of ``by``."""
    from matplotlib.ticker import FuncFormatter

    ax = _ax(ax)
    groups = frame.groupby(by, sort=True) if by else [(None, frame)]
    for key, group in groups:
        group = group.sort_values(x)
        suffix = f" {label(by)}={key}" if by else ""
        line, = ax.plot(group[x], group["ttft_ms"], marker="o", label="TTFT" + suffix)
        ax.plot(group[x], group["tpot_ms"], marker="s", ls="--", color=line.get_color(), label="TPOT" + suffix)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_log(ax, "y")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(label(x))
    ax.set_ylabel("ms")
    ax.set_title("TTFT and TPOT against batch size")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
    return ax


def pareto_front(frame: pd.DataFrame, ax=None, x: str = "tpot_ms", y: str = "throughput_tokens_s",
                 front: pd.DataFrame | str = "pareto", color: str | None = None):
    """Every configuration as a grey dot and the Pareto front joined in black: ``front`` is the front's rows
    (e.g. :func:`perfkit.sweeps.pareto_front`) or the name of a boolean column of ``frame`` flagging them.
    With ``color``, the front's markers are coloured by that column."""
    ax = _ax(ax)
    ax.scatter(frame[x], frame[y], s=8, color="0.75", label="configurations")
    best = (frame[frame[front].astype(bool)] if isinstance(front, str) else front).sort_values(x)
    ax.plot(best[x], best[y], color="black", lw=1, zorder=2)
    if color:
        points = ax.scatter(best[x], best[y], c=best[color], s=40, zorder=3, cmap="viridis", label="Pareto front")
        ax.figure.colorbar(points, ax=ax, label=label(color))
    else:
        ax.scatter(best[x], best[y], s=40, color="#C44E52", zorder=3, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax, "x", "y")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title("Pareto front")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
    return ax


def comparison_bars(frame: pd.DataFrame, column: str, ax=None):
    """One bar per configuration (the frame's index) for one figure, with its value printed on the bar."""
    ax = _ax(ax)
    names = [str(i) for i in frame.index]
    bars = ax.bar(names, frame[column], color=[f"C{i}" for i in range(len(names))])
    ax.bar_label(bars, labels=[short(v) for v in frame[column]], fontsize=8)
    ax.set_title(label(column))
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    ax.margins(y=0.15)
    return ax


def heatmap(table: pd.DataFrame, ax=None, value: str = ""):
    """A pivoted table (index on the y axis, columns on the x axis) as coloured cells with their values;
    empty cells (configurations that cannot run) stay blank."""
    import numpy as np

    ax = _ax(ax)
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    ax.set_xlabel(label(str(table.columns.name or "")))
    ax.set_ylabel(label(str(table.index.name or "")))
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if v == v:  # NaN: a configuration that cannot run stays blank
            ax.text(j, i, short(v), ha="center", va="center", fontsize=7, color="white")
    ax.figure.colorbar(image, ax=ax, label=label(value) if value else None)
    ax.set_title(label(value) if value else "")
    return ax


def predicted_vs_measured(frame: pd.DataFrame, predicted: str, measured: str, ax=None, by: str | None = None):
    """Predicted against measured values on log axes, with the diagonal of perfect agreement and the 2x
    band around it."""
    import numpy as np

    ax = _ax(ax)
    groups = frame.groupby(by, sort=True) if by else [(None, frame)]
    for key, group in groups:
        ax.scatter(group[measured], group[predicted], s=14, alpha=0.8, label=None if key is None else str(key))
    both = pd.concat([frame[measured], frame[predicted]]).replace(0, np.nan).dropna()
    lo, hi = both.min() / 1.5, both.max() * 1.5
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.plot([lo, hi], [2 * lo, 2 * hi], color="0.6", lw=0.8, ls="--")
    ax.plot([lo, hi], [lo / 2, hi / 2], color="0.6", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax, "x", "y")
    ax.set_xlabel(f"measured {label(measured)}")
    ax.set_ylabel(f"predicted {label(predicted)}")
    if by:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
    return ax


def error_histogram(frame: pd.DataFrame, column: str, ax=None, by: str | None = None, bins: int = 40):
    """Histogram of an error column (e.g. ``log2(predicted / measured)``), one outline per value of ``by``,
    with the zero line of perfect agreement."""
    import numpy as np

    ax = _ax(ax)
    values = frame[column].replace([np.inf, -np.inf], np.nan).dropna()
    edges = np.histogram_bin_edges(values, bins=bins) if len(values) else bins
    groups = frame.groupby(by, sort=True) if by else [(None, frame)]
    for key, group in groups:
        ax.hist(group[column].replace([np.inf, -np.inf], np.nan).dropna(), bins=edges, histtype="step", lw=1.5,
                label=None if key is None else f"{key} ({len(group)})")
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(label(column))
    ax.set_ylabel("measured points")
    if by:
        ax.legend(fontsize=7)
    return ax
