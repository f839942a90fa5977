"""The measured kernel tables of ``shared/data/kernels`` (NVIDIA aiconfigurator-core 0.12.0), as DataFrames.

A folder holds one sub-folder per system, named as the tables name it (``h100_sxm``), with files
``<table>.<backend>-<version>.parquet`` (CSV with the same columns is accepted too, for users' own tables).
``latency`` is in milliseconds per kernel call on one GPU; :func:`load` adds ``seconds``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..measurements import shared_data

#: Table system -> the catalog hardware entries it describes. GB200's table also serves the NVL72 rack (the
#: same Blackwell GPUs); the GB300 NVL72 entry is GB300's one-GPU figures.
SYSTEMS: dict[str, tuple[str, ...]] = {
    "h100_sxm": ("nvidia_h100_hgx",),
    "h200_sxm": ("nvidia_h200_hgx",),
    "b200_sxm": ("nvidia_b200_hgx",),
    "b300_sxm": ("nvidia_b300_hgx",),
    "gb200": ("nvidia_gb200_single", "nvidia_nvl72_rack"),
    "gb300": ("nvidia_gb300_nvl72",),
    "a100_sxm": ("nvidia_a100_hgx",),
    "l40s": ("nvidia_l40s_server",),
}
#: Backends whose tables the kernel fits read (NCCL tables belong to the collectives fit).
BACKENDS = ("trtllm", "vllm")
_NAME = re.compile(r"^(?P<table>[a-z_]+)\.(?P<backend>[a-z0-9]+)-(?P<version>[^/]+?)\.(?P<ext>parquet|csv)$")


def default_dir() -> Path:
    """``shared/data/kernels`` beside the checkout."""
    return shared_data("kernels")


def files(system: str, table: str, root: str | Path | None = None) -> dict[str, Path]:
    """backend -> the newest file of ``table`` for ``system`` (by version text; parquet before CSV)."""
    folder = Path(root if root is not None else default_dir()) / system
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(folder.glob(f"{table}.*")) if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if not match or match["table"] != table:
            continue
        key = (match["version"], match["ext"] == "parquet")
        if match["backend"] not in found or key > found[match["backend"]][0]:
            found[match["backend"]] = (key, path)
    return {backend: path for backend, (_, path) in found.items()}


def source(system: str, table: str, backend: str, root: str | Path | None = None) -> str:
    """``<table>.<backend>-<version>`` of the file :func:`load` reads (the provenance written to YAML)."""
    path = files(system, table, root).get(backend)
    return "" if path is None else path.name.rsplit(".", 1)[0]


def systems(table: str, root: str | Path | None = None) -> list[str]:
    """Systems of :data:`SYSTEMS` (and any other folder) that hold ``table`` for some backend."""
    base = Path(root if root is not None else default_dir())
    names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    return [s for s in names if files(s, table, base)]


def load(system: str, table: str, backend: str | None = None, root: str | Path | None = None) -> pd.DataFrame:
    """The rows of ``table`` for ``system`` (one backend, or every backend with a ``backend`` column),
    with ``seconds`` = ``latency`` / 1000. A missing table is a :class:`FileNotFoundError` naming the choices."""
    found = files(system, table, root)
    if backend is not None:
        if backend not in found:
            raise FileNotFoundError(f"no {table} table for system {system!r} and backend {backend!r}; "
                                    f"backends with one: {sorted(found) or 'none'}")
        found = {backend: found[backend]}
    if not found:
        raise FileNotFoundError(f"no {table} table for system {system!r} under {root or default_dir()}")
    frames = []
    for name, path in sorted(found.items()):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        frame = frame.assign(backend=name, seconds=pd.to_numeric(frame["latency"], errors="coerce") / 1e3)
        frames.append(frame[frame["seconds"] > 0])
    return pd.concat(frames, ignore_index=True)


def hardware(system: str):
    """The catalog :class:`~perfkit.specs.HardwareSpec` whose peaks a table system's fit is expressed in: the
    first entry of :data:`SYSTEMS`, or a catalog entry of that very name (a user's own chip)."""
    from ... import catalog
    from ...errors import NotFoundError

    name = SYSTEMS.get(system, (system,))[0]
    if name not in catalog.list_hardware():
        raise NotFoundError(f"kernel-table system {system!r} is neither a known table system "
                            f"({', '.join(SYSTEMS)}) nor a catalog hardware entry", field="systems")
    return catalog.hardware_spec(name)
