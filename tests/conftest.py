"""Shared test set-up: offline, and the seed's three requests as fixtures.

``HF_HUB_OFFLINE`` is set at import, before any test imports perfkit, so that no test ever reaches the
Hugging Face hub (the one test of the hub code path monkeypatches the client instead).
"""
from __future__ import annotations

import copy
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"

# The three requests of /work/shared/SEED-stateless-api.md, verbatim.
SEED_LAYER_REQUEST = {
    "model_id": TINY,
    "hardware_config": "nvidia_gb200_single",
    "layer_type": "attention",
    "batch_size": 1,
    "seq_length": 2048,
    "dtype": "bf16",
    "tensor_parallel": 4,
    "context_parallel": 2,
    "sequence_parallel": 1,
}

_SEED_LAYER = {"tensor_parallel": 1, "context_parallel": 1, "sequence_parallel": 1, "dtype": "bf16"}
SEED_SYSTEM_REQUEST = {
    "model_id": TINY,
    "hardware_config": "nvidia_gb200_single",
    "batch_size": 1,
    "input_seq": 2048,
    "output_seq": 128,
    "layers": {
        "attention": {**_SEED_LAYER, "tensor_parallel": 4, "context_parallel": 2},
        "feedforward": {**_SEED_LAYER, "tensor_parallel": 8},
        "norm": dict(_SEED_LAYER),
        "embedding": dict(_SEED_LAYER),
    },
}


@pytest.fixture
def seed_layer_request() -> dict:
    """The seed's layer-metrics request (a fresh copy per test)."""
    return copy.deepcopy(SEED_LAYER_REQUEST)


@pytest.fixture
def seed_system_request() -> dict:
    """The seed's system-metrics request (a fresh copy per test)."""
    return copy.deepcopy(SEED_SYSTEM_REQUEST)
