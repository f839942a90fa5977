"""Evaluating a sweep chunk by chunk: one engine call per chunk and (model, hardware, serving engine).

A grid chunk is a block of the Cartesian product: fixed indices on the outer axes, a range of one axis, and
all of the inner axes. It reaches the engine as broadcast arrays (each axis along its own dimension), so
what depends on few axes (weights depend on the layout and dtype, not on the batch) is computed once per
block rather than once per row. Rows come out in C order: the first axis varies slowest.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from .. import catalog
from ..dtypes import DTYPES
from ..engine import layout, load
from ..engine.system import BOTTLENECKS, evaluate
from ..inputs import REAL_LIMITS, to_arrays
from .grid import GROUP, WORKLOAD, Grid, Requests, engine_values
from .table import Cat, Labels

#: The seed's figures, in the seed's order; any other figure the engine returns follows them.
FIRST = ("ttft_ms", "tpot_ms", "throughput_tokens_s", "total_latency_ms", "weight_memory_gb",
         "activation_memory_gb", "kv_cache_gb", "total_memory_gb", "memory_per_chip_gb", "hw_capacity_gb",
         "num_chips", "bottleneck", "fits_on_hardware")
DEFAULT_CHUNK_ROWS = 1 << 18
#: Figures a configuration that cannot run does not have: NaN in its row (its memory figures stay, they say
#: why it does not fit).
ONLY_IF_VALID = ("ttft_ms", "tpot_ms", "throughput_tokens_s", "total_latency_ms", "ttft_ms_p10", "ttft_ms_p90",
                 "tpot_ms_p10", "tpot_ms_p90")
#: The same for the figures only some sweeps have (energy and cost, the open-loop load).
ONLY_IF_VALID_EXTRA = ("joules_per_output_token", "usd_per_million_output_tokens",
                       *(c for c in load.COLUMNS if c not in ("load_bound", "load_saturated")))


@dataclass(frozen=True)
class Chunk:
    """Rows ``offset .. offset + rows`` of a sweep. For a grid: the ``group`` (indices of the model, hardware
    and serving engine), the indices ``prefix`` of the outer value axes and the range ``lo:hi`` of the next
    one; for a list: ``lo:hi``."""

    offset: int
    rows: int
    lo: int
    hi: int
    group: tuple[int, int, int] = (0, 0, 0)
    prefix: tuple[int, ...] = ()


class Sweep:
    """A checked sweep ready to evaluate: specs loaded, every model's defaults resolved, string columns
    labelled. Build one per process (a Dask worker builds its own from the picklable spec)."""

    def __init__(self, spec: Grid | Requests):
        self.spec = spec
        self.size = spec.size
        self.reasons = Labels([""])
        self.figure_labels: dict[str, Labels] = {}
        self._reason_cache: dict = {}
        if isinstance(spec, Grid):
            self._init_grid(spec)
        else:
            self._init_requests(spec)

    # -- grid ------------------------------------------------------------------------------------------------
    def _init_grid(self, g: Grid) -> None:
        (_, models), (_, systems), (_, engines) = g.axes[:len(GROUP)]
        self.models = [catalog.model_spec(m) for m in models]
        self.hardware = [catalog.hardware_spec(h) for h in systems]
        self.profiles = [catalog.serving_profile(e) for e in engines]
        self.base = [to_arrays(g.base(m)) for m in models]
        self.targets = [g.targets(m) for m in models]
        self.lengths = g.shape[len(GROUP):]
        self.labels = [Labels(values) if isinstance(values[0], str) else None for _, values in g.axes]
        self.values = [engine_values(name, values) for name, values in g.axes[len(GROUP):]]
        self.workload = [name in WORKLOAD for name, _ in g.axes[len(GROUP):]]

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        """The chunk descriptors, in row order, each of at most ``chunk_rows`` rows."""
        if isinstance(self.spec, Requests):
            for lo in range(0, self.size, chunk_rows):
                hi = min(lo + chunk_rows, self.size)
                yield Chunk(offset=lo, rows=hi - lo, lo=lo, hi=hi)
            return
        lengths = self.lengths
        per_group = int(np.prod(lengths, dtype=np.int64))
        groups = list(product(range(len(self.models)), range(len(self.hardware)), range(len(self.profiles))))
        if not lengths:
            for i, group in enumerate(groups):
                yield Chunk(offset=i, rows=1, lo=0, hi=1, group=group)
            return
        # split on the outermost axis whose inner block still fits in a chunk
        split = next(s for s in range(len(lengths) + 1) if np.prod(lengths[s:], dtype=np.int64) <= chunk_rows)
        axis = max(split - 1, 0)
        inner = int(np.prod(lengths[axis + 1:], dtype=np.int64))
        step = max(1, min(lengths[axis], chunk_rows // inner))
        for i, group in enumerate(groups):
            for p, prefix in enumerate(np.ndindex(*lengths[:axis])):
                for lo in range(0, lengths[axis], step):
                    hi = min(lo + step, lengths[axis])
                    offset = i * per_group + (p * lengths[axis] + lo) * inner
                    yield Chunk(offset=offset, rows=(hi - lo) * inner, lo=lo, hi=hi, group=group,
                                prefix=tuple(int(x) for x in prefix))

    def evaluate(self, chunk: Chunk) -> dict:
        """The columns of one chunk: the axes, every figure, ``valid`` and ``reason``."""
        if isinstance(self.spec, Requests):
            return self._evaluate_requests(chunk)
        m, h, e = chunk.group
        lengths = self.lengths
        axis = len(chunk.prefix)  # the axis the chunk takes a range of
        shape = (chunk.hi - chunk.lo, *lengths[axis + 1:]) if lengths else (1,)
        lead = _leads(shape)
        cfg, engine_cfg = dict(self.base[m]), dict(self.base[m])
        index = []
        for j, values in enumerate(self.values):
            if j < axis:
                idx = engine_idx = np.int64(chunk.prefix[j])
            else:
                dims = [1] * len(shape)
                dims[j - axis] = -1
                idx = (np.arange(chunk.lo, chunk.hi) if j == axis else np.arange(lengths[j])).reshape(dims)
                engine_idx = np.moveaxis(idx, -1, 0) if lead else idx
            index.append(idx)
            for key in self.targets[m][j]:
                cfg[key] = values[idx]
                engine_cfg[key] = values[engine_idx]
        out = evaluate(self.models[m], self.hardware[h], engine_cfg, self.profiles[e])
        if lead:  # back to the grid's order (views; the columns below copy them out)
            out = {k: np.moveaxis(v, 0, -1) if isinstance(v, np.ndarray) and v.ndim == len(shape) else v
                   for k, v in out.items()}

        n = chunk.rows
        cols = {name: Cat(np.full(n, i, dtype=np.int32), self.labels[g])
                for g, (name, i) in enumerate(zip(GROUP, chunk.group))}
        for j, ((name, values), idx) in enumerate(zip(self.spec.axes[len(GROUP):], index)):
            labels = self.labels[j + len(GROUP)]
            column = np.broadcast_to(idx if labels else np.asarray(values)[idx], shape).ravel()
            cols[name] = Cat(column.astype(np.int32), labels) if labels else column
        workload = tuple(j - axis for j in range(axis, len(lengths)) if self.workload[j])
        self._figures(cols, out, shape, self.models[m], self.hardware[h], cfg, workload)
        return cols

    # -- list of requests ------------------------------------------------------------------------------------
    def _init_requests(self, r: Requests) -> None:
        rows = [dict(flat) for flat in r.flats]
        self.names = r.names
        keys = [tuple(row[k] for k in GROUP) for row in rows]
        self.groups = sorted(set(keys))
        self.group_index = np.array([self.groups.index(k) for k in keys]) if len(self.groups) > 1 \
            else np.zeros(len(rows), dtype=np.int64)
        self.engine_keys = set(to_arrays(rows[0]))  # what the engine reads (not the group, not uncertainty)
        self.columns, self.labels, self.encoded = {}, {}, {}  # every setting as an array over the requests
        for key in rows[0]:
            values = [row[key] for row in rows]
            if isinstance(values[0], str):
                self.labels[key] = Labels(dict.fromkeys(values))
                self.columns[key] = self.labels[key].encode(np.asarray(values))
                if key in self.engine_keys:
                    self.encoded[key] = engine_values(key, self.labels[key].items)
            else:
                self.columns[key] = np.asarray(values, dtype=np.float64 if key in REAL_LIMITS else np.int64)

    def _evaluate_requests(self, chunk: Chunk) -> dict:
        sl = slice(chunk.lo, chunk.hi)
        cols = {}
        for name in self.names:
            values = self.columns[name][sl]
            cols[name] = Cat(values, self.labels[name]) if name in self.labels else values
        group_index = self.group_index[sl]
        parts = []
        for g in np.unique(group_index):
            rows = np.flatnonzero(group_index == g)
            cfg = {key: self.columns[key][sl][rows] for key in self.engine_keys}
            cfg.update({key: codes[cfg[key]] for key, codes in self.encoded.items()})
            m, h, e = self.groups[g]
            model, hw = catalog.model_spec(m), catalog.hardware_spec(h)
            part = {}
            self._figures(part, evaluate(model, hw, cfg, catalog.serving_profile(e)), (len(rows),), model, hw,
                          cfg, ())
            parts.append((rows, part))
        for rows, part in parts:  # each group's rows back to their places in the list
            for name, col in part.items():
                values = col.codes if isinstance(col, Cat) else col
                if name not in cols:
                    empty = np.empty(chunk.rows, dtype=values.dtype)
                    cols[name] = Cat(empty, col.labels) if isinstance(col, Cat) else empty
                (cols[name].codes if isinstance(col, Cat) else cols[name])[rows] = values
        return cols

    # -- figures, validity and reasons -----------------------------------------------------------------------
    def _figures(self, cols: dict, out: dict, shape, model, hw, cfg, workload) -> None:
        order = [k for k in FIRST if k in out] + [k for k in out if k not in FIRST and k != "code"]
        for key in order:
            column = _column(out[key], shape)
            if key == "bottleneck":  # the engine's index into BOTTLENECKS: already a code
                labels = self.figure_labels.setdefault(key, Labels(BOTTLENECKS))
                cols[key] = Cat(column.astype(np.int32), labels)
            elif column.dtype.kind in "US":
                labels = self.figure_labels.setdefault(key, Labels())
                cols[key] = Cat(labels.encode(column), labels)
            else:
                cols[key] = column
        structural = _column(out["code"], shape).reshape(shape) & layout.STRUCTURAL
        fits = _column(out["fits_on_hardware"], shape).reshape(shape)
        valid = ((structural == 0) & fits).ravel()
        cols["valid"] = valid
        # a layout that cannot run fits nowhere: fits_on_hardware is True only where the row runs
        cols["fits_on_hardware"] = valid.copy()
        invalid_nan = np.where(valid, 1.0, np.nan)  # x * 1.0 is x exactly, x * NaN is NaN: one product a column
        for key in (*ONLY_IF_VALID, *ONLY_IF_VALID_EXTRA):
            if key in cols:
                cols[key] = cols[key] * invalid_nan
        cols["reason"] = Cat(self._reasons(model, hw, cfg, structural, fits, workload).ravel(), self.reasons)

    def _reasons(self, model, hw, cfg, structural, fits, workload) -> np.ndarray:
        """Reason codes: one call of :func:`layout.reasons` per distinct layout that cannot run, not per row."""
        shape = structural.shape
        reduced, cut = structural, (slice(None),) * len(shape)
        if workload:  # the structural checks look at the layout only: check that, then drop those axes
            low = np.bitwise_or.reduce(structural, axis=workload, keepdims=True)
            if np.array_equal(low, np.bitwise_and.reduce(structural, axis=workload, keepdims=True)):
                reduced = low
                cut = tuple(slice(0, 1) if d in workload else slice(None) for d in range(len(shape)))
        found = np.nonzero(reduced)
        ids = np.full(reduced.shape, -1, dtype=np.int32)
        if len(found[0]):
            keys = sorted(k for k in cfg if k not in REAL_LIMITS)  # the layout's integers: what reasons name
            table = np.stack([reduced[found]] + [np.broadcast_to(cfg[k], shape)[cut][found] for k in keys], axis=1)
            codes = np.empty(len(table), dtype=np.int32)
            for i, key_row in enumerate(table):
                cache_key = (model.name, hw.name, key_row.tobytes())
                if cache_key not in self._reason_cache:
                    self._reason_cache[cache_key] = self.reasons.code(
                        self._reason_text(model, hw, int(key_row[0]), dict(zip(keys, key_row[1:].tolist()))))
                codes[i] = self._reason_cache[cache_key]
            ids[found] = codes
        no_fit = self.reasons.code(f"does not fit: memory_per_chip_gb exceeds the {hw.memory_bytes / 1e9:.1f} GB "
                                   f"of one {hw.chip}")
        return np.where(ids >= 0, ids, np.where(fits, 0, no_fit).astype(np.int32))

    @staticmethod
    def _reason_text(model, hw, code: int, row: dict) -> str:
        row = {k: DTYPES[v] if k.endswith("dtype") else v for k, v in row.items()}
        row.update({f"chips.{t}": int(layout.layer_chips(row, t)) for t in layout.LAYER_TYPES})
        row["num_chips"] = int(layout.num_chips(row))
        return "; ".join(sentence for _, sentence in layout.reasons(model, hw, code, row))


#: An innermost chunk axis this short (a dtype axis, say) moves to the front for the engine: numpy's inner
#: loops run along the last axis, and an operand that lacks a short last axis (rows against per-dtype
#: parameters) makes every loop that short, several times slower than one long loop.
SHORT_AXIS = 16


def _leads(shape) -> bool:
    return len(shape) > 1 and 1 < shape[-1] <= SHORT_AXIS


def _column(values, shape) -> np.ndarray:
    """``values`` broadcast to ``shape`` and flattened in C order, one strided copy per position of a short
    last axis (a flat copy of a broadcast that lacks it, or of a view with it in front, runs that short loop
    for every element)."""
    view = np.broadcast_to(values, shape)
    if not _leads(shape) or view.strides[-1] == view.itemsize and view.flags.c_contiguous:
        return view.ravel()
    out = np.empty(shape, dtype=view.dtype)
    for j in range(shape[-1]):
        out[..., j] = view[..., j]
    return out.ravel()
