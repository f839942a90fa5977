"""A form for one disaggregated configuration: one :class:`ConfigForm` per pool (its layers, replicas and
batch), the request's model, hardware, lengths and engine taken from the prefill pool's form."""
from __future__ import annotations

from typing import Callable, Mapping

import ipywidgets as w

from .form import ConfigForm

#: Fields of a pool's form that go into its ``disaggregated.<pool>`` object; the rest are the request's.
POOL_FIELDS = ("batch_size", "replicas", "layers", "pipeline_parallel")


def pool_requests(request: Mapping) -> dict[str, dict]:
    """The aggregated-looking request of each pool of a disaggregated request (what its form edits)."""
    common = {k: v for k, v in request.items() if k != "disaggregated"}
    return {name: {**common, **{k: v for k, v in pool.items() if k != "model_id"},
                   "model_id": pool.get("model_id", request["model_id"])}
            for name, pool in request["disaggregated"].items()}


class DisaggregatedForm:
    """Widgets for one disaggregated request: ``forms["prefill"]`` and ``forms["decode"]``, each a
    :class:`ConfigForm` of its pool; ``request()`` nests them. The decode pool's model, when it differs, is sent
    as ``disaggregated.decode.model_id`` (and refused by the API, naming that field).

    >>> from perfkit.examples import DISAGGREGATED
    >>> form = DisaggregatedForm(DISAGGREGATED)
    >>> sorted(form.request()["disaggregated"]), form.request()["disaggregated"]["decode"]["batch_size"]
    (['decode', 'prefill'], 64)
    """

    def __init__(self, request: Mapping, on_change: Callable[[], None] | None = None, title: str = ""):
        self.forms = {name: ConfigForm(body, on_change=on_change, title=f"{name} pool")
                      for name, body in pool_requests(request).items()}
        self.widget = w.VBox([w.HTML(f"<b>{title}</b> (disaggregated)" if title else "<b>disaggregated</b>"),
                              w.HBox([f.widget for f in self.forms.values()])])

    def request(self) -> dict:
        bodies = {name: form.request() for name, form in self.forms.items()}
        prefill = bodies["prefill"]
        out = {k: v for k, v in prefill.items() if k not in POOL_FIELDS}
        out["disaggregated"] = {}
        for name, body in bodies.items():
            pool = {k: body[k] for k in POOL_FIELDS if k in body}
            if body["model_id"] != prefill["model_id"]:
                pool["model_id"] = body["model_id"]
            out["disaggregated"][name] = pool
        return out
