"""Sweep specifications: a grid (a system-metrics request whose values may be lists) or a list of requests.

Both are checked once, when they are built, with the same checks as a single request
(:func:`perfkit.inputs.system_config`): a bad value, an unknown field or a degree that a layer does not offer
is a :class:`PerfkitError` before anything is evaluated. A configuration that is well formed but cannot run
(a degree that does not divide the heads, more chips than the hardware has, too little memory) is not an
error: it becomes a row with a reason.

Flat paths name every setting, exactly as the sweep's columns do: ``model_id``, ``batch_size``,
``layers.attention.tensor_parallel``, ... A grid may also set ``layers.all.<degree|dtype>``: one axis shared
by every layer type that offers that degree (a per-layer setting of the same degree takes precedence).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import catalog
from ..engine.layout import DEGREES, LAYER_TYPES, available_parallelism
from ..errors import PerfkitError, choices_text
from ..inputs import LIMITS, SYSTEM_OPTIONAL, SYSTEM_REQUIRED, check_fields, check_int, system_config, to_arrays

ALL = "all"  # the layer key of a setting shared by every layer type that offers it
#: Settings that pick what the engine is called with (not arrays): always the first axes, in this order.
GROUP = ("model_id", "hardware_config", "serving_engine")
#: Top-level integers checked on their own (their limits do not depend on the model).
PLAIN = {"batch_size": LIMITS["batch_size"], "input_seq": LIMITS["input_seq"], "output_seq": LIMITS["output_seq"],
         "pipeline_parallel": LIMITS["degree"], "replicas": LIMITS["degree"]}
#: Axes whose values never change which layouts can run (the reasons of a row name the layout only).
WORKLOAD = ("batch_size", "input_seq", "output_seq")


def flatten(body: Any, where: str = "") -> dict[str, Any]:
    """A request body (values may be lists) as ``{flat path: value}``; field names are checked here."""
    check_fields(body, SYSTEM_REQUIRED, SYSTEM_OPTIONAL, where)
    flat = {k: v for k, v in body.items() if k != "layers"}
    layers = body.get("layers", {})
    if not isinstance(layers, Mapping):
        raise PerfkitError(f"{where}layers must be an object keyed by layer type, got {type(layers).__name__}",
                           field=where + "layers")
    for layer_type, settings in layers.items():
        if layer_type not in (*LAYER_TYPES, ALL):
            raise PerfkitError(f"{where}layers.{layer_type} is not a layer type; "
                               + choices_text(layer_type, (*LAYER_TYPES, ALL)), field=f"{where}layers.{layer_type}")
        prefix = f"layers.{layer_type}."
        check_fields(settings, (), (*DEGREES, "dtype"), where + prefix)
        flat.update({prefix + key: value for key, value in settings.items()})
    return flat


def targets(model, flat_paths, path: str) -> tuple[str, ...]:
    """The engine settings one flat path drives for ``model`` (``layers.all.x`` fans out)."""
    parts = path.split(".")
    if len(parts) != 3 or parts[1] != ALL:
        return (path,)
    key = parts[2]
    return tuple(f"layers.{t}.{key}" for t in LAYER_TYPES
                 if f"layers.{t}.{key}" not in flat_paths
                 and (key == "dtype" or key in available_parallelism(model, t)))


def nest(model, flat: Mapping[str, Any]) -> dict:
    """The request body of one configuration given as flat paths (the inverse of :func:`flatten`)."""
    body: dict = {}
    for path, value in flat.items():
        if not path.startswith("layers."):
            body[path] = value
            continue
        keys = targets(model, flat, path)
        _, layer_type, setting = path.split(".")
        if (layer_type == ALL and value != 1 and setting in DEGREES
                and not any(setting in available_parallelism(model, t) for t in LAYER_TYPES)):
            raise PerfkitError(f"{path}={value!r}: no layer of {model.name} offers {setting}", field=path)
        for key in keys:
            _, layer_type, setting = key.split(".")
            body.setdefault("layers", {}).setdefault(layer_type, {})[setting] = value
    return body


def _values(path: str, value: Any) -> tuple | None:
    """The values of an axis (``None`` for a fixed setting)."""
    if isinstance(value, (list, tuple, range)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in value)
        if not values:
            raise PerfkitError(f"{path} lists no values; give at least one", field=path)
        seen = set()
        for v in values:
            if isinstance(v, (list, tuple, dict, set)):
                raise PerfkitError(f"{path} lists {v!r}; an axis holds plain values (numbers or names)",
                                   field=path)
            key = (type(v), v)  # True == 1, but True is no batch size: let the value check say so
            if key in seen:
                raise PerfkitError(f"{path} lists {v!r} twice; every value of an axis must be distinct", field=path)
            seen.add(key)
        return values
    return None


@dataclass(frozen=True)
class Grid:
    """The Cartesian product of ``axes`` with every other setting ``fixed``; ``model_id``,
    ``hardware_config`` and ``serving_engine`` are always the first three axes (of length one when fixed)."""

    axes: tuple[tuple[str, tuple], ...]
    fixed: tuple[tuple[str, Any], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for _, values in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def request(self, values: Mapping[str, Any]) -> dict:
        """The system-metrics request of the configuration whose axis values are ``values``."""
        flat = {**dict(self.fixed), **{name: _scalar(values[name]) for name in self.names}}
        return nest(catalog.model_spec(flat["model_id"]), flat)

    def base(self, model_id: str) -> dict[str, Any]:
        """The checked flat configuration of ``model_id`` at every axis's first value (defaults resolved)."""
        return system_config(self.request({name: values[0] for name, values in self.axes} | {"model_id": model_id}))

    def targets(self, model_id: str) -> list[tuple[str, ...]]:
        """For each value axis (after the group axes), the engine settings it drives for ``model_id``."""
        model = catalog.model_spec(model_id)
        paths = {**dict(self.fixed), **dict(self.axes)}
        out = []
        for name, _ in self.axes[len(GROUP):]:
            keys = targets(model, paths, name)
            # an unset kv_dtype follows the attention dtype, row by row
            if "layers.attention.dtype" in keys and "kv_dtype" not in paths:
                keys = (*keys, "kv_dtype")
            out.append(keys)
        return out


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def grid(spec: Mapping) -> Grid:
    """Check a grid: every value of every axis is checked once, for every model of the grid."""
    flat = flatten(spec)
    axes, fixed = {}, {}
    for path, value in flat.items():
        values = _values(path, value)
        if values is None:
            fixed[path] = value.item() if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0 \
                else value
        else:
            axes[path] = values
    if "uncertainty" in axes:
        raise PerfkitError("uncertainty is not an axis: a sweep always has the ttft/tpot p10 and p90 columns",
                           field="uncertainty")
    groups = [(name, axes.pop(name) if name in axes else (fixed.pop(name),))
              for name in GROUP if name in axes or name in fixed]
    g = Grid(axes=(*groups, *axes.items()), fixed=tuple(fixed.items()))
    if len(groups) < len(GROUP):  # the serving engine a single request gets by default
        default = g.base(groups[0][1][0])["serving_engine"]
        g = Grid(axes=(*groups, ("serving_engine", (default,)), *axes.items()), fixed=g.fixed)
    load = {"model_id": catalog.model_spec, "hardware_config": catalog.hardware_spec,
            "serving_engine": catalog.serving_profile}
    for name, values in g.axes[:len(GROUP)]:
        for v in values:
            load[name](v)
    for name, values in g.axes[len(GROUP):]:  # numbers that mean the same for every model: checked once each
        if name in PLAIN:
            for v in values:
                check_int(v, name, PLAIN[name])
    first = {name: values[0] for name, values in g.axes}
    for model_id in g.axes[0][1]:
        g.base(model_id)
        for name, values in g.axes[len(GROUP):]:
            for v in values[1:] if name not in PLAIN else ():
                system_config(g.request(first | {"model_id": model_id, name: v}))
    return g


