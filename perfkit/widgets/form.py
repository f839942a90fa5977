"""The inputs of one configuration: model, hardware, batch, lengths, and each layer's degrees and dtype.

A :class:`ConfigForm` turns its widgets into a system-metrics request (:meth:`ConfigForm.request`) and back
(:meth:`ConfigForm.set_request`). The choices come from the catalog and from :func:`perfkit.layers`: a layer
offers only the degrees the API lists for it, tensor-parallel degrees only where they split the heads or
widths evenly, expert-parallel degrees only where they divide the experts.
"""
from __future__ import annotations

from typing import Callable, Mapping

import ipywidgets as w

from .. import api, catalog
from ..dtypes import DTYPES
from ..engine.layout import valid_tensor_parallel
from ..engine.system import SERVING_MODES
from ..errors import PerfkitError
from ..inputs import LIMITS, SYSTEM_OPTIONAL

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)
#: Largest degree offered in a drop-down (the biggest scale-up domains in the catalog hold 72 chips).
MAX_DEGREE = 64
SHORT = {"tensor_parallel": "TP", "context_parallel": "CP", "sequence_parallel": "SP",
         "expert_parallel": "EP", "data_parallel": "DP"}

#: Request fields beyond the seed that the form offers, with the value the API assumes when they are absent.
OPTIONAL_DEFAULTS = {"pipeline_parallel": 1, "kv_dtype": "", "serving_mode": "static", "serving_engine": "generic",
                     "uncertainty": False}
#: Whole copies of the deployment serving the load side by side, where the API takes that field.
HAS_REPLICAS = "replicas" in SYSTEM_OPTIONAL
if HAS_REPLICAS:
    OPTIONAL_DEFAULTS = {"pipeline_parallel": 1, "replicas": 1, **OPTIONAL_DEFAULTS}
#: The KV-cache drop-down's first choice: the attention dtype (the API's default). Not ``None``: a drop-down
#: whose value is ``None`` shows as blank in the browser.
AS_ATTENTION = ""
#: Every top-level request field the form shows.
SHOWN = ("model_id", "hardware_config", "batch_size", "input_seq", "output_seq", "layers", *OPTIONAL_DEFAULTS)

#: Width of one form: three side by side fit in a 1600 px window (the layer rows wrap inside it).
FORM_WIDTH = "490px"

DEFAULT_REQUEST = {"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "hardware_config": "nvidia_gb200_single",
                   "batch_size": 1, "input_seq": 2048, "output_seq": 128}


def degree_options(model_id: str, layer: Mapping, degree: str) -> list[int]:
    """The values a layer's drop-down offers for ``degree`` (``layer`` is one entry of
    ``perfkit.layers(model_id)["layers"]``)."""
    if degree == "tensor_parallel":
        valid = valid_tensor_parallel(catalog.model_spec(model_id), layer["type"], MAX_DEGREE)
        return valid if layer["type"] in ("attention", "feedforward") else [v for v in valid if v in POWERS_OF_TWO]
    if degree == "expert_parallel":
        experts = layer.get("experts", {}).get("num_experts", 1)
        return [d for d in range(1, min(experts, MAX_DEGREE) + 1) if experts % d == 0]
    return list(POWERS_OF_TWO)


