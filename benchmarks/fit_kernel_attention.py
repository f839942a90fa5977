"""Fit the attention kernel families on every system and backend; write the params and the held-out errors.

    PYTHONPATH=$PWD python3 benchmarks/fit_kernel_attention.py            # fit, write JSON + CSV
    PYTHONPATH=$PWD python3 benchmarks/fit_kernel_attention.py --yaml     # also merge them into hardware/
    PYTHONPATH=$PWD python3 benchmarks/fit_kernel_attention.py --families=generation_attention,generation_mla --yaml
                                                   # refit only those families; the others' entries are kept

writes benchmarks/kernel_attention_params.json (system -> backend -> family -> variant -> params) and
benchmarks/kernel_attention_errors.csv (median / p90 of |predicted / measured - 1| per split); ``--yaml``
adds the attention families to each hardware file's ``kernels:`` block (keeping the families already there).
"""
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from perfkit.calibration.kernels import PROVENANCE, attention, replace_block, split, tables

HERE = Path(__file__).parent
PARAMS_JSON = HERE / "kernel_attention_params.json"


def fit_all(systems=tuple(tables.SYSTEMS), backends=tables.BACKENDS, families=tuple(attention.TABLES)):
    """Fit ``families`` on every system and backend. Refitting a subset keeps the other families' params and
    error rows of the JSON and CSV already written."""
    subset = set(families) != set(attention.TABLES)
    params = json.loads(PARAMS_JSON.read_text()) if subset and PARAMS_JSON.is_file() else {}
    errors_csv = HERE / "kernel_attention_errors.csv"
    kept = pd.read_csv(errors_csv) if subset and errors_csv.is_file() else pd.DataFrame()
    if len(kept):
        kept = kept[~(kept["family"].isin(families) & kept["system"].isin(systems)
                      & kept["backend"].isin(backends))]
    summaries = [kept] if len(kept) else []
    table = kept
    for system in systems:
        for backend in backends:
            fitted = attention.fit(system, backend, families=families)
            if not fitted:
                continue
            params.setdefault(system, {}).setdefault(backend, {}).update(fitted)
            summary = attention.summary(attention.errors(system, backend, fitted))
            summaries.append(summary.assign(system=system, backend=backend))
            print(system, backend, "\n", summary[summary["split"] == "held-out"].round(3).to_string(), flush=True)
            PARAMS_JSON.write_text(json.dumps(params, indent=1) + "\n")  # after each, so a stop keeps the rest
            table = pd.concat(summaries, ignore_index=True)
            table.round(4).to_csv(errors_csv, index=False)
    return params, table


def write_yaml(params: dict, hardware_dir=HERE.parent / "hardware", families=None) -> None:
    """Merge the attention families of ``params`` into the ``kernels:`` block of each system's hardware files.
    With ``families``, only those families' entries are replaced: every other family, the status and the
    source line stay as they are."""
    for system, by_backend in params.items():
        sources = [tables.source(system, table, backend) for backend in by_backend
                   for table in attention.TABLES.values()]
        for name in tables.SYSTEMS.get(system, (system,)):
            path = Path(hardware_dir) / f"{name}.yaml"
            if not path.is_file():
                continue
            text = path.read_text()
            block = dict((yaml.safe_load(text) or {}).get("kernels") or {})
            for backend, fitted in by_backend.items():
                chosen = {f: v for f, v in fitted.items() if families is None or f in families}
                block[backend] = {**block.get(backend, {}), **chosen}
            if families is None:
                mine = (f"attention fitted by benchmarks/fit_kernel_attention.py to {PROVENANCE}: "
                        f"{', '.join(s for s in sources if s)}; every {split.EVERY}th head configuration held out")
                block["source"] = "; ".join(s for s in (block.get("source"), mine) if s)
                block = {"source": block.pop("source"), **block}
            path.write_text(replace_block(text, block))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    chosen = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--families=")), None)
    if "--yaml-only" in sys.argv:
        write_yaml(json.loads(PARAMS_JSON.read_text()), families=chosen)
    else:
        fitted, _ = fit_all(*(a.split(",") for a in args), **({"families": tuple(chosen)} if chosen else {}))
        if "--yaml" in sys.argv:
            write_yaml(fitted, families=chosen)
