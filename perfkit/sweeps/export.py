"""Writing a sweep to CSV or Parquet chunk by chunk: memory stays bounded by the chunk, not the grid.

A 50-million-row grid streams to one Parquet file (one row group per chunk) without the table ever being in
memory; the format follows the file's extension. A file says everything that was run: Parquet keeps the
sweep's axes and fixed settings in its ``perfkit`` metadata, CSV keeps each fixed setting (a value that was
not an axis, ``output_seq=256`` say) as a constant column after the axes.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import PerfkitError, choices_text
from .core import _evaluated, _plan, attrs
from .run import DEFAULT_CHUNK_ROWS
from .table import to_arrow, to_frame

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def format_of(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PerfkitError(f"cannot tell the format of {str(path)!r} from {suffix or 'no extension'!r}; "
                           + choices_text(suffix, FORMATS), field="output")
    return FORMATS[suffix]


def write(spec, path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False) -> int:
    """Evaluate ``spec`` (a grid or a list of requests, as :func:`perfkit.sweep` takes) straight into
    ``path`` (``.csv`` or ``.parquet``); returns the number of rows written.

    >>> import tempfile, pandas as pd
    >>> out = tempfile.mkdtemp() + "/sweep.parquet"
    >>> write({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...        "batch_size": [1, 8, 64], "input_seq": 1024, "output_seq": 128}, out, chunk_rows=2)
    3
    >>> pd.read_parquet(out)["batch_size"].tolist()
    [1, 8, 64]
    """
    kind = format_of(path)
    plan = _plan(spec)
    chunks = _evaluated(plan, chunk_rows, progress)
    if kind == "parquet":
        return write_parquet(chunks, path, attrs(plan.spec))
    return write_csv(chunks, path, attrs(plan.spec))


def write_parquet(chunks, path, metadata: dict | None = None) -> int:
    """Write ``(chunk, columns)`` pairs as one Parquet file, one row group per chunk."""
    import json

    import pyarrow.parquet as pq

    writer, total = None, 0
    try:
        for _, columns in chunks:
            batch = to_arrow(columns)
            if writer is None:
                schema = batch.schema.with_metadata({"perfkit": json.dumps(metadata or {}, default=str)})
                writer = pq.ParquetWriter(str(path), schema)
            writer.write_batch(batch)
            total += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return total


def write_csv(chunks, path, metadata: dict | None = None) -> int:
    """Write ``(chunk, columns)`` pairs as one CSV file (``path`` may be an open text file); the fixed
    settings of ``metadata`` (:func:`perfkit.sweeps.core.attrs`) become constant columns after the axes."""
    if hasattr(path, "write"):
        return _csv_rows(chunks, path, metadata or {})
    with open(path, "w", newline="") as handle:
        return _csv_rows(chunks, handle, metadata or {})


def _csv_rows(chunks, handle, metadata: dict) -> int:
    total = 0
    fixed = metadata.get("fixed", {})
    for _, columns in chunks:
        frame = with_fixed(to_frame(columns), fixed, metadata.get("axes", []))
        frame.to_csv(handle, header=total == 0, index=False)
        total += len(frame)
    return total


def with_fixed(frame, fixed: dict, axes) -> "pd.DataFrame":
    """``frame`` with one constant column per fixed setting, placed after the axis columns."""
    fixed = {k: v for k, v in fixed.items() if k not in frame.columns}
    if not fixed:
        return frame
    at = max((frame.columns.get_loc(a) + 1 for a in axes if a in frame.columns), default=0)
    out = frame.copy(deep=False)
    for offset, (name, value) in enumerate(fixed.items()):
        out.insert(at + offset, name, value)
    return out
