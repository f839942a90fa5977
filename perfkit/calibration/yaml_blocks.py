"""Replacing one top-level block of a hardware file's YAML text, comments elsewhere kept."""
from __future__ import annotations

import re


def replace_block(text: str, key: str, block_text: str) -> str:
    """``text`` with its top-level ``key:`` block replaced by ``block_text`` (or inserted before ``sources:``,
    where a hardware file keeps its provenance last)."""
    pattern = re.compile(rf"(?ms)^{re.escape(key)}:.*?(?=^\S)")
    if pattern.search(text):
        return pattern.sub(lambda m: block_text, text, count=1)
    return re.sub(r"(?m)^sources:", lambda m: block_text + "sources:", text, count=1)
