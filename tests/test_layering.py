"""One direction of flow: the engine, the specs and the API import no outer layer, and the engine does no I/O."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENGINE = sorted((REPO / "perfkit" / "engine").glob("*.py"))
#: Outer layers and optional extras (pandas is a core dependency, for sweeps, so it may load).
OUTER = ("flask", "ipywidgets", "matplotlib", "huggingface_hub", "waitress", "dask", "IPython")
CORE = ["perfkit.engine", *[f"perfkit.engine.{p.stem}" for p in ENGINE if p.stem != "__init__"],
        "perfkit.specs", "perfkit.dtypes", "perfkit.errors", "perfkit.inputs", "perfkit.api", "perfkit"]


def test_core_imports_no_outer_layer():
    # a fresh interpreter, so that what other tests imported does not count
    code = (f"import sys, json\nfor m in {CORE!r}: __import__(m)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {OUTER!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def test_answering_a_request_imports_no_outer_layer():
    code = ("import sys, json, perfkit\n"
            "perfkit.system_metrics({'model_id': 'meta-llama/Llama-3.1-8B', 'hardware_config': 'nvidia_h100_hgx',"
            " 'batch_size': 1, 'input_seq': 8, 'output_seq': 8})\n"
            "perfkit.layers('TinyLlama/TinyLlama-1.1B-Chat-v1.0')\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {OUTER!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, relative imports resolved against ``perfkit.engine``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ["perfkit", "engine"][: max(0, 2 - (node.level - 1))] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: p.name)
def test_engine_does_no_io(path):
    imports = _imports(path)
    assert not {m for m in imports if m == "perfkit.catalog" or m.startswith("perfkit.catalog.")}, imports
    io_modules = {"os", "io", "json", "yaml", "pathlib", "socket", "urllib", "requests", "importlib.resources",
                  *OUTER}
    assert not {m for m in imports if m.split(".")[0] in io_modules or m in io_modules}, imports
    assert "open(" not in path.read_text()


def test_import_resolution_sees_relative_catalog_imports(tmp_path):
    # the check above would catch "from .. import catalog" and "from ..catalog import x"
    probe = tmp_path / "probe.py"
    probe.write_text("from .. import catalog\nfrom ..catalog import model_spec\n")
    assert {"perfkit.catalog", "perfkit.catalog.model_spec"} <= _imports(probe)