@dataclass(frozen=True)
class Requests:
    """An explicit list of checked configurations (flat, defaults resolved), in the caller's order.
    ``names`` are the settings that differ between the requests (the :data:`GROUP` settings always): the table's axis columns, kept when the list is cut into parts."""

    flats: tuple[tuple[tuple[str, Any], ...], ...]
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.flats)

    def part(self, lo: int, hi: int) -> "Requests":
        return Requests(self.flats[lo:hi], self.names)

    @property
    def fixed(self) -> tuple[tuple[str, Any], ...]:
        names = set(self.names)
        return tuple((k, v) for k, v in self.flats[0] if k not in names) if self.flats else ()


def requests(spec) -> Requests:
    if not spec:
        raise PerfkitError("the list of requests is empty; give at least one request", field=None)
    flats = []
    for i, body in enumerate(spec):
        try:
            flats.append(tuple(system_config(body).items()))
        except PerfkitError as exc:
            raise type(exc)(f"request {i}: {exc}", field=exc.field) from None
    rows = [dict(f) for f in flats]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    names = tuple(k for k in keys if k in GROUP or len({row.get(k) for row in rows}) > 1)
    return Requests(tuple(flats), names)


def parse(spec) -> Grid | Requests:
    """A grid (a mapping) or an explicit list of requests."""
    if isinstance(spec, (Grid, Requests)):
        return spec
    if isinstance(spec, Mapping):
        return grid(spec)
    if isinstance(spec, (list, tuple)):
        return requests(spec)
    raise PerfkitError(f"a sweep takes a grid (a request whose values may be lists) or a list of requests, "
                       f"got {type(spec).__name__}", field=None)


def engine_values(name: str, values) -> np.ndarray:
    """An axis's values as the engine reads them (dtypes and serving modes as indices), via the same
    encoding as a single request (:func:`perfkit.inputs.to_arrays`)."""
    return np.array([to_arrays({name: v})[name] for v in values], dtype=np.int64)
