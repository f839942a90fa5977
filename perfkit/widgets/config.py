"""The configuration panel: one deployment's inputs, its system and layer metrics as tables, charts and the
raw JSON of the API."""
from __future__ import annotations

from typing import Mapping

import ipywidgets as w

from .. import api, figures, plots
from ..errors import PerfkitError
from . import frames, render
from .form import ConfigForm

#: Layer-metrics columns the layer table shows.
LAYER_COLUMNS = ["layer_type", "phase", "num_instances", "num_chips", "weights_per_chip_gb",
                 "kv_cache_per_chip_gb", "activation_per_chip_gb", "flops_per_chip_tflops",
                 "time_per_instance_ms", "compute_pct", "memory_pct", "communication_pct"]


class ConfigPanel:
    """Pick a model, hardware, batch, lengths and each layer's parallelism and dtype; read the answer.

    Display ``panel.widget``. Every edit calls :func:`perfkit.system_metrics` and
    :func:`perfkit.layer_metrics`; a configuration they reject is explained in ``panel.message``.

    >>> panel = ConfigPanel({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                      "batch_size": 8, "input_seq": 1024, "output_seq": 256})
    >>> panel.response["system"]["num_chips"]
    1
    >>> panel.form.degrees["attention"]["tensor_parallel"].value = 2
    >>> panel.response["system"]["num_chips"], panel.error
    (2, '')
    """

    def __init__(self, request: Mapping | None = None, charts: bool = True):
        self.response: dict | None = None
        self.layer_responses: dict = {}
        self.frame = None
        self.layers_frame = None
        self.error = ""
        self._charts = charts
        self.message = w.HTML()
        self.table = w.HTML()
        self.layer_table = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="980px"))
        self.fit_warning = w.HTML()
        json_box = w.Layout(width="auto", height="460px")
        self.request_json = w.Textarea(layout=json_box)
        self.result_json = w.Textarea(layout=json_box)
        self.layer_choice = w.Dropdown(description="layer", layout=w.Layout(width="auto"))
        self.layer_json = w.Textarea(layout=w.Layout(width="auto", height="420px"))
        self.layer_choice.observe(lambda _: self._show_layer_json(), names="value")
        column = w.Layout(flex="1 1 360px", min_width="360px", margin="0 6px 6px 0", overflow="hidden")
        tabs = w.Tab([w.VBox([self.table, self.chart]), self.layer_table,
                      # the three JSON bodies share the width and wrap under each other when it is narrow
                      w.HBox([w.VBox([w.HTML("<b>the request</b>"), self.request_json], layout=column),
                              w.VBox([w.HTML("<b>POST /config/system-metrics</b>"), self.result_json],
                                     layout=column),
                              w.VBox([w.HTML("<b>POST /config/layer-metrics</b>"), self.layer_choice,
                                      self.layer_json], layout=column)],
                             layout=w.Layout(flex_flow="row wrap", width="auto", overflow="hidden"))],
                     layout=w.Layout(width="auto"))
        for i, title in enumerate(("System", "Layers", "JSON")):
            tabs.set_title(i, title)
        for name in ("fit_warning", "message", "table", "layer_table", "chart", "request_json", "result_json",
                     "layer_json"):
            getattr(self, name).add_class(f"perfkit-{name}")
        self.form = ConfigForm(request, on_change=self.update)
        self.widget = w.HBox([self.form.widget, w.VBox([self.fit_warning, self.message, tabs],
                                                       layout=w.Layout(flex="1 1 auto", min_width="0"))])
        self.update()

    def _repr_mimebundle_(self, **kwargs):
        return render.mimebundle(self.widget, "ConfigPanel")

    def request(self) -> dict:
        """The system-metrics request the panel shows."""
        return self.form.request()

    def update(self) -> None:
        """Recompute everything from the widgets (called on every edit)."""
        request = self.form.request()
        self.request_json.value = render.json_text(request)
        try:
            response = api.system_metrics(request)
            layer_responses = frames.layer_responses(request)
        except PerfkitError as exc:
            self._show_error(exc)
            return
        self.error = ""
        self.response, self.layer_responses = response, layer_responses
        self.frame = frames.system_frame({"value": request}, {"value": response})
        self.layers_frame = frames.layer_frame(request, layer_responses)
        notes = response["system"].get("notes", [])
        no_fit = [n for n in notes if n.startswith("does not fit")]
        self.fit_warning.value = render.warning_html("\n".join(no_fit))
        self.message.value = render.message_html("\n".join(n for n in notes if n not in no_fit), error=False)
        self.table.value = render.table_html(frames.comparison_table(self.frame))
        layers = self.layers_frame[LAYER_COLUMNS].set_index(["layer_type", "phase"])
        self.layer_table.value = render.table_html(layers)
        self.result_json.value = render.json_text(response)
        chosen = self.layer_choice.value
        self.layer_choice.options = [f"{t} ({p})" for t, p in layer_responses]
        # keep the layer shown; the first one otherwise (a drop-down left at None shows blank)
        self.layer_choice.value = chosen if chosen in self.layer_choice.options else self.layer_choice.options[0]
        self._show_layer_json()
        if self._charts:
            self.chart.value = self._draw()

    def _show_error(self, exc: PerfkitError) -> None:
        self.error = exc.message
        self.fit_warning.value = ""
        self.response = None
        self.message.value = render.message_html(f"This configuration cannot run: {exc.message}")
        for box in (self.table, self.layer_table):
            box.value = ""
        self.chart.value = b""
        self.result_json.value = render.json_text(exc.to_dict())
        self.layer_json.value = ""

    def _show_layer_json(self) -> None:
        choice = self.layer_choice.value
        if choice:
            layer_type, phase = choice.rstrip(")").split(" (")
            self.layer_json.value = render.json_text(self.layer_responses[(layer_type, phase)])

    def _draw(self) -> bytes:
        fig, (left, right) = figures.new_figure(2, width=4.8)
        plots.memory_breakdown(frames.memory_frame(self.frame), ax=left)
        plots.roofline(self.layers_frame, ax=right)
        return figures.png(fig)
