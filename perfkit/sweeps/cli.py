"""``perfkit sweep``: axes as options (or a JSON/YAML grid file) in, a CSV or Parquet table out.

    perfkit sweep --model meta-llama/Llama-3.1-70B --hardware nvidia_nvl72_rack \\
        --tp 1,2,4,8 --batch 1,8,64 --input-seq 1024,8192 --output-seq 256 \\
        --layer attention.context_parallel=1,2 -o sweep.parquet --pareto-png front.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..errors import PerfkitError
from .run import DEFAULT_CHUNK_ROWS

#: Options that set a field of the grid (comma-separated values make an axis).
FIELDS = {"model": "model_id", "hardware": "hardware_config", "batch": "batch_size", "input_seq": "input_seq",
          "output_seq": "output_seq", "pp": "pipeline_parallel", "replicas": "replicas", "kv_dtype": "kv_dtype",
          "serving_engine": "serving_engine", "serving_mode": "serving_mode"}
#: Options that set one degree or the dtype of every layer type that offers it (``layers.all.*``).
ALL_LAYERS = {"tp": "tensor_parallel", "cp": "context_parallel", "sp": "sequence_parallel",
              "ep": "expert_parallel", "dp": "data_parallel", "dtype": "dtype"}
TEXT = {"model_id", "hardware_config", "kv_dtype", "dtype", "serving_engine", "serving_mode"}


def register(sub) -> None:
    p = sub.add_parser("sweep", help="evaluate a grid of configurations into a CSV or Parquet table",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", nargs="?", help="JSON or YAML grid (a request whose values may be lists) or a "
                                           "list of requests; options below override its fields")
    for option, field in FIELDS.items():
        p.add_argument("--" + option.replace("_", "-"), dest=option, metavar="V[,V...]", help=field)
    for option, setting in ALL_LAYERS.items():
        p.add_argument("--" + option, dest=option, metavar="V[,V...]",
                       help=f"{setting} of every layer type that offers it (layers.all.{setting})")
    p.add_argument("--layer", action="append", default=[], metavar="TYPE.SETTING=V[,V...]",
                   help="one layer type's degree or dtype, e.g. attention.tensor_parallel=1,2,4 (repeatable)")
    p.add_argument("-o", "--output", help="table to write: .csv or .parquet (a folder with --dask); "
                                          "default: CSV on standard output")
    p.add_argument("--pareto-png", help="also draw the Pareto front (--pareto-x against --pareto-y) here")
    p.add_argument("--pareto-x", default="tpot_ms")
    p.add_argument("--pareto-y", default="throughput_per_chip_tokens_s")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per engine call")
    p.add_argument("--dask", metavar="ADDRESS", help="run the chunks on Dask: a scheduler address, or 'local' "
                                                    "for a local cluster; writes one Parquet file per chunk")
    p.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    p.set_defaults(func=run)


def _values(option: str, text: str, field: str):
    """``1,2,4`` -> ``[1, 2, 4]`` (an axis); one value stays a scalar (a fixed setting)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise PerfkitError(f"{option}: no values in {text!r}", field=field)
    if field.rsplit(".", 1)[-1] not in TEXT:
        try:
            items = [int(v) for v in items]
        except ValueError:
            raise PerfkitError(f"{option} ({field}) takes integers separated by commas, got {text!r}",
                               field=field) from None
    return items[0] if len(items) == 1 else items


def build_spec(args):
    """The grid (or list of requests) the options describe."""
    spec = _load(args.grid) if args.grid else {}
    given = vars(args)
    options = {f: ("--" + o.replace("_", "-"), given[o]) for o, f in FIELDS.items() if given[o] is not None}
    options.update({f"layers.all.{s}": ("--" + o, given[o]) for o, s in ALL_LAYERS.items() if given[o] is not None})
    for item in args.layer:
        path, _, text = item.partition("=")
        if not text or path.count(".") != 1:
            raise PerfkitError(f"--layer takes TYPE.SETTING=V[,V...], got {item!r}", field="layers")
        options["layers." + path] = ("--layer " + path, text)
    if isinstance(spec, list):
        if options:
            raise PerfkitError("a list of requests takes no axis options; put the settings in the requests",
                               field=None)
        return spec
    if not isinstance(spec, dict):
        raise PerfkitError(f"{args.grid}: a grid file holds an object or a list, got {type(spec).__name__}",
                           field=None)
    for path, (option, text) in options.items():
        value = _values(option, text, path)
        if path.startswith("layers."):
            _, layer_type, setting = path.split(".")
            spec.setdefault("layers", {}).setdefault(layer_type, {})[setting] = value
        else:
            spec[path] = value
    return spec


def _load(path: str):
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PerfkitError(f"cannot read grid file {path!r}: {exc.strerror}", field="grid") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # a syntax error in the user's file, reported as bad input
        raise PerfkitError(f"grid file {path!r} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: "
                           f"{exc}", field="grid") from None


