"""Launch commands for a planned layout, from the template files in ``templates/`` (one per serving engine).

A template names the command, its flags (each written when its condition holds) and notes; this module only
fills in the values of a plan row. The flag names come from each engine's own documentation (see the
comment at the top of each file).
"""
from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Mapping

import yaml

from ..errors import PerfkitError, choices_text

ENGINES = ("vllm", "sglang", "trtllm")
#: The conditions a template's flags and notes may name.
CONDITIONS = ("pipeline", "replicas", "plain_replicas", "attention_tp", "expert", "attention_dp", "data_parallel", "apart", "fp8_kv",
              "fp8_weights", "config")


@cache
def template(engine: str) -> dict:
    """The parsed template of one serving engine."""
    if engine not in ENGINES:
        raise PerfkitError(f"engine={engine!r} has no launch template; " + choices_text(engine, ENGINES),
                           field="engine")
    text = resources.files(__package__).joinpath("templates", f"{engine}.yaml").read_text()
    return yaml.safe_load(text)


def values(row: Mapping, model: str, memory_fraction: float) -> dict:
    """The values a template fills in, from one row of a plan table.

    With attention data parallel (``attention_dp`` ranks, each its own attention and KV cache, the experts
    shared), the engines count the group's GPUs as their tensor-parallel size (``group_tp``) and the
    attention ranks as their data-parallel size; replicas of such a group run as separate servers
    (``apart``). Without it, the data-parallel size is the number of replicas. vLLM and TensorRT-LLM cap the
    running sequences per attention rank (``sequences_per_rank``), SGLang per group.
    """
    tp, pp = int(row["tensor_parallel"]), int(row["pipeline_parallel"])
    ep, replicas = int(row.get("expert_parallel", 1)), int(row.get("replicas", 1))
    attention_dp = int(row.get("attention_data_parallel", 1))
    data_parallel = attention_dp if attention_dp > 1 else replicas
    return {
        "model": model, "tensor_parallel": tp, "pipeline_parallel": pp, "expert_parallel": ep,
        "replicas": replicas, "layout_chips": int(row["num_chips"]) // replicas,
        "attention_data_parallel": attention_dp, "group_tp": tp * attention_dp, "data_parallel": data_parallel,
        "max_running_sequences": int(row["max_running_sequences"]),
        "sequences_per_rank": -(-int(row["max_running_sequences"]) // attention_dp),
        "max_model_len": int(row["input_seq"]) + int(row["output_seq"]),
        "memory_fraction": f"{memory_fraction:g}",
        "conditions": {"pipeline": pp > 1, "replicas": replicas > 1, "expert": ep > 1,
                       "attention_dp": attention_dp > 1, "data_parallel": data_parallel > 1,
                       "apart": attention_dp > 1 and replicas > 1,
                       "plain_replicas": replicas > 1 and attention_dp == 1,
                       "attention_tp": attention_dp > 1 and tp > 1,
                       "fp8_kv": row["kv_dtype"] == "fp8", "fp8_weights": row["dtype"] == "fp8"
                       and row.get("native_dtype") != "fp8", "config": True},
    }


def command(engine: str, row: Mapping, model: str, memory_fraction: float = 0.9) -> str:
    """The shell command (with ``#`` notes) that launches ``row`` of a plan on ``engine``.

    >>> row = {"tensor_parallel": 4, "pipeline_parallel": 1, "replicas": 2, "num_chips": 8,
    ...        "max_running_sequences": 128, "input_seq": 1024, "output_seq": 256, "kv_dtype": "fp8",
    ...        "dtype": "bf16"}
    >>> print(command("vllm", row, "meta-llama/Llama-3.3-70B-Instruct"))
    vllm serve meta-llama/Llama-3.3-70B-Instruct \\
      --tensor-parallel-size 4 \\
      --data-parallel-size 2 \\
      --max-num-seqs 128 \\
      --max-model-len 1280 \\
      --gpu-memory-utilization 0.9 \\
      --kv-cache-dtype fp8
    """
    spec = template(engine)
    v = values(row, model, memory_fraction)
    on = v.pop("conditions")
    lines = [spec["command"].format(**v)]
    for item in spec["flags"]:
        if on[item.get("when", "config")]:
            lines.append(item["flag"].format(**v))
    text = " \\\n  ".join(lines)
    if "prelude" in spec:
        extra = {key: (line if on[key.removesuffix("_line")] else "") for key, line in spec.get("lines", {}).items()}
        prelude = spec["prelude"]
        for key, line in extra.items():
            prelude = prelude.replace("{" + key + "}", line)
        text = prelude.format(**v) + "\n" + text
    notes = [note.format(**v) for key, note in spec.get("notes", {}).items() if on.get(key, False)]
    return "\n".join([*(f"# {n}" for n in notes), text])


def commands(row: Mapping, model: str, memory_fraction: float = 0.9) -> dict[str, str]:
    """Every engine's launch command for one plan row."""
    return {engine: command(engine, row, model, memory_fraction) for engine in ENGINES}
