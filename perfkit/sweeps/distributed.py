"""The same sweep on Dask: chunks as tasks, written as partitioned Parquet (one file per chunk).

The grid is checked once on the client; each task receives the small, picklable checked spec and one chunk
descriptor, rebuilds its own evaluator (specs load from the catalog on the worker) and writes its part.
Nothing here is imported by :func:`perfkit.sweep`: the single-machine path needs no Dask.

On a real cluster, start ``dask scheduler`` and ``dask worker`` processes on machines that have perfkit
installed, then::

    from dask.distributed import Client
    from perfkit.sweeps.distributed import to_parquet
    to_parquet(grid, "s3://bucket/sweep/", client=Client("tcp://scheduler:8786"))

and read it back with ``dask.dataframe.read_parquet`` (or pandas, for what fits in memory).
"""
from __future__ import annotations

from .export import write_parquet
from .grid import Requests, parse
from .core import attrs
from .run import DEFAULT_CHUNK_ROWS, Chunk, Sweep
from .table import to_frame


def _parts(spec, chunk_rows: int):
    """(spec, chunk) pairs, one per task; a list of requests is cut so each task carries only its rows."""
    checked = parse(spec)
    if isinstance(checked, Requests):
        for lo in range(0, checked.size, chunk_rows):
            part = checked.part(lo, lo + chunk_rows)
            yield part, Chunk(offset=lo, rows=part.size, lo=0, hi=part.size)
        return
    for chunk in Sweep(checked).chunks(chunk_rows):
        yield checked, chunk


def _evaluate(spec, chunk: Chunk) -> dict:
    return Sweep(spec).evaluate(chunk)


def _write_part(spec, chunk: Chunk, path: str) -> int:
    return write_parquet([(chunk, _evaluate(spec, chunk))], path, attrs(spec))


def _frame_part(part):
    spec, chunk = part
    frame = to_frame(_evaluate(spec, chunk), attrs(spec))
    frame.index = range(chunk.offset, chunk.offset + chunk.rows)
    return frame


def to_parquet(spec, path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, client=None) -> int:
    """Evaluate ``spec`` on Dask into the folder ``path``, one ``part-NNNNNN.parquet`` per chunk (in row
    order); returns the number of rows. ``client`` defaults to Dask's current scheduler.

    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> to_parquet({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...             "batch_size": [1, 8, 64], "input_seq": 1024, "output_seq": 128}, folder, chunk_rows=2)
    3
    >>> len(pd.read_parquet(folder))
    3
    """
    import dask
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(path))
    fs.makedirs(root, exist_ok=True)
    tasks = [dask.delayed(_write_part, pure=True)(spec, chunk, f"{str(path).rstrip('/')}/part-{i:06d}.parquet")
             for i, (spec, chunk) in enumerate(_parts(spec, chunk_rows))]
    counts = client.gather(client.compute(tasks)) if client is not None else dask.compute(*tasks)
    return int(sum(counts))


def to_dask(spec, *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """The sweep as a lazy ``dask.dataframe.DataFrame``, one partition per chunk (index = row number).

    >>> df = to_dask({"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
    ...               "batch_size": [1, 8, 64], "input_seq": 1024, "output_seq": 128}, chunk_rows=2)
    >>> df.npartitions, int(df["batch_size"].sum().compute())
    (2, 73)
    """
    import dask.dataframe as dd

    parts = list(_parts(spec, chunk_rows))
    meta = _frame_part(parts[0]).iloc[:0]
    divisions = [chunk.offset for _, chunk in parts] + [parts[-1][1].offset + parts[-1][1].rows - 1]
    return dd.from_map(_frame_part, parts, meta=meta, divisions=divisions, enforce_metadata=False)
