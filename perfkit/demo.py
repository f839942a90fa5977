"""``perfkit demo``: the main job on the bundled defaults, offline.

Prints the stateless API's three example responses (the seed's requests, as the HTTP API returns them),
sweeps every tensor-parallel degree, dtype, batch and prompt length of Llama-3.1-70B on three servers, and
writes the table (``sweep.csv``), its Pareto front (``pareto.csv``) and a plot (``pareto.png``) into the
output folder.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import api, examples


def register(sub) -> None:
    p = sub.add_parser("demo", help="print the API's example responses, write a sweep table and a Pareto plot")
    p.add_argument("--out", default="out", help="folder for sweep.csv, pareto.csv and pareto.png (default: out)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .sweeps import pareto_front, sweep

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for title, body in (
        (f"GET /api/layers?model_id={examples.TINYLLAMA}", api.layers(examples.TINYLLAMA)),
        ("POST /config/layer-metrics", api.layer_metrics(examples.SEED_LAYER_REQUEST)),
        ("POST /config/system-metrics", api.system_metrics(examples.SEED_SYSTEM_REQUEST)),
    ):
        print(f"# {title}\n{json.dumps(body, indent=2)}\n")

    table = sweep(examples.SWEEP_GRID)
    table["throughput_per_chip_tokens_s"] = table["throughput_tokens_s"] / table["num_chips"]
    front = pareto_front(table)
    table.to_csv(out / "sweep.csv", index=False)
    front.to_csv(out / "pareto.csv", index=False)
    _plot(table, front, out / "pareto.png")
    valid = int(table["valid"].sum())
    print(f"# sweep: {examples.SWEEP_TITLE}")
    print(f"{len(table)} configurations, {valid} can run; {len(front)} on the Pareto front "
          "(TPOT against throughput per chip)")
    best = front.sort_values("throughput_per_chip_tokens_s", ascending=False).head(5)
    columns = ["hardware_config", "layers.all.tensor_parallel", "layers.all.dtype", "batch_size", "input_seq",
               "ttft_ms", "tpot_ms", "throughput_per_chip_tokens_s", "memory_per_chip_gb"]
    print(best[[c for c in columns if c in best.columns]].to_string(index=False, float_format="%.1f"))
    print(f"\nwrote {out / 'sweep.csv'}, {out / 'pareto.csv'} and {out / 'pareto.png'}")
    return 0


def _plot(table, front, path: Path) -> None:
    from .figures import pareto_figure, png

    fig = pareto_figure(table[table["valid"]], front, y="throughput_per_chip_tokens_s", color="num_chips",
                        marker="hardware_config", title=examples.SWEEP_TITLE)
    path.write_bytes(png(fig, dpi=110))
