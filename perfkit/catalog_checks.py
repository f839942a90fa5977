"""Physical-range checks of catalog data, run when a file is loaded (before the frozen specs are built).

Every number in a catalog file must be a real JSON/YAML number (not a string, not a bool), finite, and inside
the range its physics allows; counts must be integers. A failure is a :class:`~perfkit.errors.SpecError` that
names the catalog entry (``hardware 'nvidia_h100_hgx'``, ``model 'org/name'``, ``serving profile 'vllm'``) and
the field, never the file's path. Fields without a rule of their own (added later to the dataclasses) still
get the generic one: finite, and not negative when the name carries a unit (``_s``, ``_bytes``, ``_tokens``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from .errors import SpecError

INF = math.inf

#: field -> (kind, low, high, optional): ``int`` an integer in [low, high], ``pos`` a number in [low, high],
#: ``ge0`` a number in [0, high], ``frac`` a fraction in (0, 1]; ``optional`` allows null.
_HARDWARE = {
    "chips_per_node": ("int", 1, 1 << 20, False),
    "max_chips": ("int", 1, 1 << 24, True),
    "memory_bytes": ("pos", 1e6, 1e15, False),          # 1 MB .. 1 PB per chip
    "hbm_bytes_per_s": ("pos", 1e6, 1e15, False),       # .. 1 PB/s
    "scaleup_bytes_per_s": ("pos", 1e3, 1e15, False),
    "scaleup_latency_s": ("ge0", 0.0, 1.0, False),
    "scaleout_bytes_per_s": ("pos", 1e3, 1e15, True),
    "scaleout_latency_s": ("ge0", 0.0, 1.0, True),
}
_EFFICIENCY = {
    "matmul": ("frac", 0.0, 1.0, False),
    "hbm": ("frac", 0.0, 1.0, False),
    "scaleup": ("frac", 0.0, 1.0, False),
    "scaleout": ("frac", 0.0, 1.0, False),
    "matmul_half_tokens": ("ge0", 0.0, 1e9, False),
    "expert_half_tokens": ("ge0", 0.0, 1e9, False),
}
_COLLECTIVE = {
    "launch_s": ("ge0", 0.0, 1e-2, False),
    "step_s": ("ge0", 0.0, 1e-2, False),
    "bus_bytes_per_s": ("pos", 1e3, 1e15, False),
    "bandwidth_exponent": ("range", -3.0, 3.0, True),
}
_PROFILE = {
    "step_overhead_s": ("ge0", 0.0, 10.0, False),
    "sequence_overhead_s": ("ge0", 0.0, 10.0, False),
    "launch_s": ("ge0", 0.0, 1e-2, False),
    "kernel_gap_s": ("ge0", 0.0, 1e-2, False),
    "graph_fixed_share": ("ge0", 0.0, 1.0, False),
    "request_overhead_s": ("ge0", 0.0, 100.0, False),
    "prefill_interference": ("ge0", 0.0, 1e3, False),
    "ramp": ("ge0", 0.0, 1e3, False),
    "prefill_chunk_tokens": ("ge0", 0.0, 1e9, False),
    "memory_utilization": ("frac", 0.0, 1.0, False),
}
_UNITS = ("_s", "_bytes", "_per_s", "_tokens", "_gb", "_ms")


def _kind_text(kind: str, low, high) -> str:
    return {"int": f"an integer between {low} and {high}", "pos": f"a number between {low:g} and {high:g}",
            "range": f"a number between {low:g} and {high:g}",
            "ge0": f"a number between 0 and {high:g}", "frac": "a fraction in (0, 1]"}[kind]


def check_number(value: Any, where: str, kind: str = "any", low: float = -INF, high: float = INF,
                 optional: bool = False) -> None:
    """``value`` is a finite number of ``kind`` (``int``, ``pos``, ``range``, ``ge0``, ``frac`` or ``any``) in range."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        shown = f"the string {value!r}" if isinstance(value, str) else repr(value)[:40]
        want = _kind_text(kind, low, high) if kind != "any" else "a number"
        raise SpecError(f"{where} must be {want}{' or null' if optional else ''}, got {shown}")
    if not math.isfinite(value):
        raise SpecError(f"{where} must be a finite number, got {value}")
    if kind == "any":
        return
    if kind == "int" and not isinstance(value, Integral):
        raise SpecError(f"{where} must be an integer, got {value!r}")
    ok = {"int": low <= value <= high, "pos": low <= value <= high, "range": low <= value <= high,
          "ge0": 0 <= value <= high,
          "frac": 0 < value <= 1}[kind]
    if not ok:
        raise SpecError(f"{where} must be {_kind_text(kind, low, high)}, got {value!r}")


