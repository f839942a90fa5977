"""Predictions before and after a speed change (not a test): dump the engine's answers once, compare after.

    PYTHONPATH=$PWD python3 benchmarks/speed_reference.py dump /tmp/reference.pkl
    PYTHONPATH=$PWD python3 benchmarks/speed_reference.py check /tmp/reference.pkl

Dumps ``perfkit.system_metrics`` (the rounded response) and the raw ``evaluate`` arrays of a few hundred
varied bodies (every model and most chips; dtypes, pipelines, replicas, context / expert parallel,
continuous mode, open-loop load, disaggregated pools), ``perfkit.layer_metrics`` of each layer type, and
sweep DataFrames (a subset of ``sweep_bench.GRID``, an MoE / MLA grid, a continuous grid). ``check``
compares to a relative 1e-12 (floating reassociation moves the last bits) and prints what differs.
"""
from __future__ import annotations

import pickle
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perfkit  # noqa: E402
from perfkit import catalog  # noqa: E402
from perfkit.dtypes import DTYPES  # noqa: E402
from perfkit.engine.system import evaluate  # noqa: E402
from perfkit.inputs import system_config, to_arrays  # noqa: E402

RTOL = 1e-12


def bodies(n: int = 400) -> list[dict]:
    rng = random.Random(13)
    models, chips = catalog.list_models(), catalog.list_hardware()
    out = []
    for i in range(n):
        model = models[i % len(models)]
        body = {"model_id": model, "hardware_config": rng.choice(chips),
                "batch_size": rng.choice([1, 2, 3, 8, 17, 64, 256, 1000]),
                "input_seq": rng.choice([1, 128, 1000, 2048, 8192, 32768]),
                "output_seq": rng.choice([1, 16, 128, 512, 2048])}
        tp = rng.choice([1, 2, 4, 8])
        layers = {"attention": {"tensor_parallel": tp}, "feedforward": {"tensor_parallel": tp},
                  "embedding": {"tensor_parallel": rng.choice([1, tp])}}
        if rng.random() < 0.3:
            layers["attention"]["context_parallel"] = rng.choice([1, 2])
        if rng.random() < 0.2:
            layers["attention"]["data_parallel"] = rng.choice([1, 2])
        if rng.random() < 0.3:
            layers["feedforward"]["sequence_parallel"] = rng.choice([1, 2])
        if catalog.model_spec(model).is_moe:
            layers["feedforward"]["expert_parallel"] = rng.choice([1, 2, 4, 8])
        if rng.random() < 0.6:
            dtype = rng.choice(DTYPES)
            for t in ("attention", "feedforward", "norm", "embedding"):
                layers.setdefault(t, {})["dtype"] = dtype if rng.random() < 0.8 else rng.choice(DTYPES)
        body["layers"] = layers
        if rng.random() < 0.3:
            body["kv_dtype"] = rng.choice(["fp8", "bf16", "fp16"])
        if rng.random() < 0.3:
            body["pipeline_parallel"] = rng.choice([2, 4])
        if rng.random() < 0.2:
            body["replicas"] = rng.choice([2, 3])
        if rng.random() < 0.4:
            body["serving_mode"] = "continuous"
            if rng.random() < 0.4:
                body["arrival_rate_qps"] = rng.choice([0.5, 5.0, 50.0])
                if rng.random() < 0.5:
                    body["input_seq_cv"], body["output_seq_cv"] = 0.5, 1.0
        if rng.random() < 0.5:
            body["serving_engine"] = rng.choice(catalog.list_serving_engines())
        if rng.random() < 0.1:
            body["price_per_chip_hour"] = 2.5
        if rng.random() < 0.2:
            body["uncertainty"] = True
        out.append(body)
    for hw in ("nvidia_h100_hgx", "nvidia_h200_hgx", "nvidia_b200_hgx"):
        for model in ("meta-llama/Llama-3.1-8B", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-30B-A3B"):
            pools = {"prefill": {"replicas": 2, "batch_size": 2, "layers": {"attention": {"tensor_parallel": 8},
                                                                            "feedforward": {"tensor_parallel": 8}}},
                     "decode": {"replicas": 1, "batch_size": 64, "layers": {"attention": {"tensor_parallel": 8},
                                                                            "feedforward": {"tensor_parallel": 8}}}}
            out.append({"model_id": model, "hardware_config": hw, "input_seq": 2048, "output_seq": 256,
                        "disaggregated": pools})
    return out


def layer_bodies() -> list[dict]:
    out = []
    for model in ("meta-llama/Llama-3.1-70B", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-30B-A3B", "google/gemma-2-9b"):
        for layer_type in ("attention", "feedforward", "norm", "embedding"):
            for phase in ("prefill", "decode"):
                out.append({"model_id": model, "hardware_config": "nvidia_h200_hgx", "layer_type": layer_type,
                            "batch_size": 8, "seq_length": 4096, "tensor_parallel": 8, "phase": phase})
    return out


def grids() -> list[dict]:
    from sweep_bench import GRID

    small = {**GRID, "batch_size": [1, 16, 256, 4096], "input_seq": [128, 2048, 32768], "output_seq": [128, 4096]}
    moe = {"model_id": ["deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-30B-A3B", "openai/gpt-oss-120b"],
           "hardware_config": ["nvidia_h200_hgx", "nvidia_b200_hgx", "nvidia_l40s_server"],
           "batch_size": [1, 8, 64, 512], "input_seq": [256, 4096], "output_seq": [256],
           "pipeline_parallel": [1, 2],
           "layers": {"attention": {"tensor_parallel": [1, 8]}, "feedforward": {"tensor_parallel": [1, 8],
                                                                                 "expert_parallel": [1, 8]},
                      "all": {"dtype": ["bf16", "fp8", "fp4"]}}}
    cont = {"model_id": ["meta-llama/Llama-3.1-8B", "Qwen/Qwen3-32B"], "hardware_config": "nvidia_h100_hgx",
            "batch_size": [1, 8, 64, 512], "input_seq": [256, 4096], "output_seq": [256, 1024],
            "serving_mode": ["static", "continuous"], "serving_engine": ["vllm", "trtllm"],
            "layers": {"all": {"tensor_parallel": [1, 2, 4]}}}
    return [small, moe, cont]


def _answer(call, *args):
    try:
        return call(*args)
    except perfkit.PerfkitError as error:
        return ("error", type(error).__name__, str(error))


def _raw(body):
    if "disaggregated" in body:
        return None
    flat = system_config(body)
    model = catalog.model_spec(flat["model_id"])
    hw = catalog.hardware_spec(flat["hardware_config"])
    out = evaluate(model, hw, to_arrays(flat), catalog.serving_profile(flat["serving_engine"]))
    return {k: np.asarray(v) for k, v in out.items()}


def collect() -> dict:
    return {
        "system": [_answer(perfkit.system_metrics, b) for b in bodies()],
        "raw": [_answer(_raw, b) for b in bodies()],
        "layer": [_answer(perfkit.layer_metrics, b) for b in layer_bodies()],
        "sweeps": [perfkit.sweep(g) for g in grids()],
    }


def _differ(a, b, where: str, out: list) -> None:
    if len(out) > 20:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            out.append(f"{where}: keys {sorted(set(a) ^ set(b))}")
        for k in a.keys() & b.keys():
            _differ(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{where}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _differ(x, y, f"{where}[{i}]", out)
    elif hasattr(a, "columns"):  # DataFrame
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            out.append(f"{where}: frame shape/columns differ")
            return
        for c in a.columns:
            _differ(a[c].to_numpy(), b[c].to_numpy(), f"{where}[{c}]", out)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            out.append(f"{where}: shape/dtype {a.shape} {a.dtype} != {b.shape} {b.dtype}")
        elif a.dtype.kind == "f":
            close = np.isclose(a, b, rtol=RTOL, atol=0.0, equal_nan=True) | (a == b)
            if not close.all():
                i = np.flatnonzero(~close.ravel())[0]
                out.append(f"{where}: {(~close).sum()} differ, e.g. {a.ravel()[i]!r} != {b.ravel()[i]!r}")
        elif not (a == b).all():
            out.append(f"{where}: values differ")
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (a != a and b != b) or abs(a - b) <= RTOL * max(abs(a), abs(b))):
            out.append(f"{where}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    now = collect()
    if mode == "dump":
        Path(path).write_bytes(pickle.dumps(now))
        print("dumped", {k: len(v) for k, v in now.items()}, "to", path)
        return
    before = pickle.loads(Path(path).read_bytes())
    problems: list[str] = []
    _differ(before, now, "", problems)
    errors = sum(isinstance(a, tuple) for a in now["system"])
    print("OK: equal to rel 1e-12" if not problems else "\n".join(problems[:20]),
          f"({len(now['system'])} bodies, {errors} of them errors)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