class ConfigForm:
    """Widgets for one system-metrics request; ``on_change`` is called (with no argument) after any edit.

    >>> form = ConfigForm()
    >>> form.model.value = "meta-llama/Llama-3.1-8B"
    >>> form.degrees["attention"]["tensor_parallel"].options[:4]
    (1, 2, 4, 8)
    >>> form.request()["layers"]["attention"]["tensor_parallel"]
    1
    """

    def __init__(self, request: Mapping | None = None, on_change: Callable[[], None] | None = None,
                 title: str = ""):
        self._on_change = on_change
        self._quiet = True
        style = {"description_width": "110px"}
        wide = w.Layout(width="320px")
        self.model = w.Dropdown(options=catalog.list_models(), description="model", style=style, layout=wide)
        self.hardware = w.Dropdown(options=catalog.list_hardware(), description="hardware", style=style,
                                   layout=wide)
        self.batch_size = w.BoundedIntText(1, min=1, max=LIMITS["batch_size"], description="batch size",
                                           style=style, layout=wide)
        self.input_seq = w.BoundedIntText(2048, min=1, max=LIMITS["input_seq"], description="input tokens",
                                          style=style, layout=wide)
        self.output_seq = w.BoundedIntText(128, min=1, max=LIMITS["output_seq"], description="output tokens",
                                           style=style, layout=wide)
        self.pipeline_parallel = w.Dropdown(options=[1], value=1, description="pipeline stages", style=style,
                                            layout=wide)
        self.replicas = w.BoundedIntText(1, min=1, max=LIMITS["degree"], description="replicas", style=style,
                                         layout=wide)
        # every option a (label, value) pair: a list mixing pairs and plain values makes each pair one value
        self.kv_dtype = w.Dropdown(options=[("as attention", AS_ATTENTION), *((d, d) for d in DTYPES)],
                                   description="KV cache dtype", style=style, layout=wide)
        self.serving_mode = w.Dropdown(options=SERVING_MODES, value=SERVING_MODES[0], description="batching",
                                       style=style, layout=wide)
        self.serving_engine = w.Dropdown(options=catalog.list_serving_engines(), value="generic",
                                         description="serving engine", style=style, layout=wide)
        self.uncertainty = w.Dropdown(options=[("no band", False), ("p10-p90 band", True)], value=False,
                                      description="uncertainty", style=style, layout=wide)
        self.degrees: dict[str, dict[str, w.Dropdown]] = {}  # layer type -> degree -> drop-down
        self.dtypes: dict[str, w.Dropdown] = {}
        self.layers_box = w.VBox()
        for name in ("model", "hardware", "batch_size", "input_seq", "output_seq", "pipeline_parallel", "replicas",
                     "kv_dtype", "serving_mode", "serving_engine", "uncertainty"):
            getattr(self, name).add_class(f"perfkit-{name}")  # CSS hooks for the browser test
            if name != "model":
                getattr(self, name).observe(self._changed, names="value")
        self.model.observe(self._model_changed, names="value")
        self.widget = w.VBox([w.HTML(f"<b>{title}</b>") if title else w.HTML(), self.model, self.hardware,
                              self.batch_size, self.input_seq, self.output_seq, self.pipeline_parallel,
                              *([self.replicas] if HAS_REPLICAS else []), self.kv_dtype, self.serving_mode, self.serving_engine, self.uncertainty,
                              w.HTML("<b>Layers</b> (parallel degrees and dtype)"), self.layers_box],
                             layout=w.Layout(width=FORM_WIDTH, flex="0 0 auto"))
        self.set_request(request or DEFAULT_REQUEST, notify=False)

    # -- building ------------------------------------------------------------------------------------------

    def _build_layers(self) -> None:
        """Drop-downs for the current model's layers, with only the degrees each layer offers."""
        model_id = self.model.value
        layers = api.layers(model_id)["layers"]
        spec = catalog.model_spec(model_id)
        self.pipeline_parallel.options = [p for p in POWERS_OF_TWO if p <= spec.num_layers]
        # keep what the user chose where the new model offers it too
        before = {(name, d): box.value for name, boxes in self.degrees.items() for d, box in boxes.items()}
        self.degrees, self.dtypes, rows = {}, {}, []
        for layer in layers:
            name = layer["type"]
            self.degrees[name] = {}
            cells = [w.HTML(f"{name}", layout=w.Layout(width="80px"))]
            for degree in layer["available_parallelism"]:
                options = degree_options(model_id, layer, degree)
                value = before.get((name, degree), 1)
                box = w.Dropdown(options=options, value=value if value in options else 1, description=SHORT[degree],
                                 style={"description_width": "24px"}, layout=w.Layout(width="92px"))
                box.observe(self._changed, names="value")
                box.add_class(f"perfkit-{name}-{degree}")
                self.degrees[name][degree] = box
                cells.append(box)
            dtype = w.Dropdown(options=layer["available_dtypes"], value=spec.default_dtype(name),
                               description="dtype", style={"description_width": "38px"},
                               layout=w.Layout(width="110px"))
            dtype.observe(self._changed, names="value")
            self.dtypes[name] = dtype
            cells.append(dtype)
            rows.append(w.HBox(cells, layout=w.Layout(flex_flow="row wrap")))
        self.layers_box.children = rows

    # -- reading and writing -------------------------------------------------------------------------------

    def request(self) -> dict:
        """The system-metrics request these widgets describe (every layer's degrees and dtype spelled out)."""
        body = {"model_id": self.model.value, "hardware_config": self.hardware.value,
                "batch_size": self.batch_size.value, "input_seq": self.input_seq.value,
                "output_seq": self.output_seq.value,
                "layers": {name: {**{d: box.value for d, box in boxes.items()}, "dtype": self.dtypes[name].value}
                           for name, boxes in self.degrees.items()}}
        # extra fields beyond the seed are sent only when they differ from the API's defaults
        for key, default in OPTIONAL_DEFAULTS.items():
            if getattr(self, key).value != default:
                body[key] = getattr(self, key).value
        return body

    def set_request(self, request: Mapping, notify: bool = True) -> None:
        """Show ``request`` in the widgets (then one ``on_change`` call when ``notify``); a value the
        drop-downs do not offer is a :class:`perfkit.PerfkitError` naming it and the choices."""
        unshown = [k for k in request if k not in SHOWN]
        if unshown:
            raise PerfkitError(f"the panel cannot show the field {unshown[0]!r}; it shows {', '.join(SHOWN)}",
                               field=unshown[0])
        self._quiet = True
        try:
            if request["model_id"] not in self.model.options:
                catalog.model_spec(request["model_id"])  # raises NotFoundError with the choices
            self.model.value = request["model_id"]
            self.degrees = {}  # a new request starts from degree 1 wherever it says nothing
            self._build_layers()
            self.hardware.value = catalog.hardware_spec(request["hardware_config"]).name
            for key in ("batch_size", "input_seq", "output_seq"):
                getattr(self, key).value = int(request.get(key, getattr(self, key).value))
            for key, default in OPTIONAL_DEFAULTS.items():
                self._set_choice(getattr(self, key), request.get(key, default), key)
            for name, settings in request.get("layers", {}).items():
                if name not in self.degrees:
                    raise PerfkitError(f"unknown layer type {name!r}; valid choices: {', '.join(self.degrees)}",
                                       field=f"layers.{name}")
                for key, value in settings.items():
                    box = self.dtypes[name] if key == "dtype" else self.degrees[name].get(key)
                    if box is None:
                        if value == 1:
                            continue
                        raise PerfkitError(f"layers.{name}.{key}={value}: the {name} layer does not offer {key}; "
                                           f"it offers {', '.join(self.degrees[name])}", field=f"layers.{name}.{key}")
                    self._set_choice(box, value, f"layers.{name}.{key}")
        finally:
            self._quiet = False
        if notify:
            self._changed()

    @staticmethod
    def _set_choice(box, value, field: str) -> None:
        if not hasattr(box, "options"):  # a number box (replicas): the API checks the value
            box.value = value
            return
        values = [o[1] if isinstance(o, tuple) else o for o in box.options]
        if value not in values:
            raise PerfkitError(f"{field}={value!r} is not offered; valid choices: {', '.join(map(str, values))}",
                               field=field)
        box.value = value

    # -- events --------------------------------------------------------------------------------------------

    def _model_changed(self, change) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self._build_layers()
        finally:
            self._quiet = False
        self._changed()

    def _changed(self, change=None) -> None:
        if not self._quiet and self._on_change is not None:
            self._on_change()