def run(args) -> int:
    from .analysis import pareto_front
    from .core import _evaluated, _plan, attrs
    from .export import format_of, write_csv, write_parquet
    from .table import to_frame

    spec = build_spec(args)
    start = time.perf_counter()
    if args.dask:
        return _run_dask(args, spec, start)
    kind = format_of(args.output) if args.output else "csv"
    plan = _plan(spec)
    meta = attrs(plan.spec)
    fronts, tally = [], Tally(args.pareto_y)
    workload = [a for a in WORKLOAD if a in meta["axes"]]

    def tapped():  # keep each chunk's Pareto fronts (one per workload): the fronts of the fronts are the sweep's
        for chunk, columns in _evaluated(plan, args.chunk_rows, progress=not args.no_progress):
            frame = to_frame(columns, meta)
            tally.add(frame)
            if args.pareto_png:
                fronts.append(_fronts(frame, workload, args.pareto_x, args.pareto_y, pareto_front))
            yield chunk, columns

    if kind == "parquet":
        rows = write_parquet(tapped(), args.output, meta)
    else:
        rows = write_csv(tapped(), args.output or sys.stdout, meta)
    print(f"perfkit sweep: {rows} configurations in {time.perf_counter() - start:.2f} s"
          + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    print(tally.summary(meta["axes"]), file=sys.stderr)
    if args.pareto_png:
        import pandas as pd

        front = _fronts(pd.concat(fronts, ignore_index=True), workload, args.pareto_x, args.pareto_y, pareto_front)
        _plot(front, workload, args.pareto_x, args.pareto_y, args.pareto_png)
    return 0 if tally.runs else NOTHING_RUNS


#: Axes that describe the work (not how it is served): the Pareto picture draws one front per workload.
WORKLOAD = ("model_id", "input_seq", "output_seq", "serving_mode")
#: Exit status of a sweep in which no configuration runs (the table is still written).
NOTHING_RUNS = 3


class Tally:
    """What the summary line says: how many ran, the best row by ``objective``, why the others did not."""

    def __init__(self, objective: str):
        self.objective, self.rows, self.runs, self.best, self.reasons = objective, 0, 0, None, {}

    def add(self, frame) -> None:
        from .analysis import _with

        self.rows += len(frame)
        runs = frame[frame["valid"]]
        self.runs += len(runs)
        for reason, n in frame.loc[~frame["valid"], "reason"].value_counts().items():
            if n:
                self.reasons[str(reason)] = self.reasons.get(str(reason), 0) + int(n)
        if len(runs):
            runs = _with(runs, self.objective)
            top = runs.loc[runs[self.objective].idxmax()]
            if self.best is None or top[self.objective] > self.best[self.objective]:
                self.best = top

    def summary(self, axes) -> str:
        reasons = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:3]
        why = "; ".join(f"{n} x {text}" for text, n in reasons)
        if not self.runs:
            return (f"perfkit sweep: NONE of the {self.rows} configurations runs (exit status {NOTHING_RUNS}); "
                    f"top reasons: {why}")
        settings = ", ".join(f"{a}={self.best[a]}" for a in axes if a in self.best.index)
        line = (f"perfkit sweep: {self.runs} of {self.rows} configurations run; best {self.objective} "
                f"{_number(self.best[self.objective])} at {settings}")
        return line + (f"; {self.rows - self.runs} do not, top reasons: {why}" if self.reasons else "")


def _number(value: float) -> str:
    """12,345 or 3.142: thousands separated, never an exponent."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def _fronts(frame, by, x, y, pareto_front):
    """The Pareto front of each workload (each combination of the ``by`` columns) of ``frame``."""
    import pandas as pd

    if not by:
        return pareto_front(frame, x, y)
    parts = [pareto_front(group, x, y) for _, group in frame.groupby(by, observed=True, sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]


def _run_dask(args, spec, start) -> int:
    from dask.distributed import Client, LocalCluster

    from .analysis import DERIVED
    from .distributed import to_parquet

    if not args.output:
        raise PerfkitError("--dask writes a folder of Parquet parts: give it with -o", field="output")
    if args.pareto_png:
        raise PerfkitError("--pareto-png reads the table in memory; draw it from the Parquet folder instead",
                           field="pareto_png")
    import pandas as pd
    import pyarrow.parquet as pq

    cluster = LocalCluster() if args.dask == "local" else None
    with Client(cluster or args.dask) as client:
        rows = to_parquet(spec, args.output, chunk_rows=args.chunk_rows, client=client)
    if cluster is not None:
        cluster.close()
    print(f"perfkit sweep: {rows} configurations on Dask in {time.perf_counter() - start:.2f} s -> "
          f"{args.output}", file=sys.stderr)
    tally, axes = Tally(args.pareto_y), []
    for part in sorted(Path(args.output).glob("part-*.parquet")):  # one part at a time: memory stays bounded
        meta = json.loads(pq.read_schema(part).metadata[b"perfkit"])
        axes = meta["axes"]
        need = [*axes, "valid", "reason", "throughput_tokens_s", "num_chips",
                *([] if args.pareto_y in DERIVED else [args.pareto_y])]
        tally.add(pd.read_parquet(part, columns=list(dict.fromkeys(need))))
    print(tally.summary(axes), file=sys.stderr)
    return 0 if tally.runs else NOTHING_RUNS


def _plot(front, by, x: str, y: str, path: str) -> None:
    """One labelled front per workload on log axes (matplotlib is imported only here)."""
    from ..figures import new_figure, png
    from ..plots import pareto_fronts

    fig, (ax,) = new_figure(1, width=7.5, height=4.6)
    pareto_fronts(front, by=list(by), x=x, y=y, ax=ax)
    Path(path).write_bytes(png(fig, dpi=120))
