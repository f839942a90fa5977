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


def _plain_log(ax, *axes: str, minor_labels: bool | None = None) -> None:
    """Log axes labelled 1, 10, 100 rather than 10^k; the 2 and 5 between are labelled too when the axis spans
    less than :data:`MINOR_LABEL_DECADES` decades (``minor_labels=None``), where they would not crowd into
    each other; few minor ticks, which keeps drawing fast."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name in axes:
        axis = getattr(ax, f"{name}axis")
        lo, hi = getattr(ax, f"get_{name}lim")()
        narrow = lo > 0 and hi > 0 and math.log10(hi / lo) < MINOR_LABEL_DECADES
        axis.set_major_formatter(FuncFormatter(lambda v, _: short(v)))
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        label_minor = narrow if minor_labels is None else minor_labels
        axis.set_minor_formatter(FuncFormatter(lambda v, _: short(v)) if label_minor else NullFormatter())


#: Below this many decades a log axis labels its 2 and 5 ticks as well.
MINOR_LABEL_DECADES = 1.5


def label(column: str) -> str:
    """Axis words for a column name (the column name itself when there are none).

    >>> label("measured_ttft_ms"), label("layers.all.tensor_parallel")
    ('measured TTFT (ms)', 'tensor parallel')
    """
    for prefix in ("measured_", "predicted_"):
        if column.startswith(prefix) and column != prefix:
            return f"{prefix[:-1]} {label(column[len(prefix):])}"
    return LABELS.get(column, column.rsplit(".", 1)[-1].replace("_", " "))


def roofline(layers: pd.DataFrame, ax=None):
    """Layers on the chip's roofline: arithmetic intensity (FLOPs per byte moved through HBM) against attained
    TFLOP/s, one marker per layer type and phase, under the roofs ``min(peak_tflops_s, hbm_tb_s x intensity)``.

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
    ax.set_xlabel("FLOPs per byte moved through HBM")
    ax.set_ylabel("attained TFLOP/s per chip")
    chip = layers["chip"].iloc[0] if "chip" in layers else ""
    ax.set_title(f"Roofline of one {chip} (HBM {bandwidth:g} TB/s)" if chip else f"Roofline (HBM {bandwidth:g} TB/s)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _plain_log(ax, "x", "y", minor_labels=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax


#: Shown on log axes when the largest of a chart's values is this many times its smallest (small bars stay readable).
LOG_SPREAD = 20.0
NO_FIT_COLOR = "#BBBBBB"


def _fits(frame: pd.DataFrame) -> pd.Series:
    return frame["fits_on_hardware"].astype(bool) if "fits_on_hardware" in frame else pd.Series(True, frame.index)


def memory_breakdown(memory: pd.DataFrame, ax=None):
    """Stacked bars of one chip's memory (weights, KV cache, activations) per configuration, the busiest
    chip's footprint as a marker and the chip's capacity as a red tick; a configuration that does not fit
    says so over its bar. When the footprints span more than :data:`LOG_SPREAD` times, the axis is
    logarithmic so that the small ones stay readable.

    ``memory`` is :func:`perfkit.widgets.frames.memory_frame`.
    """
    import numpy as np

    ax = _ax(ax)
    names = [str(i) for i in memory.index]
    used = memory["memory_per_chip_gb"].astype(float)
    positive = used[used > 0]
    log = len(positive) > 1 and positive.max() / positive.min() > LOG_SPREAD
    floor = positive.min() / 4 if log else 0.0
    bottom = pd.Series(floor, index=memory.index)
    for part in ("weights_gb", "kv_cache_gb", "activation_gb"):
        ax.bar(names, memory[part], bottom=bottom, color=COLORS[part], label=label(part))
        bottom = bottom + memory[part]
    ax.scatter(names, used, marker="_", s=900, color="black", zorder=3, label="busiest chip")
    ax.scatter(names, memory["hw_capacity_gb"], marker="_", s=900, color="#C44E52", linewidths=3, zorder=3,
               label="chip capacity")
    fits = used <= memory["hw_capacity_gb"]
    for name, u, capacity, ok in zip(names, used, memory["hw_capacity_gb"], fits):
        # the capacity to one decimal, as the API's notes give it (85.5 GB, not "86")
        ax.annotate(f"{short(u)} of {capacity:.1f} GB" + ("" if ok else "\nDOES NOT FIT"), (name, u),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7,
                    color="black" if ok else "#B00020", fontweight="normal" if ok else "bold")
    capacity = float(memory["hw_capacity_gb"].max())
    top = max(float(used.max()), capacity)
    if capacity > 5 * used.max():  # the capacity would flatten every bar: scale to the bars, say it in words
        top = float(used.max()) * 1.5
        ax.text(0.02, 0.97, f"chip capacity {capacity:.1f} GB (above the scale)", transform=ax.transAxes,
                ha="left", va="top", fontsize=7, color="#C44E52")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(floor, top * 3)
        _plain_log(ax, "y", minor_labels=False)
    else:
        ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("GB per chip" + (" (log scale)" if log else ""))
    ax.set_title("Memory per chip")
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS[part], label=label(part)) for part in ("weights_gb", "kv_cache_gb", "activation_gb")]
    handles += [Line2D([], [], color="black", lw=1.5, label="busiest chip"),
                Line2D([], [], color="#C44E52", lw=3, label="chip capacity")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              handlelength=1.5)
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


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def pareto_front(frame: pd.DataFrame, ax=None, x: str = "tpot_ms", y: str = "throughput_tokens_s",
                 front: pd.DataFrame | str = "pareto", color: str | None = None, marker: str | None = None):
    """Every configuration as a grey dot and the Pareto front joined in black: ``front`` is the front's rows
    (e.g. :func:`perfkit.sweeps.pareto_front`) or the name of a boolean column of ``frame`` flagging them.
    With ``color`` (e.g. ``num_chips``) the front's markers take one colour per value of that column, with
    ``marker`` (e.g. ``hardware_config``) one shape per value; the legends sit outside the axes."""
    ax = _ax(ax)
    best = (frame[frame[front].astype(bool)] if isinstance(front, str) else front).sort_values(x)
    every = frame[marker].astype(str) if marker else pd.Series("", index=frame.index)
    shapes = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(sorted(every.unique()))}
    for value, group in frame.groupby(every, sort=True):  # every configuration, shaped by its hardware
        ax.scatter(group[x], group[y], s=9, color="0.78", marker=shapes[value], zorder=1, linewidths=0)
    ax.plot(best[x], best[y], color="black", lw=1, zorder=2, label="Pareto front")
    colour_of = best[color] if color else pd.Series(0, index=best.index)
    shape_of = best[marker].astype(str) if marker else pd.Series("", index=best.index)
    colours = {v: f"C{i % 10}" for i, v in enumerate(sorted(colour_of.unique()))} if color else {0: "#C44E52"}
    for (c, m), group in best.groupby([colour_of, shape_of], sort=True):
        ax.scatter(group[x], group[y], s=44, zorder=3, color=colours[c], marker=shapes[m], edgecolors="white",
                   linewidths=0.5)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=4, color="0.8", label="every configuration"),
               Line2D([], [], color="black", lw=1, label="Pareto front")]

    if color:
        handles += [Line2D([], [], ls="", marker="o", color=col, label=_value_word(color, v))
                    for v, col in colours.items()]
    if marker:
        handles += [Line2D([], [], ls="", marker=shape, color="0.3", label=_value_word(marker, v))
                    for v, shape in shapes.items()]
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax, "x", "y")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title("Pareto front")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, which="both", alpha=0.2)
    return ax


