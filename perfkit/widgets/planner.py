"""The planner panel: a model, a chip budget, a workload and p99 SLOs in; the ranked layouts, the latency
curve of the best one, the Pareto front and its launch commands out (all from :func:`perfkit.plan`)."""
from __future__ import annotations

import ipywidgets as w

from .. import catalog, figures
from ..errors import PerfkitError
from ..planner import ENGINES, plan
from ..planner.plots import plan_figure
from . import render

#: The plan columns the panel's table shows.
SHOWN = ["tensor_parallel", "pipeline_parallel", "expert_parallel", "attention_data_parallel", "replicas", "dtype",
         "kv_dtype",
         "max_running_sequences", "arrival_rate_qps", "requests_s_per_chip", "tokens_s_per_user",
         "load_ttft_ms_p99", "load_tpot_ms_p99", "load_bound", "usd_per_million_output_tokens",
         "joules_per_output_token"]
DEFAULT = {"model_id": "meta-llama/Llama-3.3-70B-Instruct", "hardware_config": "nvidia_h200_hgx", "chips": 8,
           "input_seq": 1024, "output_seq": 256, "ttft_p99_ms": 1000.0, "tpot_p99_ms": 40.0}


class PlannerPanel:
    """How many requests/s can a chip budget serve within p99 TTFT and TPOT SLOs, with which layout, at
    what cost, and how to launch it.

    Press *Plan* (or call :meth:`run`): ``panel.plan`` is the :class:`perfkit.planner.Plan`; the table shows
    its best layouts, the chart the best layout's latency against the rate and the Pareto front, the text
    box the launch command of the chosen engine. An empty plan shows its reason and the closest miss.

    >>> panel = PlannerPanel(charts=False)
    >>> panel.caps.value = "64, 256"
    >>> panel.run()
    >>> bool(panel.plan.best["load_ttft_ms_p99"] <= 1000), panel.launch.value.startswith("vllm serve")
    (True, True)
    >>> panel.engine.value = "sglang"; "sglang.launch_server" in panel.launch.value
    True
    """

    def __init__(self, settings: dict | None = None, charts: bool = True):
        s = {**DEFAULT, **(settings or {})}
        self._charts = charts
        self.plan = None
        style, wide = {"description_width": "150px"}, w.Layout(width="420px")
        self.model = w.Dropdown(options=catalog.list_models(), value=s["model_id"], description="model",
                                style=style, layout=wide)
        self.hardware = w.Dropdown(options=catalog.list_hardware(), value=s["hardware_config"],
                                   description="hardware", style=style, layout=wide)
        self.chips = w.BoundedIntText(s["chips"], min=1, max=4096, description="chips", style=style, layout=wide)
        self.input_seq = w.BoundedIntText(s["input_seq"], min=1, max=1 << 20, description="input tokens",
                                          style=style, layout=wide)
        self.output_seq = w.BoundedIntText(s["output_seq"], min=1, max=1 << 20, description="output tokens",
                                           style=style, layout=wide)
        self.ttft = w.BoundedFloatText(s["ttft_p99_ms"], min=0.001, max=1e9, description="p99 TTFT SLO (ms)",
                                       style=style, layout=wide)
        self.tpot = w.BoundedFloatText(s["tpot_p99_ms"], min=0.001, max=1e9, description="p99 TPOT SLO (ms)",
                                       style=style, layout=wide)
        self.price = w.Text("", description="USD per chip-hour", placeholder="optional (no default price)",
                            style=style, layout=wide)
        self.caps = w.Text("8, 16, 32, 64, 128, 256, 512", description="running caps", style=style, layout=wide)
        self.run_button = w.Button(description="Plan", icon="play", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.status = w.HTML()
        self.table = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="1150px"))
        self.engine = w.ToggleButtons(options=list(ENGINES), description="launch with")
        self.engine.observe(lambda _: self._show_command(), names="value")
        self.launch = w.Textarea(layout=w.Layout(width="760px", height="200px"))
        for name in ("status", "table", "chart", "launch"):
            getattr(self, name).add_class(f"perfkit-{name}")
        inputs = w.VBox([self.model, self.hardware, self.chips, self.input_seq, self.output_seq, self.ttft,
                         self.tpot, self.price, self.caps, self.run_button, self.status])
        self.widget = w.VBox([inputs, self.chart, w.HTML("<b>Layouts within the SLOs</b> (best first)"),
                              self.table, self.engine, self.launch])

    def _repr_mimebundle_(self, **kwargs):
        return render.mimebundle(self.widget, "PlannerPanel")

    def run(self) -> None:
        """Plan with the widgets' values and show the result (a bad value is a message, not an exception)."""
        try:
            price = float(self.price.value) if self.price.value.strip() else None
            caps = tuple(sorted({int(t) for t in self.caps.value.replace(",", " ").split()}))
            if not caps or min(caps) < 1:
                raise PerfkitError(f"running caps: write positive whole numbers, got {self.caps.value!r}",
                                   field="running_caps")
            self.plan = plan(self.model.value, self.hardware.value, self.chips.value, self.input_seq.value,
                             self.output_seq.value, self.ttft.value, self.tpot.value, price_per_chip_hour=price,
                             running_caps=caps)
        except (PerfkitError, ValueError) as exc:
            self.plan = None
            self.status.value = render.message_html(str(exc))
            self.table.value = self.launch.value = ""
            return
        if self.plan.layouts.empty:
            miss = self.plan.closest_miss or {}
            closest = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in miss.items() if k in SHOWN)
            self.status.value = render.message_html(self.plan.reason + (f"\nclosest miss: {closest}" if closest else ""))
            self.table.value = self.launch.value = ""
            return
        best = self.plan.best
        self.status.value = render.message_html(
            f"{best['arrival_rate_qps']:.3g} requests/s on {int(best['num_chips'])} chips "
            f"({best['requests_s_per_chip']:.3g} per chip) within the SLOs", error=False)
        shown = [c for c in SHOWN if c in self.plan.layouts]
        self.table.value = render.table_html(self.plan.layouts[shown].head(10))
        self._show_command()
        if self._charts:
            self.chart.value = figures.png(plan_figure(self.plan))

    def _show_command(self) -> None:
        if self.plan is not None and not self.plan.layouts.empty:
            self.launch.value = self.plan.command(self.engine.value)
