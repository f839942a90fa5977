"""Writing fitted parameters back into the hardware YAML files and the serving-engine profiles.

Hardware files keep their comments: only the fitted values and the ``source`` line of the ``efficiency``
block change. Profiles are written whole from a template.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..specs import HardwareSpec, ServingProfile
from .fit import HARDWARE_BOUNDS, PROFILE_BOUNDS

PROFILE_TEMPLATE = """\
# Serving-engine profile "{name}": what a serving engine adds on top of the kernels.
# Written by `perfkit calibrate`; see benchmarks/ACCURACY.md.
name: {name}
description: "{description}"
kernels: {kernels}                   # the backend whose fitted kernel models (hardware files' kernels:) it runs
step_overhead_s: {step_overhead_s:.6g}          # per engine step: scheduling, graph launch, sampling
sequence_overhead_s: {sequence_overhead_s:.6g}    # per sequence per step (bookkeeping, sampling, detokenization)
launch_s: {launch_s:.6g}                 # host time per kernel launch of an eager prefill (decode replays CUDA graphs)
kernel_gap_s: {kernel_gap_s:.6g}             # GPU idle between consecutive kernels
graph_fixed_share: {graph_fixed_share:.6g}        # share of a kernel's measured fixed per-call cost a CUDA-graph decode step pays
prefill_interference: {prefill_interference:.6g}       # share of each new request's prefill that stalls the running decodes
ramp: {ramp:.6g}                      # share of a full-batch prefill a request waits for on average (arrival bursts)
prefill_chunk_tokens: {prefill_chunk_tokens:.6g}      # prompt tokens per engine step under chunked prefill (each chunk rides a decode step)
memory_utilization: {memory_utilization:.6g}         # share of chip memory the engine takes for weights, activations and KV cache
request_overhead_s: {request_overhead_s:.6g}        # per request before its first token: HTTP, tokenization, admission
band:                           # measured/predicted quantiles by kernel calibration status and mode (calibration/bands.py)
{bands}
source: "{source}"
"""


def write_profile(profile: ServingProfile, folder: Path) -> Path:
    values = {k: getattr(profile, k) for k in (*PROFILE_BOUNDS, "memory_utilization")}
    bands = "\n".join(f"  {key}: {{" + ", ".join(f"{k}: {v:.4g}" for k, v in profile.band[key].items()) + "}"
                      for key in ServingProfile.BANDS)
    text = PROFILE_TEMPLATE.format(name=profile.name, description=profile.description, source=profile.source,
                                   kernels=profile.kernels, bands=bands, **values)
    path = Path(folder) / f"{profile.name}.yaml"
    path.write_text(text)
    return path


def update_hardware_text(text: str, spec: HardwareSpec, source: str) -> str:
    """The YAML text with the efficiency block's fitted values and source replaced, comments kept."""
    for key in HARDWARE_BOUNDS:
        value = getattr(spec.efficiency, key)
        text, n = re.subn(rf"(?m)^(  {key}:\s*)[^\s#]+", lambda m: f"{m.group(1)}{value:.6g}", text, count=1)
        if n != 1:
            raise ValueError(f"{spec.name}: no 'efficiency.{key}' line to update")
    text, n = re.subn(r'(?m)^(  source:\s*).*$', lambda m: f'{m.group(1)}"{source}"', text, count=1)
    if n != 1:
        raise ValueError(f"{spec.name}: no 'efficiency.source' line to update")
    return text