def pareto_fronts(fronts: pd.DataFrame, by: list[str], ax=None, x: str = "tpot_ms",
                  y: str = "throughput_per_chip_tokens_s"):
    """One Pareto front per workload (each combination of the ``by`` columns, e.g. model and prompt length)
    as a labelled line of markers on log axes; ``fronts`` holds the rows of every front."""
    ax = _ax(ax)
    groups = fronts.groupby(by, observed=True, sort=True) if by else [((), fronts)]
    for i, (key, group) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        words = ", ".join(_workload_word(name, value) for name, value in zip(by, key))
        group = group.sort_values(x)
        ax.plot(group[x], group[y], marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.2, color=f"C{i % 10}",
                label=f"{words or 'all configurations'} ({len(group)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log(ax, "x", "y")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title("Pareto front of each workload")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, which="both", alpha=0.2)
    return ax


def _value_word(name: str, value) -> str:
    """A legend entry for one value of a column: ``8 chips``, ``hardware nvidia_h100_hgx``."""
    if name == "num_chips":
        return f"{int(value)} chip{'s' if int(value) != 1 else ''}"
    return f"{label(name)} {value}"


def _workload_word(name: str, value) -> str:
    if name == "model_id":
        return str(value).split("/")[-1]
    return f"{label(name)} {value}"


def comparison_bars(frame: pd.DataFrame, column: str, ax=None):
    """One bar per configuration (the frame's index) for one figure, with its value printed on the bar; a
    configuration that does not fit (``fits_on_hardware`` False) is a grey hatched bar labelled so. The axis
    is logarithmic when the values span more than :data:`LOG_SPREAD` times."""
    ax = _ax(ax)
    names = [str(i) for i in frame.index]
    values = frame[column].astype(float)
    fits = _fits(frame)
    colors = [f"C{i}" if ok else NO_FIT_COLOR for i, ok in enumerate(fits)]
    bars = ax.bar(names, values, color=colors, hatch=["" if ok else "//" for ok in fits], edgecolor="white")
    ax.bar_label(bars, labels=[short(v) if ok else f"{short(v)}\ndoes not fit" for v, ok in zip(values, fits)],
                 fontsize=8)
    positive = values[values > 0]
    if len(positive) > 1 and positive.max() / positive.min() > LOG_SPREAD:
        ax.set_yscale("log")
        _plain_log(ax, "y", minor_labels=False)
        ax.set_ylim(positive.min() / 3, positive.max() * 4)
    else:
        ax.margins(y=0.2)
    ax.set_title(label(column))
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)
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
    ax.set_xlabel(label(measured))  # "measured TTFT (ms)": the column names its side already
    ax.set_ylabel(label(predicted))
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
