"""The comparison panel: two or more deployments side by side, their figures, differences and charts."""
from __future__ import annotations

import re
import string
from typing import Mapping

import ipywidgets as w

from .. import api, figures
from ..errors import PerfkitError
from . import frames, render
from ..examples import SEED_COMPARISON
from .disagg_form import DisaggregatedForm
from .form import ConfigForm

#: Rows of the comparison table: what each configuration is, then its figures.
TABLE_ROWS = ("model_id", "hardware_config", "batch_size", "input_seq", "output_seq", "replicas", *frames.HEADLINE,
              "limiting_pool", "kv_transfer_ms")


class ComparisonPanel:
    """Configurations side by side: edit any of them, add one (a copy of the last), remove one.

    ``requests`` maps labels to system-metrics requests (default: the seed's comparison, TinyLlama on
    ``nvidia_gb200_single`` against Llama-3.3-70B-Instruct on ``nvidia_nvl72_rack``). After every edit
    ``panel.frame`` holds one row per configuration that runs, ``panel.table`` the figures with each one's
    difference from the first, ``panel.chart`` the bar charts, and ``panel.errors`` a message for each
    configuration that cannot run.

    >>> panel = ComparisonPanel()
    >>> list(panel.frame.index), int(panel.frame.loc["B", "num_chips"])
    (['A', 'B'], 8)
    >>> panel.add()                      # C: a copy of B
    >>> panel.forms[2].degrees["attention"]["tensor_parallel"].value = 16
    >>> int(panel.frame.loc["C", "num_chips"])
    16
    >>> panel.remove("A"); list(panel.frame.index)
    ['B', 'C']

    An aggregated and a disaggregated configuration side by side (a form per pool for the latter):

    >>> from perfkit.examples import AGG_VS_DISAGG
    >>> both = ComparisonPanel(AGG_VS_DISAGG, charts=False)
    >>> both.frame.loc["disaggregated", "limiting_pool"], int(both.frame.loc["disaggregated", "num_chips"])
    ('decode', 4)
    """

    def __init__(self, requests: Mapping[str, Mapping] | None = None, charts: bool = True):
        self._charts = charts
        self._quiet = False
        self.forms: list[ConfigForm] = []
        self.labels: list[str] = []
        self.responses: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.frame = None
        self.add_button = w.Button(description="Add configuration", icon="plus", button_style="info",
                                   layout=w.Layout(width="220px"))
        self.add_button.on_click(lambda _: self.add())
        # the forms wrap onto the next line rather than scroll sideways (three fit side by side at 1600 px)
        self.columns = w.HBox(layout=w.Layout(flex_flow="row wrap", width="100%"))
        self.fit_warning = w.HTML()
        self.message = w.HTML()
        self.table = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="1200px"))
        self.result_json = w.Textarea(layout=w.Layout(width="95%", height="480px"))
        raw = w.Accordion([self.result_json], titles=("Raw JSON responses (POST /config/system-metrics)",))
        raw.selected_index = None
        for name in ("add_button", "fit_warning", "message", "table", "chart", "result_json"):
            getattr(self, name).add_class(f"perfkit-{name}")
        self.widget = w.VBox([self.add_button, self.columns, self.fit_warning, self.message, self.chart, self.table,
                              raw])
        self._quiet = True
        for label, request in (requests or SEED_COMPARISON).items():
            self.add(request, label)
        self._quiet = False
        self.update()

    def _repr_mimebundle_(self, **kwargs):
        return render.mimebundle(self.widget, "ComparisonPanel")

    # -- configurations ------------------------------------------------------------------------------------

    def add(self, request: Mapping | None = None, label: str | None = None) -> None:
        """Add a configuration (a copy of the last one when ``request`` is not given)."""
        if request is None:
            request = self.forms[-1].request() if self.forms else None
        label = label or next(c for c in string.ascii_uppercase + string.ascii_lowercase if c not in self.labels)
        if label in self.labels:
            raise PerfkitError(f"label {label!r} is taken; labels in use: {', '.join(self.labels)}", field="label")
        if request is not None and "disaggregated" in request:  # a form per pool: perfkit/widgets/disagg_form.py
            form = DisaggregatedForm(request, on_change=self.update, title=f"Configuration {label}")
        else:
            form = ConfigForm(request, on_change=self.update, title=f"Configuration {label}")
        remove = w.Button(description=f"Remove {label}", icon="trash",
                          layout=w.Layout(width="max-content", min_width="140px"))
        remove.on_click(lambda _, label=label: self.remove(label))
        form.widget.children = (*form.widget.children[:1], remove, *form.widget.children[1:])
        box = form.widget.layout
        box.border, box.padding, box.margin = "1px solid #ccc", "4px", "2px"
        form.widget.add_class(css_class(label))
        self.forms.append(form)
        self.labels.append(label)
        self._layout()
        self.update()

    def remove(self, label: str) -> None:
        """Drop the configuration called ``label`` (at least one stays)."""
        if label not in self.labels:
            raise PerfkitError(f"no configuration {label!r}; valid choices: {', '.join(self.labels)}", field="label")
        if len(self.labels) == 1:
            raise PerfkitError("the comparison needs at least one configuration", field="label")
        i = self.labels.index(label)
        del self.forms[i], self.labels[i]
        self._layout()
        self.update()

    def requests(self) -> dict[str, dict]:
        """Label -> the system-metrics request of each configuration."""
        return {label: form.request() for label, form in zip(self.labels, self.forms)}

    def _layout(self) -> None:
        self.columns.children = [f.widget for f in self.forms]
        for form in self.forms:
            form.widget.children[1].disabled = len(self.forms) == 1

    # -- results -------------------------------------------------------------------------------------------

    def update(self) -> None:
        """Recompute every configuration (called on every edit)."""
        if self._quiet:
            return
        requests = self.requests()
        self.responses, self.errors, bodies = {}, {}, {}
        for label, request in requests.items():
            try:
                self.responses[label] = bodies[label] = api.system_metrics(request)
            except PerfkitError as exc:
                self.errors[label] = exc.message
                bodies[label] = exc.to_dict()  # what the API answers with its 400
        lines = [f"{label} cannot run: {text}" for label, text in self.errors.items()]
        no_fit = [f"{label} {note}" for label, r in self.responses.items() for note in r["system"]["notes"]
                  if not r["system"]["fits_on_hardware"] and note.startswith("does not fit")]
        notes = [f"{label}: {note}" for label, r in self.responses.items() for note in r["system"].get("notes", [])
                 if not note.startswith("does not fit")]
        self.fit_warning.value = render.warning_html("\n".join(no_fit))
        self.message.value = render.message_html("\n".join(lines)) + render.message_html("\n".join(notes), False)
        self.result_json.value = render.json_text(bodies)
        if not self.responses:
            self.frame = None
            self.table.value, self.chart.value = "", b""
            return
        self.frame = frames.system_frame({k: requests[k] for k in self.responses}, self.responses)
        self.table.value = render.table_html(frames.comparison_table(self.frame, TABLE_ROWS))
        if self._charts:
            self.chart.value = self._draw()

    def _draw(self) -> bytes:
        return figures.png(figures.comparison_figure(self.frame))


def css_class(label: str) -> str:
    """The CSS class of a configuration's form: ``perfkit-form-`` and the label with every character that a
    class name cannot hold (a space, say: ``TP4 x PP2``) spelled as ``-``, plus the label's code points when
    that changed it, so that two labels never share a class."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", label)
    if slug != label:
        slug += "-" + "-".join(f"{ord(c):x}" for c in label if not re.match(r"[A-Za-z0-9_-]", c))
    return f"perfkit-form-{slug}"
