"""``perfkit plan``: the best layouts of a chip budget under p99 TTFT and TPOT SLOs, and how to launch them."""
from __future__ import annotations

import sys

from .core import plan
from .launch import ENGINES

SHOWN = ["tensor_parallel", "pipeline_parallel", "expert_parallel", "attention_data_parallel", "replicas", "dtype",
         "kv_dtype",
         "max_running_sequences", "arrival_rate_qps", "requests_s_per_chip", "tokens_s_per_user",
         "load_ttft_ms_p99", "load_tpot_ms_p99", "load_bound"]


def register(sub) -> None:
    p = sub.add_parser("plan", help="layouts that meet p99 TTFT/TPOT SLOs under a Poisson load, ranked, with "
                                    "launch commands")
    p.add_argument("model_id")
    p.add_argument("hardware_config")
    p.add_argument("--chips", type=int, required=True, help="chips to deploy on (all of them are used)")
    p.add_argument("--input-seq", type=int, required=True)
    p.add_argument("--output-seq", type=int, required=True)
    p.add_argument("--ttft-p99-ms", type=float, required=True)
    p.add_argument("--tpot-p99-ms", type=float, required=True)
    p.add_argument("--serving-engine", default="generic", help="serving profile the predictions use")
    p.add_argument("--price-per-chip-hour", type=float, default=None, help="USD; adds cost per million tokens")
    p.add_argument("--input-seq-cv", type=float, default=0.0)
    p.add_argument("--output-seq-cv", type=float, default=0.0)
    p.add_argument("--top", type=int, default=10, help="layouts to print (default 10)")
    p.add_argument("--launch", choices=(*ENGINES, "all", "none"), default="all",
                   help="which launch commands to print for the best layout")
    p.add_argument("--disaggregated", action="store_true",
                   help="also search prefill/decode pool splits (P:D) and compare the best with the best "
                        "aggregated layout")
    p.add_argument("--figure", default=None, help="write the plan's charts to this PNG file (needs matplotlib)")
    p.set_defaults(func=_plan)


def _plan(args) -> int:
    result = plan(args.model_id, args.hardware_config, args.chips, args.input_seq, args.output_seq,
                  args.ttft_p99_ms, args.tpot_p99_ms, serving_engine=args.serving_engine,
                  price_per_chip_hour=args.price_per_chip_hour, input_seq_cv=args.input_seq_cv,
                  output_seq_cv=args.output_seq_cv, disaggregated=args.disaggregated)
    out = sys.stdout
    if args.disaggregated:
        _disaggregated(result, args, out)
    if result.layouts.empty:
        out.write(f"{result.reason}\n")
        if result.closest_miss:
            miss = result.closest_miss
            out.write("closest miss: " + ", ".join(f"{k}={_fmt(miss[k])}" for k in SHOWN if k in miss) + "\n")
        return 1
    shown = SHOWN + [c for c in ("usd_per_million_output_tokens",) if c in result.layouts]
    out.write(result.layouts[shown].head(args.top).to_string(float_format=lambda v: f"{v:.4g}") + "\n")
    engines = ENGINES if args.launch == "all" else () if args.launch == "none" else (args.launch,)
    for engine in engines:
        out.write(f"\n# {engine}\n{result.commands[engine]}\n")
    if args.figure:
        from ..figures import png
        from .plots import plan_figure

        title = (f"{args.model_id} on {args.chips} x {args.hardware_config}, {args.input_seq} + {args.output_seq} "
                 f"tokens, p99 TTFT <= {args.ttft_p99_ms:g} ms, p99 TPOT <= {args.tpot_p99_ms:g} ms")
        with open(args.figure, "wb") as f:
            f.write(png(plan_figure(result, title=title)))
        out.write(f"\n{args.figure}\n")
    return 0


DISAGG_SHOWN = ["prefill_chips", "decode_chips", "prefill_tensor_parallel", "prefill_expert_parallel",
                "prefill_replicas", "decode_tensor_parallel", "decode_expert_parallel", "decode_replicas", "dtype",
                "kv_dtype", "max_running_sequences", "arrival_rate_qps", "requests_s_per_chip", "tokens_s_per_user",
                "load_ttft_ms_p99", "load_tpot_ms_p99", "load_bound"]


def _disaggregated(result, args, out) -> None:
    """The comparison and the leading disaggregated layouts (before the aggregated table)."""
    if result.comparison is None or result.comparison.empty:
        out.write("no aggregated or disaggregated layout meets the SLOs\n\n")
        return
    out.write(result.comparison.T.to_string(float_format=lambda v: f"{v:.4g}") + "\n\n")
    if not result.disaggregated.empty:
        out.write("disaggregated layouts:\n")
        out.write(result.disaggregated[DISAGG_SHOWN].head(args.top).to_string(float_format=lambda v: f"{v:.4g}")
                  + "\n\naggregated layouts:\n")


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else value
