"""Fitting the kernel closed forms of :mod:`perfkit.engine.kernels` to measured kernel tables.

Each registered family (:data:`FAMILIES`: the name of its entry in a hardware file's ``kernels:`` block ->
the calibration module) reads one table (``TABLE``) of ``shared/data/kernels/<system>/`` (or a user's folder
in the same layout) and offers ``fit(system, backend, root=None) -> {variant: {param: value}}`` on the
training shapes of :mod:`.split` and ``errors(system, backend, fitted, root=None) -> DataFrame`` with one row
per table row (``variant``, ``split``, ``error`` = |predicted / measured - 1|, ...). :func:`fit_kernels` runs
every family for the chosen systems and backends; :func:`write_blocks` writes the ``kernels:`` block (before
``sources:``) of the hardware files each system describes; :func:`error_table` scores the shipped parameters.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import yaml_blocks
from . import attention, gemm, moe, split, tables

#: family (key of the ``kernels.<backend>`` block) -> calibration module (``TABLE``, ``fit``, ``errors``).
FAMILIES = {
    "gemm": gemm,
    **attention.FAMILIES,
    "moe": moe,
}
PROVENANCE = "aiconfigurator-core 0.12.0 tables"


#: A GEMM fit whose fixed cost per call exceeds this is the benchmark harness's host work, not a kernel's:
#: vLLM's block-scaled fp8 GEMMs on Blackwell and L40S take 170-340 us per call whatever the shape (shapes
#: one token apart differ by 30-40%), which a CUDA-graph decode step never pays. Such variants are left out
#: of the block, so the engine falls back to another backend's fit of the same variant.
HOST_BOUND_S = 2e-5


def served(family: str, fitted: dict) -> dict:
    """``fitted`` without the variants whose fixed cost is the harness's host work (:data:`HOST_BOUND_S`)."""
    if family != "gemm":
        return fitted
    return {v: p for v, p in fitted.items() if p.get("launch_s", 0.0) <= HOST_BOUND_S}


def fit_system(system: str, backends=tables.BACKENDS, root=None, families=None) -> dict:
    """The ``kernels`` block (a dict: ``source`` and backend -> family -> variant -> params) of one system,
    from every registered family whose table the system's folder holds."""
    block, sources = {}, []
    for family, module in FAMILIES.items():
        if families is not None and family not in families:
            continue
        present = tables.files(system, module.TABLE, root)
        for backend in backends:
            if backend not in present:
                continue
            fitted = served(family, module.fit(system, backend, root))
            if fitted:
                block.setdefault(backend, {})[family] = fitted
                sources.append(tables.source(system, module.TABLE, backend, root))
    if block:
        every = f"every {split.EVERY}th shape key held out (perfkit/calibration/kernels/split.py)"
        block["source"] = (f"fitted by `perfkit calibrate --kernels` to {PROVENANCE}: {', '.join(sources)}; "
                           f"{every}")
    return block


def fit_kernels(systems=None, backends=tables.BACKENDS, root=None, families=None) -> dict[str, dict]:
    """system -> ``kernels`` block, for ``systems`` (default: every system folder of ``root`` that holds a
    table of a registered family)."""
    if systems is None:
        systems = sorted({s for m in FAMILIES.values() for s in tables.systems(m.TABLE, root)})
    out = {}
    for system in systems:
        block = fit_system(system, backends, root, families)
        if block:
            out[system] = block
    return out


def _number(value: float) -> str:
    """A YAML float that every YAML 1.1 reader parses as a number (``1.0e-06``, never ``1e-06``)."""
    text = f"{value:.4g}"
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def yaml_block(block: dict) -> str:
    """The ``kernels:`` block as YAML text, one flow mapping of parameters per variant."""
    lines = ["kernels:                             # kernel time models; see perfkit/engine/kernels",
             *([f"  status: {block['status']}"] if "status" in block else []),
             f'  source: "{block["source"]}"']
    for backend, families in block.items():
        if backend in ("source", "status"):
            continue
        lines.append(f"  {backend}:")
        for family, variants in families.items():
            lines.append(f"    {family}:")
            for variant, params in variants.items():
                body = ", ".join(f"{k}: {_number(v)}" for k, v in params.items())
                lines.append(f"      {variant}: {{{body}}}")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: dict) -> str:
    """A hardware file's text with its ``kernels:`` block replaced (or added before ``sources:``)."""
    return yaml_blocks.replace_block(text, "kernels", yaml_block(block))


def write_blocks(root, hardware_dir, systems=None, backends=tables.BACKENDS) -> dict[str, dict]:
    """Fit ``systems`` of the table folder ``root`` and write each block into the catalog files it describes
    (:data:`tables.SYSTEMS`; a folder named as a catalog entry writes that entry)."""
    fitted = fit_kernels(systems, backends, root)
    for system, block in fitted.items():
        for name in tables.SYSTEMS.get(system, (system,)):
            path = Path(hardware_dir) / f"{name}.yaml"
            if path.is_file():
                path.write_text(replace_block(path.read_text(), block))
    return fitted


def summarize(errors: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """rows, median and p90 of ``error`` (in %) per group."""
    grouped = errors.groupby(by, observed=True)["error"]
    return pd.DataFrame({"rows": grouped.size(), "median": 100 * grouped.median(),
                         "p90": 100 * grouped.quantile(0.9)}).reset_index()


def error_table(root=None, systems=None, fitted: dict | None = None) -> pd.DataFrame:
    """Columns ``system, backend, family, dtype, split, rows, median, p90`` (errors in %): every registered
    family's shipped parameters (the catalog's ``kernels`` block, or ``fitted``: system -> block) scored on
    the tables of ``root``; empty when no table is there."""
    frames = []
    systems = systems or sorted({s for m in FAMILIES.values() for s in tables.systems(m.TABLE, root)})
    for system in systems:
        if fitted is not None:
            block = fitted.get(system) or {}
        else:
            spec = tables.hardware(system)
            block = spec.kernels.fits if spec.kernels is not None else {}
        for backend, families in block.items():
            if backend == "source":
                continue
            for family, params in families.items():
                module = FAMILIES.get(family)
                if module is None or backend not in tables.files(system, module.TABLE, root):
                    continue
                errs = module.errors(system, backend, params, root)
                table = summarize(errs, ["variant", "split"]).rename(columns={"variant": "dtype"})
                frames.append(table.assign(system=system, backend=backend, family=family))
    columns = ["system", "backend", "family", "dtype", "split", "rows", "median", "p90"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


__all__ = ["FAMILIES", "error_table", "fit_kernels", "fit_system", "split", "tables", "write_blocks"]
