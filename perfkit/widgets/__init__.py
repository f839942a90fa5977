"""Widget panels for Jupyter (ipywidgets): one configuration, a comparison of several, a sweep, a capacity plan.

>>> from perfkit.widgets import ComparisonPanel
>>> panel = ComparisonPanel()          # the seed's comparison: TinyLlama vs Llama-3.3-70B
>>> len(panel.forms)
2

Display ``panel.widget`` in a notebook. Panels call the public functions of :mod:`perfkit` and hold no
formula; :mod:`perfkit.widgets.frames` (no ipywidgets needed) reshapes responses into DataFrames.
"""
from importlib import import_module

_PANELS = {"ConfigPanel": "config", "ComparisonPanel": "compare", "SweepPanel": "sweep", "ConfigForm": "form",
           "PlannerPanel": "planner"}
__all__ = list(_PANELS)


def __getattr__(name):
    # Panels import ipywidgets; load them on first use so that ``perfkit.widgets.frames`` works without it.
    if name in _PANELS:
        return getattr(import_module(f"{__name__}.{_PANELS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
