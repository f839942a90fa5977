"""Number formats: bytes per element, and which tensor-core format computes each one.

A dtype names the storage format of a layer's weights (and, by default, of its KV cache). Activations are
kept in 16-bit unless the layer runs in fp32. A chip that lacks a format's tensor cores computes it in the
next wider format it has (``COMPUTE_FALLBACK``); the engine reports each such fallback.
"""
from __future__ import annotations

import numpy as np

#: Every dtype perfkit understands, narrowest last. Order is the index used by the vectorized engine.
#: ``fp8_block`` is fp8 scaled per 128 x 128 block (DeepSeek's and Qwen3's fp8 checkpoints) rather than per
#: tensor: the same bytes and peak, other kernels (measured apart in the kernel tables).
DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16", "fp8", "fp8_block", "int8", "fp4", "int4")

BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}

#: Formats whose peak a hardware file may publish (int4 weight-only kernels compute in int8 or 16-bit).
PEAK_DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16", "fp8", "int8", "fp4")

#: Where a chip without native support for a format computes it instead: always a wider format, so a
#: fallback never makes a layer faster than the chip can really run it.
COMPUTE_FALLBACK = {
    "fp32": (),
    "fp16": ("bf16",),
    "bf16": ("fp16",),
    "fp8": ("bf16", "fp16"),
    "fp8_block": ("fp8", "bf16", "fp16"),
    "int8": ("bf16", "fp16"),
    "fp4": ("fp8", "bf16", "fp16"),
    "int4": ("int8", "fp8", "bf16", "fp16"),
}

BYTES_ARRAY = np.array([BYTES[d] for d in DTYPES])
#: Activation bytes per element for a layer of each dtype: 4 for fp32, else 16-bit.
ACTIVATION_BYTES_ARRAY = np.array([4.0 if d == "fp32" else 2.0 for d in DTYPES])
INDEX = {d: i for i, d in enumerate(DTYPES)}