def _check_fields(data: Mapping, rules: Mapping, origin: str, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{origin}: {prefix}{key}"
        if key in rules:
            kind, low, high, optional = rules[key]
            check_number(value, where, kind, low, high, optional)
        elif isinstance(value, (bool, str)) or value is None or isinstance(value, Mapping):
            continue  # names, descriptions, sources; nested mappings are checked by their own rules
        elif isinstance(value, Real):
            check_number(value, where, "ge0" if str(key).endswith(_UNITS) else "any", high=INF)


def _check_strings(data: Mapping, keys: tuple[str, ...], origin: str) -> None:
    for key in keys:
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{origin}: {key} must be text, got {type(data[key]).__name__}")


def check_hardware(data: Any, origin: str) -> None:
    """The parsed YAML of one hardware file, before :meth:`HardwareSpec.from_dict` converts it."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{origin}: expected a mapping of fields, got {type(data).__name__}")
    _check_strings(data, ("name", "description", "chip", "architecture", "sources"), origin)
    _check_fields(data, _HARDWARE, origin)
    peaks = data.get("peak_flops_per_s")
    if isinstance(peaks, Mapping):
        for dtype, value in peaks.items():
            check_number(value, f"{origin}: peak_flops_per_s.{dtype}", "pos", 1e9, 1e18, optional=True)
    eff = data.get("efficiency")
    if isinstance(eff, Mapping):
        _check_fields(eff, _EFFICIENCY, origin, "efficiency.")
    collectives = data.get("collectives")
    if isinstance(collectives, Mapping):
        for kind, fit in collectives.items():
            if isinstance(fit, Mapping):
                _check_fields(fit, _COLLECTIVE, origin, f"collectives.{kind}.")
    if data.get("kernels") is not None:
        check_kernels(data["kernels"], origin)
    chips, most = data.get("chips_per_node"), data.get("max_chips")
    if isinstance(most, Integral) and isinstance(chips, Integral) and most < chips:
        raise SpecError(f"{origin}: max_chips ({most}) is smaller than chips_per_node ({chips})")


def check_kernels(block: Any, origin: str) -> None:
    """A hardware file's ``kernels:`` block: backend -> family -> variant -> params, each family one of
    :data:`perfkit.engine.kernels.FAMILIES`, each parameter one of its module's ``PARAMS`` and inside its
    bounds (all of them present), ``source`` text."""
    from .engine.kernels import FAMILIES

    if not isinstance(block, Mapping):
        raise SpecError(f"{origin}: kernels must be a mapping of backend -> family -> variant -> params")
    if "source" in block and not isinstance(block["source"], str):
        raise SpecError(f"{origin}: kernels.source must be text, got {type(block['source']).__name__}")
    if block.get("status", "fitted") not in ("fitted", "sourced"):
        raise SpecError(f"{origin}: kernels.status must be 'fitted' or 'sourced', got {block['status']!r}")
    for backend, families in block.items():
        if backend in ("source", "status"):
            continue
        if not isinstance(families, Mapping):
            raise SpecError(f"{origin}: kernels.{backend} must be a mapping of kernel family -> variants")
        for family, variants in families.items():
            where = f"{origin}: kernels.{backend}.{family}"
            if family not in FAMILIES:
                raise SpecError(f"{where}: unknown kernel family {family!r}; valid families: {sorted(FAMILIES)}")
            bounds = FAMILIES[family].PARAMS
            if not isinstance(variants, Mapping):
                raise SpecError(f"{where} must be a mapping of variant -> params")
            for variant, values in variants.items():
                if not isinstance(values, Mapping):
                    raise SpecError(f"{where}.{variant} must be a mapping of parameter -> number")
                unknown, missing = set(values) - set(bounds), set(bounds) - set(values)
                if unknown or missing:
                    raise SpecError(f"{where}.{variant}: " + (f"unknown parameters {sorted(unknown)}; "
                                    if unknown else "") + (f"missing parameters {sorted(missing)}; " if missing
                                    else "") + f"expected {sorted(bounds)}")
                for name, value in values.items():
                    low, high = bounds[name]
                    check_number(value, f"{where}.{variant}.{name}", "range", low, high)


def check_profile(data: Any, origin: str) -> None:
    """The parsed YAML of one serving-engine profile, before :meth:`ServingProfile.from_dict`."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{origin}: expected a mapping of fields, got {type(data).__name__}")
    _check_strings(data, ("name", "description", "source"), origin)
    _check_fields(data, _PROFILE, origin)
    band = data.get("band")
    if isinstance(band, Mapping):
        nested = {k: v for k, v in band.items() if isinstance(v, Mapping)}
        for where, values in (nested.items() if nested else [("", band)]):
            prefix = f"band.{where}." if where else "band."
            for key, value in values.items():
                check_number(value, f"{origin}: {prefix}{key}", "pos", 1e-3, 1e3)
            for figure in ("ttft", "tpot"):
                low, high = values.get(f"{figure}_p10"), values.get(f"{figure}_p90")
                if isinstance(low, Real) and isinstance(high, Real) and low > high:
                    raise SpecError(f"{origin}: {prefix}{figure}_p10 ({low}) exceeds {prefix}{figure}_p90 ({high})")


