"""Every notebook runs top to bottom under nbval, and its reproducible cells (the JSON responses) match the
outputs stored in the notebook.

Each notebook runs in its own ``pytest --nbval`` subprocess (one test per notebook) so that pytest-xdist
spreads whole notebooks over workers: nbval needs one kernel to see a notebook's cells in order, which
xdist's default scheduling of the outer run would not guarantee. Cells whose output may change (plots,
widgets, tables of calibrated figures) carry ``# NBVAL_IGNORE_OUTPUT``; floats are compared to 6 decimals
(``tests/nbval_sanitize.cfg``). After the engine changes, regenerate the stored outputs with the command in
the README's "Notebooks" section.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REGENERATE = ("jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.store_widget_state=False "
              "--ExecutePreprocessor.record_timing=False notebooks/*.ipynb")


def test_every_notebook_is_found_and_explains_itself():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"][: len(NOTEBOOKS)]
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_nbval_markers_are_whole_comments(path):
    # nbval honours "# NBVAL_IGNORE_OUTPUT" only as the whole comment: with a reason after it on the same line
    # the cell was compared anyway (its reason goes on the next line)
    from nbval.plugin import comment_markers

    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines() if cell.cell_type == "code" else ():
            if "NBVAL_" in line:
                assert line.strip().lstrip("#").strip() in comment_markers, line


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_notebook_opens_unmodified(path):
    # issue 12: JupyterLab marked every notebook modified on opening: it rewrites a kernelspec whose display
    # name differs from the installed kernel's ("Python 3" vs "Python 3 (ipykernel)") and adds missing cell ids
    from ipykernel.kernelspec import get_kernel_dict

    nb = nbformat.read(path, as_version=4)
    kernel = get_kernel_dict()
    assert nb.metadata["kernelspec"] == {"display_name": kernel["display_name"], "language": kernel["language"],
                                         "name": "python3"}
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5) and all(c.get("id") for c in nb.cells)
    assert "widgets" not in nb.metadata  # no stale widget state to reconcile
    nbformat.validate(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_reproduces_under_nbval(path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "--nbval",
           "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
           "--rootdir", str(ROOT / "notebooks"), "-o", "addopts=", str(path)]
    result = subprocess.run(cmd, cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"nbval failed on {path.name} (if the engine changed on purpose, regenerate the stored outputs: "
        f"{REGENERATE}):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    assert " passed" in result.stdout and " failed" not in result.stdout
