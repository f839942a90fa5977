"""perfkit: predict LLM serving performance, one configuration or millions at once.

>>> import perfkit
>>> r = perfkit.system_metrics({"model_id": "meta-llama/Llama-3.1-70B", "hardware_config": "nvidia_h100_hgx",
...     "batch_size": 8, "input_seq": 2048, "output_seq": 256,
...     "layers": {"attention": {"tensor_parallel": 8}, "feedforward": {"tensor_parallel": 8},
...                "embedding": {"tensor_parallel": 8}}})
>>> r["system"]["num_chips"]
8
"""
from .api import layer_metrics, layers, system_metrics
from .catalog import list_hardware, list_models
from .errors import NotFoundError, PerfkitError
from .sweeps import sweep
from .simulate import simulate  # noqa: E402 (the function shadows its subpackage's name, on purpose)
from .planner import plan

__all__ = [
    "layers",
    "layer_metrics",
    "system_metrics",
    "sweep",
    "simulate",
    "plan",
    "list_models",
    "list_hardware",
    "PerfkitError",
    "NotFoundError",
]
__version__ = "0.1.0"
