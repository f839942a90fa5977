"""``perfkit.sweep``: a grid or a list of requests in, one tidy DataFrame out."""
from __future__ import annotations

from typing import Iterator

import pandas as pd

from .. import catalog
from ..errors import PerfkitError
from . import disagg
from .grid import Grid, Requests, nest, parse
from .run import DEFAULT_CHUNK_ROWS, Sweep
from .table import Collector, to_frame


def sweep(spec, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False) -> pd.DataFrame:
    """Evaluate every configuration of ``spec`` into a DataFrame, one row per configuration.

    ``spec`` is a system-metrics request whose values may be lists: every list is an axis and the sweep is
    the Cartesian product of the axes (several ``model_id`` or ``hardware_config`` values are axes too;
    ``layers.all.<degree or dtype>`` is one axis shared by every layer type that offers it). A list of
    requests is evaluated as given, in order.

    Columns: the axes, named by their request path (``model_id``, ``hardware_config``, ``serving_engine``
    (always), ``batch_size``, ``layers.attention.tensor_parallel``, ...), then every figure of the system-metrics response under its
    leaf name (``ttft_ms`` ... ``fits_on_hardware``, ``num_nodes``), ``joules_per_output_token`` (and
    ``usd_per_million_output_tokens`` with a ``price_per_chip_hour``), the ``load_*`` columns of the response's
    ``load`` object when the spec has an ``arrival_rate_qps`` (``load_ttft_ms_p99``, ``load_saturated``, ...;
    unbounded latencies are ``inf``), then ``valid`` and ``reason``. A
    configuration that cannot run is a row with ``valid == False``, a ``reason``, NaN latencies and
    throughput (its memory figures stay: they say why) and ``fits_on_hardware == False`` (``fits_on_hardware``
    equals ``valid``: a layout that cannot run fits nowhere); a malformed grid (an
    unknown field, a degree a layer does not offer) raises :class:`PerfkitError`. Each row equals
    ``perfkit.system_metrics(perfkit.sweeps.request_of(df, i))``. ``df.attrs["axes"]`` names the axes, so
    ``df.set_index(df.attrs["axes"]).to_xarray()`` gives an array with one dimension per axis.

    The grid is evaluated in chunks of ``chunk_rows`` rows, one engine call per chunk and (model, hardware,
    serving engine); ``progress=True`` shows a tqdm bar once the sweep has run for half a second.

    >>> import perfkit
    >>> df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_nvl72_rack",
    ...                     "batch_size": [1, 64], "input_seq": 4096, "output_seq": 512,
    ...                     "layers": {"all": {"tensor_parallel": [1, 2, 4, 8]}}})
    >>> len(df), df.attrs["axes"]
    (8, ['model_id', 'hardware_config', 'serving_engine', 'batch_size', 'layers.all.tensor_parallel'])
    >>> bool(df.loc[df["layers.all.tensor_parallel"] == 1, "fits_on_hardware"].iloc[0])
    True
    """
    if disagg.is_disaggregated_spec(spec):  # two pools per configuration: perfkit/sweeps/disagg.py
        return disagg.sweep(spec)
    plan = _plan(spec)
    collector = Collector(plan.size)
    for chunk, columns in _evaluated(plan, chunk_rows, progress):
        collector.add(chunk.offset, columns)
    return collector.frame(attrs(plan.spec))


def iter_frames(spec, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False) -> Iterator[pd.DataFrame]:
    """The same table as :func:`sweep`, as one DataFrame per chunk (memory bounded by ``chunk_rows``).

    >>> frames = iter_frames({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                       "batch_size": [1, 2, 4, 8], "input_seq": 1024, "output_seq": 128}, chunk_rows=3)
    >>> [len(f) for f in frames]
    [3, 1]
    """
    plan = _plan(spec)
    for _, columns in _evaluated(plan, chunk_rows, progress):
        yield to_frame(columns, attrs(plan.spec))


def _plan(spec) -> Sweep:
    return Sweep(parse(spec))


def _evaluated(plan: Sweep, chunk_rows: int, progress: bool):
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise PerfkitError(f"chunk_rows must be a positive integer, got {chunk_rows!r}", field="chunk_rows")
    chunks = plan.chunks(chunk_rows)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=plan.size, unit="config", unit_scale=True, delay=0.5, desc="perfkit sweep")
        with bar:
            for chunk in chunks:
                yield chunk, plan.evaluate(chunk)
                bar.update(chunk.rows)
        return
    for chunk in chunks:
        yield chunk, plan.evaluate(chunk)


def attrs(spec: Grid | Requests) -> dict:
    """What a table needs to rebuild the request of a row: the axes and the fixed settings."""
    return {"axes": list(spec.names), "fixed": dict(spec.fixed)}


def request_of(df: pd.DataFrame, label) -> dict:
    """The system-metrics request of the row ``label`` of a sweep table (its index label).

    >>> import perfkit
    >>> df = perfkit.sweep({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...                     "batch_size": [1, 8], "input_seq": 1024, "output_seq": 128})
    >>> request_of(df, 1)["batch_size"]
    8
    """
    if "axes" not in df.attrs or "fixed" not in df.attrs:
        raise PerfkitError("this DataFrame has lost the sweep's attrs ('axes', 'fixed'); keep the table that "
                           "perfkit.sweep returned (or a slice of it)", field=None)
    row = df.loc[label]
    flat = {**df.attrs["fixed"], **{name: _plain(row[name]) for name in df.attrs["axes"]}}
    return nest(catalog.model_spec(flat["model_id"]), flat)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
