"""Frozen specifications of hardware systems and models, checked when built.

``HardwareSpec.from_dict`` takes the parsed YAML of ``hardware/<name>.yaml`` (SI units: bytes, bytes/s,
FLOP/s, seconds); ``ModelSpec.from_config`` takes a Hugging Face ``config.json`` dict. Unknown or missing
keys are errors, so a typo in a data file cannot silently become a default.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from .dtypes import COMPUTE_FALLBACK, DTYPES, PEAK_DTYPES
from .errors import SpecError


@dataclass(frozen=True)
class Efficiency:
    """How close real kernels and links get to the datasheet.

    Links carry ``scaleup``/``scaleout`` of their bandwidth; elementwise kernels stream HBM at ``hbm`` of its
    bandwidth. Layers run the kernel models of :class:`KernelModels`; for a chip whose file has no
    ``kernels:`` block the remaining figures are their priors (:func:`perfkit.engine.kernel_time.priors`): a GEMM of
    ``m`` tokens per chip reaches ``matmul * m / (m + matmul_half_tokens)`` of peak, and the grouped GEMMs of
    mixture-of-experts layers, with ``m`` rows per active expert, ``matmul * m / (m + expert_half_tokens)``.
    """

    matmul: float
    matmul_half_tokens: float
    expert_half_tokens: float
    hbm: float
    scaleup: float
    scaleout: float
    source: str = ""


@dataclass(frozen=True)
class CollectiveFit:
    """One collective inside a scale-up domain: ``launch_s + step_s x steps + bytes x volume / bus`` with
    ``bus = bus_bytes_per_s x (n / 2) ** -bandwidth_exponent`` (see ``perfkit.engine.timing.op_seconds``)."""

    launch_s: float
    step_s: float
    bus_bytes_per_s: float
    bandwidth_exponent: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> "CollectiveFit":
        names = {f.name for f in fields(cls)}
        _check_keys(data, names - {"bandwidth_exponent"}, origin, optional={"bandwidth_exponent"})
        # ranges are checked with the rest of the file at load (perfkit.catalog_checks, _COLLECTIVE)
        values = {k: float(v) for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class Collectives:
    """Collectives inside one node, per kind, fitted to measured NCCL and custom all-reduce tables by
    ``perfkit calibrate --collectives`` (``custom_allreduce``: the serving engine's own one-shot/two-shot
    kernel, ``None`` where the chip has no measured one). A hardware file without a ``collectives`` block gets
    the plain ring over its links: ``scaleup_latency_s`` per step at ``scaleup`` of the link bandwidth."""

    allreduce: CollectiveFit
    allgather: CollectiveFit
    alltoall: CollectiveFit
    custom_allreduce: CollectiveFit | None
    source: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> "Collectives":
        _check_keys(data, {"allreduce", "allgather", "alltoall", "source"}, origin, optional={"custom_allreduce"})
        custom = data.get("custom_allreduce")
        return cls(**{k: CollectiveFit.from_dict(data[k], f"{origin}: collectives.{k}")
                      for k in ("allreduce", "allgather", "alltoall")},
                   custom_allreduce=None if custom is None else CollectiveFit.from_dict(
                       custom, f"{origin}: collectives.custom_allreduce"),
                   source=str(data["source"]))

    @classmethod
    def ring(cls, latency_s: float, bytes_per_s: float) -> "Collectives":
        plain = CollectiveFit(0.0, latency_s, bytes_per_s)
        return cls(plain, plain, plain, None, "no measured table: ring over the links")


#: Where a kernel fit lacks a variant, the fits tried next, nearest first: always a wider format (or, for the
#: weight-only and block-scaled variants, the plain format they quantize), so a fallback is never faster.
KERNEL_VARIANT_FALLBACK = {
    "fp16": ("bf16",), "bf16": ("fp16",), "fp8": ("bf16", "fp16"), "fp8_block": ("fp8", "bf16", "fp16"),
    "fp4": ("fp8", "bf16", "fp16"), "int8": ("int8_wo", "fp8", "bf16", "fp16"),
    "int8_wo": ("int8", "bf16", "fp16"), "int4": ("int8_wo", "int8", "bf16", "fp16"),
}


@dataclass(frozen=True)
class KernelModels:
    """Kernel time models fitted to measured kernel tables (``perfkit calibrate --kernels``): per serving
    backend (``trtllm``, ``vllm``), per kernel family (``gemm``, ...; the closed forms of
    :mod:`perfkit.engine.kernels`), per variant (a dtype: ``bf16``, ``fp8``, ``fp8_block``, ``fp4``, ...), the
    fitted parameters. ``source`` names the tables (table, backend, version) the fit read."""

    fits: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]
    source: str
    #: ``fitted`` to this chip's own kernel tables, or ``sourced`` (a fitted chip's curve shapes at this
    #: chip's published microbenchmark levels: not kernel-calibrated, see calibration/kernels/sourced.py)
    status: str = "fitted"

    STATUSES = ("fitted", "sourced")  # and "prior": built in the engine for a file without the block

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> "KernelModels":
        if not isinstance(data, Mapping):
            raise SpecError(f"{origin}: 'kernels' must be a mapping of backend -> family -> variant -> params")
        fits = {}
        status = str(data.get("status", "fitted"))
        if status not in cls.STATUSES:
            raise SpecError(f"{origin}: kernels.status must be one of {list(cls.STATUSES)}, got {status!r}")
        for backend, families in data.items():
            if backend in ("source", "status"):
                continue
            where = f"{origin}: kernels.{backend}"
            if not isinstance(families, Mapping):
                raise SpecError(f"{where} must be a mapping of kernel family -> variant -> params")
            fits[str(backend)] = {}
            for family, variants in families.items():
                if not isinstance(variants, Mapping):
                    raise SpecError(f"{where}.{family} must be a mapping of variant -> params")
                fits[str(backend)][str(family)] = {}
                for variant, values in variants.items():
                    if not isinstance(values, Mapping):
                        raise SpecError(f"{where}.{family}.{variant} must be a mapping of parameter -> number")
                    fits[str(backend)][str(family)][str(variant)] = {str(k): float(v) for k, v in values.items()}
        return cls(fits=fits, source=str(data.get("source", "")), status=status)

    def backends(self) -> tuple[str, ...]:
        return tuple(self.fits)

    def params(self, backend: str, family: str, variant: str) -> Mapping[str, float] | None:
        """The fitted parameters of ``family`` / ``variant`` for ``backend``, with a fallback: first the exact
        variant, looked up in ``backend``, then ``trtllm``, then any other backend (in file order); then the
        variants of :data:`KERNEL_VARIANT_FALLBACK` in the same backend order. ``None`` if none fits."""
        for candidate in (variant, *KERNEL_VARIANT_FALLBACK.get(variant, ())):
            found = self.exact(backend, family, candidate)
            if found is not None:
                return found
        return None

    def exact(self, backend: str, family: str, variant: str) -> Mapping[str, float] | None:
        """The parameters of exactly ``variant``: from ``backend``, else ``trtllm``, else any other backend."""
        for b in dict.fromkeys((backend, "trtllm", *self.fits)):
            found = self.fits.get(b, {}).get(family, {}).get(variant)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class ServingProfile:
    """What a serving engine (TensorRT-LLM, vLLM, SGLang, or a generic average) adds to the kernels.

    ``kernels`` names the backend whose fitted kernel models (``kernels:`` of the hardware files) its layers
    run. ``step_overhead_s`` and ``sequence_overhead_s`` are paid per engine step (and per sequence in it);
    the GPU idles ``kernel_gap_s`` between kernels; a prefill runs eagerly and the host needs ``launch_s``
    per kernel (decode steps replay captured CUDA graphs, in which each kernel pays ``graph_fixed_share`` of
    the fixed per-call cost its microbenchmark measured), so a short prompt waits for the launches.
    Under continuous batching each decode step also carries ``prefill_interference`` of the prefill work of
    the requests that arrive meanwhile; a new request waits ``ramp`` of a whole-batch prefill (arrival
    bursts) before its own prefill, whose ``prefill_chunk_tokens``-token chunks each ride one decode step; ``request_overhead_s`` is paid once per request before its first token. The
    engine takes ``memory_utilization`` of chip memory; what weights and one chunk's activations leave of it
    holds the KV cache of the running sequences. ``band`` holds the p10 / p90 of measured / predicted TTFT and
    TPOT by the chip's kernel calibration status and the serving mode (:data:`BANDS`, from residuals: see
    :mod:`perfkit.calibration.bands`), used for uncertainty bands.
    """

    name: str
    description: str
    kernels: str
    step_overhead_s: float
    sequence_overhead_s: float
    launch_s: float
    kernel_gap_s: float
    graph_fixed_share: float
    prefill_interference: float
    ramp: float
    prefill_chunk_tokens: float
    request_overhead_s: float
    memory_utilization: float
    band: Mapping[str, Mapping[str, float]]
    source: str

    BAND_KEYS = ("ttft_p10", "ttft_p90", "tpot_p10", "tpot_p90")
    #: status_mode: ``fitted`` chips (kernel tables) or the others (``sourced``, and priors), static or continuous
    BANDS = ("fitted_continuous", "fitted_static", "sourced_continuous", "sourced_static")

    def bands(self, status: str) -> tuple[Mapping[str, float], Mapping[str, float]]:
        """The (static, continuous) bands of a chip whose kernel models are ``status``."""
        kind = "fitted" if status == "fitted" else "sourced"
        return self.band[f"{kind}_static"], self.band[f"{kind}_continuous"]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> "ServingProfile":
        data = dict(data)
        _check_keys(data, {f.name for f in fields(cls)}, origin)
        band = data["band"]
        if isinstance(band, Mapping) and set(band) == set(cls.BAND_KEYS):  # one band for every status and mode
            band = dict.fromkeys(cls.BANDS, band)
        _check_keys(band, set(cls.BANDS), origin)
        for key in cls.BANDS:
            _check_keys(band[key], set(cls.BAND_KEYS), f"{origin}: band.{key}")
        for key in ("step_overhead_s", "sequence_overhead_s", "launch_s", "kernel_gap_s", "graph_fixed_share",
                    "prefill_interference",
                    "ramp", "prefill_chunk_tokens", "request_overhead_s", "memory_utilization"):
            data[key] = float(data[key])
            if data[key] < 0:
                raise SpecError(f"{origin}: {key} must not be negative, got {data[key]}")
        data["band"] = {key: {k: float(v) for k, v in band[key].items()} for key in cls.BANDS}
        return cls(**data)


@dataclass(frozen=True)
class HardwareSpec:
    """One node (a scale-up domain of ``chips_per_node`` chips) of a hardware system, per-chip figures."""

    name: str
    description: str
    chip: str
    architecture: str
    chips_per_node: int
    max_chips: int | None
    memory_bytes: float
    hbm_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float | None]
    scaleup_bytes_per_s: float
    scaleup_latency_s: float
    scaleout_bytes_per_s: float | None
    scaleout_latency_s: float | None
    efficiency: Efficiency
    sources: str
    collectives: Collectives | None = None  # filled from the file, or the plain ring over the links
    tdp_watts: float | None = None  # one chip's board power (TDP/TGP); None where no source gives it
    kernels: KernelModels | None = None  # fitted kernel models; None for chips without measured tables

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str) -> "HardwareSpec":
        data = dict(data)
        optional = {"collectives", "tdp_watts", "kernels"}
        _check_keys(data, {f.name for f in fields(cls)} - optional, origin, optional=optional)
        eff = data["efficiency"]
        if not isinstance(eff, Mapping):
            raise SpecError(f"{origin}: 'efficiency' must be a mapping")
        _check_keys(eff, {f.name for f in fields(Efficiency)} - {"source"}, origin, optional={"source"})
        data["efficiency"] = Efficiency(**{k: (float(v) if k != "source" else str(v)) for k, v in eff.items()})
        peaks = data["peak_flops_per_s"]
        _check_keys(peaks, set(PEAK_DTYPES), origin)
        data["peak_flops_per_s"] = {k: (None if v is None else float(v)) for k, v in peaks.items()}
        for key in ("memory_bytes", "hbm_bytes_per_s", "scaleup_bytes_per_s", "scaleup_latency_s"):
            data[key] = float(data[key])
        for key in ("scaleout_bytes_per_s", "scaleout_latency_s"):
            data[key] = None if data[key] is None else float(data[key])
        data["tdp_watts"] = None if data.get("tdp_watts") is None else float(data["tdp_watts"])
        data["chips_per_node"] = int(data["chips_per_node"])
        data["max_chips"] = None if data["max_chips"] is None else int(data["max_chips"])
        if data.get("collectives") is not None:
            data["collectives"] = Collectives.from_dict(data["collectives"], origin)
        else:
            data["collectives"] = Collectives.ring(
                data["scaleup_latency_s"], data["scaleup_bytes_per_s"] * data["efficiency"].scaleup)
        data["kernels"] = None if data.get("kernels") is None else KernelModels.from_dict(data["kernels"], origin)
        spec = cls(**data)
        spec._validate(origin)
        return spec

    def _validate(self, origin: str) -> None:
        positive = {
            "chips_per_node": self.chips_per_node,
            "memory_bytes": self.memory_bytes,
            "hbm_bytes_per_s": self.hbm_bytes_per_s,
            "scaleup_bytes_per_s": self.scaleup_bytes_per_s,
        }
        for key, value in positive.items():
            if not value > 0:
                raise SpecError(f"{origin}: {key} must be positive, got {value}")
        if self.tdp_watts is not None and not self.tdp_watts > 0:
            raise SpecError(f"{origin}: tdp_watts must be positive (or null when unknown), got {self.tdp_watts}")
        if not any(v for v in self.peak_flops_per_s.values()):
            raise SpecError(f"{origin}: peak_flops_per_s lists no dtype")
        e = self.efficiency
        for key in ("matmul", "hbm", "scaleup", "scaleout"):
            if not 0 < getattr(e, key) <= 1:
                raise SpecError(f"{origin}: efficiency.{key} must be in (0, 1], got {getattr(e, key)}")

    # -- derived, used by the engine -------------------------------------------------------------------

    def compute_dtype(self, dtype: str) -> str | None:
        """The format this chip computes ``dtype`` in: the fastest of the format itself and the wider ones
        it can fall back to (``None`` if the chip publishes none of them). Kernels dequantize narrow
        weights when the chip's native path is slower (Blackwell Ultra's cut-down int8, say)."""
        candidates = [c for c in (dtype, *COMPUTE_FALLBACK[dtype]) if self.peak_flops_per_s.get(c)]
        return max(candidates, key=lambda c: self.peak_flops_per_s[c], default=None)

    @cached_property
    def peak_by_dtype(self) -> np.ndarray:
        """Peak FLOP/s for each dtype of ``DTYPES`` after fallback (NaN where the chip cannot run it)."""
        out = np.full(len(DTYPES), np.nan)
        for i, dtype in enumerate(DTYPES):
            compute = self.compute_dtype(dtype)
            if compute is not None:
                out[i] = self.peak_flops_per_s[compute]
        return out

    def summary(self) -> dict:
        """Key specs in human units, for listings."""
        return {
            "name": self.name,
            "description": self.description,
            "chip": self.chip,
            "architecture": self.architecture,
            "chips_per_node": self.chips_per_node,
            "max_chips": self.max_chips,
            "memory_gb": self.memory_bytes / 1e9,
            "hbm_tb_s": self.hbm_bytes_per_s / 1e12,
            "peak_tflops": {k: (v / 1e12 if v else None) for k, v in self.peak_flops_per_s.items()},
            "scaleup_gb_s": self.scaleup_bytes_per_s / 1e9,
            "scaleout_gb_s": None if self.scaleout_bytes_per_s is None else self.scaleout_bytes_per_s / 1e9,
            "tdp_watts": self.tdp_watts,
        }


def _check_keys(data: Mapping, required: set, origin: str, optional: set = frozenset()) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(f"{origin}: expected a mapping with keys {sorted(required | set(optional))}, "
                        f"got {type(data).__name__}")
    keys = set(data)
    unknown = keys - required - set(optional)
    missing = required - keys
    if unknown:
        raise SpecError(f"{origin}: unknown keys {sorted(unknown)}; expected {sorted(required | set(optional))}")
    if missing:
        raise SpecError(f"{origin}: missing keys {sorted(missing)}")


@dataclass(frozen=True)
class ModelSpec:
    """The architecture figures the engine needs, read from a Hugging Face ``config.json``.

    Attention is either grouped-query (``num_key_value_heads`` heads of ``head_dim``) or, for DeepSeek,
    multi-head latent attention (``kv_lora_rank`` + ``qk_rope_head_dim`` cached per token, shared by all
    heads). The feed-forward of ``num_moe_layers`` of the layers is a mixture of ``num_experts`` experts
    (``experts_per_token`` routed per token, plus ``num_shared_experts``); the rest are dense.
    ``window_fractions`` pairs the fraction of layers with their attention window (0 = full attention).
    """

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    native_dtype: str
    # mixture of experts
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    num_moe_layers: int = 0
    # multi-head latent attention (DeepSeek)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    window_fractions: tuple[tuple[float, int], ...] = ((1.0, 0),)
    weight_quantization: str | None = None
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    def default_dtype(self, layer_type: str) -> str:
        """The dtype a layer type ships in: the checkpoint's quantization where it has one
        (DeepSeek's fp8 linear layers, gpt-oss's MXFP4 experts), else ``torch_dtype``."""
        quantized = {"fp8": ("attention", "feedforward"), "mxfp4": ("feedforward",)}
        layers = quantized.get(self.weight_quantization or "", ())
        if layer_type in layers:
            return "fp8" if self.weight_quantization == "fp8" else "fp4"
        return self.native_dtype

    def summary(self) -> dict:
        """Key figures of the model, for listings."""
        return {
            "id": self.name,
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads,
            "max_position_embeddings": self.max_position_embeddings,
            "native_dtype": self.native_dtype,
            "num_experts": self.num_experts,
        }

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> "ModelSpec":
        """Build a spec from a ``config.json`` dict; a missing architecture field is a :class:`SpecError`."""

        def need(key: str, *alternatives: str):
            for k in (key, *alternatives):
                if config.get(k) is not None:
                    return config[k]
            raise SpecError(f"model {name!r}: config.json lacks {key!r}, which perfkit needs")

        hidden = int(need("hidden_size", "d_model", "n_embd"))
        heads = int(need("num_attention_heads", "n_head"))
        layers = int(need("num_hidden_layers", "n_layer", "num_layers"))
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        num_experts = int(config.get("num_local_experts") or config.get("n_routed_experts")
                          or config.get("num_experts") or 0)
        experts_per_token = int(config.get("num_experts_per_tok") or config.get("experts_per_token") or 0)
        moe_inter = int(config.get("moe_intermediate_size") or config.get("intermediate_size") or 0)
        first_dense = int(config.get("first_k_dense_replace") or 0)
        dense_layers = set(config.get("mlp_only_layers") or [])
        num_moe = 0
        if num_experts:
            num_moe = layers - max(first_dense, len(dense_layers))
        quant = config.get("quantization_config") or {}
        return cls(
            name=name,
            model_type=str(config.get("model_type", "unknown")),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=int(need("intermediate_size", "ffn_dim", "n_inner")),
            vocab_size=int(need("vocab_size")),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings") or 0),
            native_dtype=_native_dtype(config),
            num_experts=num_experts,
            experts_per_token=experts_per_token,
            num_shared_experts=int(config.get("n_shared_experts") or config.get("num_shared_experts") or 0),
            moe_intermediate_size=moe_inter if num_experts else 0,
            num_moe_layers=num_moe,
            q_lora_rank=int(config.get("q_lora_rank") or 0),
            kv_lora_rank=int(config.get("kv_lora_rank") or 0),
            qk_rope_head_dim=int(config.get("qk_rope_head_dim") or 0),
            qk_nope_head_dim=int(config.get("qk_nope_head_dim") or 0),
            v_head_dim=int(config.get("v_head_dim") or 0),
            window_fractions=_window_fractions(config, layers),
            weight_quantization=quant.get("quant_method"),
        )


def _native_dtype(config: Mapping) -> str:
    torch_dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(torch_dtype, "bf16")


def _window_fractions(config: Mapping, layers: int) -> tuple[tuple[float, int], ...]:
    """Fractions of layers by attention window (0 = full attention)."""
    window = config.get("sliding_window")
    if not window or config.get("use_sliding_window") is False:
        return ((1.0, 0),)
    types = config.get("layer_types")
    if types:
        sliding = sum(1 for t in types if t == "sliding_attention")
        return tuple((n / layers, w) for n, w in ((layers - sliding, 0), (sliding, int(window))) if n)
    return ((1.0, int(window)),)


@dataclass(frozen=True)
class TransferProfile:
    """What a disaggregated deployment of one serving engine adds to the two pools
    (:mod:`perfkit.engine.disagg`; ``perfkit/serving/disagg/<engine>.yaml``, fitted by
    :func:`perfkit.calibration.disagg.fit_transfer` on the ``mode=disagg`` points with the agg profile frozen)."""

    name: str
    kv_transfer_overhead_s: float  # per request: connector handshake, block tables, scheduling on both sides
    kv_transfer_efficiency: float  # share of the link's bandwidth a KV transfer reaches
    prefill_queue_scale: float  # share of the running prefill pass a request arriving at the pool waits for
    prefill_pass_scale: float  # a prefill worker's pass over the aggregated engine's (max-token limits, no overlap)
    decode_step_scale: float  # a decode worker's step over the aggregated engine's (speculative decoding, kernels)
    prefill_max_tokens: float  # prompt tokens a prefill worker packs into one pass when requests queue
    source: str
