"""The sweep panel: pick axes and ranges, run :func:`perfkit.sweep`, read the Pareto front, a heatmap and the
best configuration under a latency budget, export the table as CSV."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import ipywidgets as w

from .. import api, catalog, figures, plots
from ..engine.layout import valid_tensor_parallel
from ..errors import PerfkitError
from . import frames, render
from .picks import Picks

#: Figures a heatmap can colour by, with the direction that is better.
HEATMAP_VALUES = {"throughput_per_chip_tokens_s": "max", "throughput_tokens_s": "max", "tpot_ms": "min",
                  "ttft_ms": "min", "memory_per_chip_gb": "min"}
FRONT_COLUMNS = ["hardware_config", "batch_size", "input_seq", "layers.all.tensor_parallel", "layers.all.dtype",
                 "num_chips", "ttft_ms", "tpot_ms", "throughput_tokens_s", "throughput_per_chip_tokens_s"]

DEFAULT_GRID = {"model_id": "meta-llama/Llama-3.1-70B",
                "hardware_config": ["nvidia_h100_hgx", "nvidia_h200_hgx", "nvidia_b200_hgx"],
                "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256], "input_seq": [1024, 4096], "output_seq": [256],
                "layers": {"all": {"tensor_parallel": [1, 2, 4, 8], "dtype": ["bf16", "fp8"]}}}


def parse_ints(text: str, field: str) -> list[int]:
    """``"1, 2, 4"`` -> ``[1, 2, 4]``; anything else is a :class:`PerfkitError` naming the field."""
    words = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not words or not all(t.isdigit() and int(t) > 0 for t in words):
        raise PerfkitError(f"{field}: write positive whole numbers separated by commas, got {text!r}",
                           field=field)
    return sorted({int(t) for t in words})


class SweepPanel:
    """Sweep one model over hardware, batch sizes, prompt and output lengths, tensor parallelism and dtypes.

    Press *Run* (or call :meth:`run`): ``panel.table`` is the sweep's DataFrame, ``panel.front`` its Pareto
    front (least TPOT for the most throughput per chip), ``panel.best`` the configuration with the most
    throughput per chip within the TTFT and TPOT budgets. *Export CSV* writes ``panel.table``.

    >>> panel = SweepPanel()
    >>> panel.batch_sizes.value = "1, 8, 64"
    >>> panel.run()
    >>> len(panel.table) == 3 * 3 * 2 * 4 * 2, bool(panel.front["valid"].all())
    (True, True)
    """

    def __init__(self, grid: Mapping | None = None, charts: bool = True):
        grid = _shown(grid or DEFAULT_GRID)
        self._charts = charts
        self.table = self.front = self.best = None
        self._table_shown = None  # the table the heatmap pickers describe
        self.error = ""
        style = {"description_width": "120px"}
        wide = w.Layout(width="420px")
        self.model = w.Dropdown(options=catalog.list_models(), value=grid["model_id"], description="model",
                                style=style, layout=wide)
        self.hardware = Picks(catalog.list_hardware(), value=tuple(grid["hardware_config"]), description="hardware",
                              columns=3)
        self.batch_sizes = w.Text(_text(grid["batch_size"]), description="batch sizes", style=style, layout=wide)
        self.input_seqs = w.Text(_text(grid["input_seq"]), description="input tokens", style=style, layout=wide)
        self.output_seqs = w.Text(_text(grid["output_seq"]), description="output tokens", style=style,
                                  layout=wide)
        settings = grid.get("layers", {}).get("all", {})
        self.tensor_parallel = Picks(description="tensor parallel", columns=8)
        self.dtypes = Picks(description="dtypes", columns=8)
        self._offer(settings.get("tensor_parallel", [1]), settings.get("dtype", []))
        self.model.observe(lambda _: self._offer(self.tensor_parallel.value, self.dtypes.value), names="value")
        self.max_ttft_ms = w.BoundedFloatText(2000.0, min=0.0, max=1e9, description="TTFT budget (ms)",
                                              style=style, layout=wide)
        self.max_tpot_ms = w.BoundedFloatText(50.0, min=0.0, max=1e9, description="TPOT budget (ms)",
                                              style=style, layout=wide)
        self.run_button = w.Button(description="Run sweep", icon="play", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.status = w.HTML()
        scroll = w.Layout(overflow="auto", max_width="100%")  # a wide table scrolls inside itself, never clipped
        self.best_table = w.HTML(layout=scroll)
        self.front_table = w.HTML(layout=scroll)
        self.pareto_chart = w.Image(format="png", layout=w.Layout(max_width="760px", width="100%"))
        picker = {"style": {"description_width": "80px"}, "layout": w.Layout(width="330px")}
        self.heat_x = w.Dropdown(description="heatmap x", **picker)
        self.heat_y = w.Dropdown(description="heatmap y", **picker)
        self.heat_value = w.Dropdown(options=list(HEATMAP_VALUES), description="colour", **picker)
        for box in (self.heat_x, self.heat_y, self.heat_value):
            box.observe(lambda _: self._draw_heatmap(), names="value")
        self.heatmap_chart = w.Image(format="png", layout=w.Layout(max_width="640px", width="100%"))
        self.csv_path = w.Text("out/sweep.csv", description="CSV file", style=style, layout=wide)
        self.export_button = w.Button(description="Export CSV", icon="download")
        self.export_button.on_click(lambda _: self.export())
        self.export_status = w.HTML()
        for name in ("status", "best_table", "front_table", "pareto_chart", "heatmap_chart", "export_status"):
            getattr(self, name).add_class(f"perfkit-{name}")
        inputs = w.VBox([self.model, self.hardware.widget, self.batch_sizes, self.input_seqs, self.output_seqs,
                         self.tensor_parallel.widget, self.dtypes.widget, self.max_ttft_ms, self.max_tpot_ms,
                         self.run_button, self.status])
        results = w.VBox([
            w.HTML("<b>Best configuration within the budgets</b> (most throughput per chip)"), self.best_table,
            w.HBox([w.VBox([self.pareto_chart], layout=w.Layout(flex="1 1 600px", min_width="0")),
                    w.VBox([self.heat_x, self.heat_y, self.heat_value, self.heatmap_chart],
                           layout=w.Layout(flex="1 1 520px", min_width="0"))],
                   layout=w.Layout(flex_flow="row wrap", width="100%")),
            w.HTML("<b>Pareto front</b>"), self.front_table,
            w.HBox([self.csv_path, self.export_button]), self.export_status])
        self.widget = w.VBox([inputs, results])

    def _repr_mimebundle_(self, **kwargs):
        return render.mimebundle(self.widget, "SweepPanel")

    def _offer(self, tensor_parallel, dtypes) -> None:
        """Tensor-parallel degrees that split both the attention heads and the feed-forward width of the
        model, and the dtypes its layers accept; keep the chosen ones that remain."""
        spec = catalog.model_spec(self.model.value)
        tp = [t for t in valid_tensor_parallel(spec, "attention", 64)
              if t in valid_tensor_parallel(spec, "feedforward", 64)]
        self.tensor_parallel.options = tp
        self.tensor_parallel.value = tuple(t for t in tensor_parallel if t in tp) or (1,)
        available = api.layers(self.model.value)["layers"][0]["available_dtypes"]
        self.dtypes.options = available
        self.dtypes.value = tuple(d for d in dtypes if d in available) or (spec.default_dtype("attention"),)

    def grid(self) -> dict:
        """The sweep the widgets describe (a :func:`perfkit.sweep` grid)."""
        if not self.hardware.value:
            raise PerfkitError("choose at least one hardware system", field="hardware_config")
        return {"model_id": self.model.value, "hardware_config": list(self.hardware.value),
                "batch_size": parse_ints(self.batch_sizes.value, "batch_size"),
                "input_seq": parse_ints(self.input_seqs.value, "input_seq"),
                "output_seq": parse_ints(self.output_seqs.value, "output_seq"),
                "layers": {"all": {"tensor_parallel": list(self.tensor_parallel.value),
                                   "dtype": list(self.dtypes.value)}}}

    def run(self) -> None:
        """Run the sweep and show its results (a bad range is explained in ``panel.status``)."""
        from ..sweeps import best_config, pareto_front

        try:
            table = frames.sweep_table(self.grid())
        except PerfkitError as exc:
            self.error = exc.message
            self.status.value = render.message_html(exc.message)
            return
        self.error = ""
        self.table = table
        self.front = pareto_front(table, x="tpot_ms", y="throughput_per_chip_tokens_s")
        runs = int(table["valid"].sum())
        reasons = table.loc[~table["valid"], "reason"].value_counts()
        why = "; ".join(f"{n:,} x {text}" for text, n in reasons[reasons > 0].head(3).items())
        if runs:
            text = f"{len(table):,} configurations, {runs:,} run, {len(self.front)} on the Pareto front"
        else:
            text = f"none of the {len(table):,} configurations runs"
        self.status.value = render.message_html(text + (f"; top reasons the others do not: {why}" if why else ""),
                                                error=not runs)
        try:
            self.best = best_config(table, "throughput_per_chip_tokens_s", max_ttft_ms=self.max_ttft_ms.value,
                                    max_tpot_ms=self.max_tpot_ms.value)
            self.best_table.value = render.table_html(self.best[_present(FRONT_COLUMNS, table)].to_frame("best"))
        except PerfkitError as exc:
            self.best = None
            self.best_table.value = render.message_html(exc.message)
        self.front_table.value = render.table_html(self.front[_present(FRONT_COLUMNS, table)])
        axes = [a for a in table.attrs.get("axes", []) if table[a].nunique() > 1] or ["batch_size"]
        self._table_shown = None  # no heatmap while the axis pickers change under it
        self.heat_x.options, self.heat_y.options = axes, axes
        self.heat_x.value = "batch_size" if "batch_size" in axes else axes[0]
        self.heat_y.value = next((a for a in axes if a != self.heat_x.value), axes[0])
        self._table_shown = table
        if runs == 0:
            self.pareto_chart.value = self.heatmap_chart.value = b""
            return
        if self._charts:
            fig = figures.pareto_figure(table[table["valid"]], self.front, y="throughput_per_chip_tokens_s",
                                        color="num_chips", marker="hardware_config")
            self.pareto_chart.value = figures.png(fig)
        self._draw_heatmap()

    def _draw_heatmap(self) -> None:
        x, y = self.heat_x.value, self.heat_y.value
        if self._table_shown is None or not self._charts or not x or not y or x == y:
            return
        value = self.heat_value.value
        pivot = frames.heatmap_table(self.table, x, y, value, HEATMAP_VALUES[value])
        fig, (ax,) = figures.new_figure(1, width=6.4, height=4.4)
        plots.heatmap(pivot, ax=ax, value=value)
        ax.set_title(f"best {plots.label(value)} over the other axes")
        self.heatmap_chart.value = figures.png(fig)

    def export(self) -> Path | None:
        """Write the sweep table as CSV to ``panel.csv_path`` and say where."""
        if self.table is None:
            self.export_status.value = render.message_html("run the sweep first")
            return None
        path = Path(self.csv_path.value).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path, index=False)
        self.export_status.value = render.message_html(f"wrote {len(self.table):,} rows to {path.resolve()}",
                                                       error=False)
        return path


def _shown(grid: Mapping) -> dict:
    """``grid`` as the panel shows it (one model, lists of everything else); what it cannot show is an error."""
    unshown = [k for k in grid if k not in DEFAULT_GRID]
    settings = grid.get("layers", {})
    unshown += [f"layers.{k}" for k in settings if k != "all"]
    unshown += [f"layers.all.{k}" for k in settings.get("all", {}) if k not in ("tensor_parallel", "dtype")]
    if unshown or not isinstance(grid.get("model_id"), str):
        field = unshown[0] if unshown else "model_id"
        raise PerfkitError(f"the sweep panel cannot show {field!r}; it sweeps one model_id over hardware_config, "
                           "batch_size, input_seq, output_seq and layers.all.tensor_parallel / dtype "
                           "(use perfkit.sweep for other grids)", field=field)
    out = dict(grid)
    hw = grid.get("hardware_config", DEFAULT_GRID["hardware_config"])
    out["hardware_config"] = [hw] if isinstance(hw, str) else list(hw)
    return out


def _text(values) -> str:
    return ", ".join(str(v) for v in (values if isinstance(values, (list, tuple)) else [values]))


def _present(columns, table) -> list[str]:
    return [c for c in columns if c in table.columns]
