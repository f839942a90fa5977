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


def system_request(model_id: str, hardware: str, batch_size: int = 1, input_seq: int = 1024,
                   output_seq: int = 128, **layers) -> dict:
    """A system-metrics request; ``layers`` maps a layer type to its settings dict."""
    body = {"model_id": model_id, "hardware_config": hardware, "batch_size": batch_size,
            "input_seq": input_seq, "output_seq": output_seq}
    if layers:
        body["layers"] = layers
    return body


@pytest.fixture(scope="session")
def make_system_request():
    """The :func:`system_request` builder (session-scoped, so hypothesis tests may use it)."""
    return system_request