#: config.json keys perfkit reads as counts: (smallest allowed, largest allowed) when present and not null.
_CONFIG_COUNTS = {
    **dict.fromkeys(("hidden_size", "d_model", "n_embd"), (1, 1 << 20)),
    **dict.fromkeys(("num_attention_heads", "n_head"), (1, 1 << 16)),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers"), (1, 10_000)),
    "num_key_value_heads": (0, 1 << 16), "head_dim": (0, 1 << 16),
    **dict.fromkeys(("intermediate_size", "ffn_dim", "n_inner", "moe_intermediate_size"), (0, 1 << 24)),
    "vocab_size": (1, 1 << 24), "max_position_embeddings": (0, 1 << 31),
    **dict.fromkeys(("num_local_experts", "n_routed_experts", "num_experts"), (0, 1 << 16)),
    **dict.fromkeys(("num_experts_per_tok", "experts_per_token", "n_shared_experts", "num_shared_experts"),
                    (0, 1 << 16)),
    "first_k_dense_replace": (0, 10_000),
    **dict.fromkeys(("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"),
                    (0, 1 << 16)),
    "sliding_window": (0, 1 << 31),
}


def check_model_config(name: str, config: Any) -> None:
    """A ``config.json`` dict before :meth:`ModelSpec.from_config` reads it: counts are integers in range."""
    origin = f"model {name!r}"
    if not isinstance(config, Mapping):
        raise SpecError(f"{origin}: config.json must hold a JSON object, got {type(config).__name__}")
    for key, (low, high) in _CONFIG_COUNTS.items():
        if config.get(key) is not None:
            check_number(config[key], f"{origin}: config.json {key}", "int", low, high)
    for key in ("mlp_only_layers", "layer_types"):
        if config.get(key) is not None and not isinstance(config[key], list):
            raise SpecError(f"{origin}: config.json {key} must be a list, got {type(config[key]).__name__}")
    if config.get("layer_types") is not None and not all(isinstance(t, str) for t in config["layer_types"]):
        raise SpecError(f"{origin}: config.json layer_types must be a list of text")
    quant = config.get("quantization_config")
    if quant is not None and (not isinstance(quant, Mapping)
                              or not isinstance(quant.get("quant_method", ""), (str, type(None)))):
        raise SpecError(f"{origin}: config.json quantization_config must be an object with a text quant_method")
    for key in ("torch_dtype", "dtype", "model_type"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise SpecError(f"{origin}: config.json {key} must be text, got {config[key]!r}"[:200])


def check_model(spec) -> None:
    """The :class:`ModelSpec` built from a checked config: the figures agree with each other."""
    origin = f"model {spec.name!r}"
    if spec.num_heads % spec.num_kv_heads:
        raise SpecError(f"{origin}: num_attention_heads ({spec.num_heads}) is not a multiple of "
                        f"num_key_value_heads ({spec.num_kv_heads})")
    if spec.head_dim < 1 or spec.intermediate_size < 1:
        raise SpecError(f"{origin}: head_dim ({spec.head_dim}) and intermediate_size "
                        f"({spec.intermediate_size}) must be at least 1")
    if spec.num_experts and not 1 <= spec.experts_per_token <= spec.num_experts:
        raise SpecError(f"{origin}: experts per token ({spec.experts_per_token}) must be between 1 and the "
                        f"number of experts ({spec.num_experts})")
    if not 0 <= spec.num_moe_layers <= spec.num_layers:
        raise SpecError(f"{origin}: {spec.num_moe_layers} mixture-of-experts layers of {spec.num_layers}")
    for fraction, window in spec.window_fractions:
        if not (0 < fraction <= 1 and window >= 0):
            raise SpecError(f"{origin}: layer_types / sliding_window give a window share {fraction} of "
                            f"{window} tokens")
