"""The documented train / held-out split of the measured points.

Whole (model family, system) groups are held out, never random rows, so the reported error is the error on
models and systems the fit never saw together. The held-out groups cover every model family and include one
system with no training rows at all (GB300: its Blackwell siblings' fit is all it gets).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: (model family, aiconfigurator system) groups held out of the fit.
HELD_OUT = (
    ("llama", "h200_sxm"),
    ("gpt-oss", "b200_sxm"),
    ("deepseek", "h200_sxm"),
    ("qwen", "h200_sxm"),
    ("deepseek", "gb300"),
)


def held_out(measured: pd.DataFrame, groups=HELD_OUT) -> np.ndarray:
    """Boolean mask of the rows in held-out groups."""
    keys = set(groups)
    return np.array([(f, s) in keys for f, s in zip(measured["model_family"], measured["system"])], dtype=bool)


def parse_groups(text: str) -> tuple[tuple[str, str], ...]:
    """``"llama:h200_sxm,qwen:h100_sxm"`` -> groups; an empty string holds nothing out."""
    from ..errors import PerfkitError

    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        family, sep, system = item.partition(":")
        if not sep or not family or not system:
            raise PerfkitError(f"held-out group {item!r} is not of the form family:system (e.g. llama:h200_sxm)",
                               field="holdout")
        out.append((family, system))
    return tuple(out)
