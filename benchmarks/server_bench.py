"""Benchmark of the HTTP API (not a test): requests/s and latency percentiles of ``POST /config/system-metrics``
on the default ``perfkit serve`` over loopback, driven by an external load generator (``wrk``, Debian package
``wrk``), and the in-process cost of one ``perfkit.system_metrics`` call.

    python3 benchmarks/server_bench.py [--connections 8] [--seconds 20] [--runs 2] [--uncached] [--] [serve options...]

Anything after ``--`` goes to ``perfkit serve`` (e.g. ``-- --workers 1``); without it the server runs with its
defaults (one process per core, the response cache on: wrk repeats one body, so after the warm-up every
request is a cache hit); ``--uncached`` adds the same server with ``--response-cache 0``, where every request
runs the engine, its runs alternating with the default's. Without ``wrk`` on the PATH the benchmark says so
and stops: a Python client on the same two cores measures mostly itself.

Targets (issue 13): one in-process call <= 0.25 ms; >= 2,000 requests/s at 8 connections with p99 <= 15 ms
on 2 cores. The machine's load average is printed with every figure: other work on a shared machine skews
each of them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import perfkit  # noqa: E402  (after the path, so that this checkout is measured)

# The seed's system-metrics example with a layout that divides evenly (SEED-stateless-api.md).
REQUEST = {
    "model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "hardware_config": "nvidia_gb200_single",
    "batch_size": 1, "input_seq": 2048, "output_seq": 128,
    "layers": {"attention": {"tensor_parallel": 4, "context_parallel": 2, "dtype": "bf16"},
               "feedforward": {"tensor_parallel": 8, "dtype": "bf16"},
               "norm": {"dtype": "bf16"}, "embedding": {"dtype": "bf16"}},
}

WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
done = function(summary, latency, requests)
  io.write(string.format("PERFKIT p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d status=%d\\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def in_process(repeat: int = 7, number: int = 2000) -> dict:
    """Wall-clock and CPU milliseconds of one ``perfkit.system_metrics`` call (best and median of ``repeat``
    runs of ``number`` calls): the CPU figure depends less on what else the machine runs."""
    perfkit.system_metrics(REQUEST)  # warm the catalog caches
    call = lambda: perfkit.system_metrics(REQUEST)  # noqa: E731
    wall = timeit.repeat(call, repeat=repeat, number=number)
    cpu = timeit.repeat(call, repeat=repeat, number=number, timer=time.process_time)
    ms = lambda runs, pick: round(pick(runs) / number * 1e3, 4)  # noqa: E731
    return {"best_ms": ms(wall, min), "median_ms": ms(wall, statistics.median),
            "cpu_best_ms": ms(cpu, min), "cpu_median_ms": ms(cpu, statistics.median)}


def start_server(options: list[str]) -> tuple[subprocess.Popen, str, int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_SECRET_KEY": "bench", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "perfkit.cli", "serve", "--port", "0", "--offline", *options],
                            env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "perfkit API on " in line:
            host, port = line.split("http://")[1].split("/")[0].rsplit(":", 1)
            how = line.rsplit("(", 1)[-1].rstrip(")\n")
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, host, int(port), how
    raise RuntimeError("perfkit serve did not start")


def run_wrk(url: str, connections: int, seconds: float, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=json.dumps(json.dumps(REQUEST))))
    try:
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name, url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    fields = dict(kv.split("=") for kv in re.search(r"PERFKIT (.*)", out).group(1).split())
    return {"requests": total, "requests_per_s": round(rate, 1), "p50_ms": int(fields["p50_us"]) / 1e3,
            "p90_ms": int(fields["p90_us"]) / 1e3, "p99_ms": int(fields["p99_us"]) / 1e3,
            "socket_errors": int(fields["errors"]), "non_2xx": int(fields["status"]), "command": " ".join(cmd[:-3])}


def server_cpu_s(proc: subprocess.Popen) -> float | None:
    """CPU seconds used so far by the server and its worker processes (None without psutil): a figure that
    depends little on what else the machine runs, unlike requests/s."""
    try:
        import psutil
    except ImportError:
        return None
    root = psutil.Process(proc.pid)
    return sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))


def main() -> None:
    argv = sys.argv[1:]
    serve_options = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: leave the cores to the server)")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--uncached", action="store_true",
                        help="also measure the same server with --response-cache 0, its runs alternating with "
                             "the default's (every request then runs the engine)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores; uptime: {uptime()}")
    if not args.skip_in_process:
        print(f"in-process system_metrics: {in_process()} (load average {os.getloadavg()[0]:.2f})")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk); no HTTP figure measured")
    variants = [serve_options] + ([[*serve_options, "--response-cache", "0"]] if args.uncached else [])
    servers = []
    try:
        for options in variants:
            proc, host, port, how = start_server(options)
            servers.append((options, proc, f"http://{host}:{port}/config/system-metrics", how))
            run_wrk(servers[-1][2], args.connections, 2, args.wrk_threads)  # warm-up: every worker's caches
        for i in range(args.runs):
            for options, proc, url, how in servers:
                before, cpu0 = uptime(), server_cpu_s(proc)
                result = run_wrk(url, args.connections, args.seconds, args.wrk_threads)
                if cpu0 is not None:
                    result["server_cpu_ms_per_request"] = round((server_cpu_s(proc) - cpu0) * 1e3 / result["requests"], 3)
                print(f"run {i + 1}: perfkit serve {' '.join(options) or '(defaults)'} [{how}], "
                      f"{args.connections} connections; uptime before: {before}; after: {uptime()}: "
                      f"{json.dumps(result)}")
    finally:
        for _, proc, _, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)


def uptime() -> str:
    """The machine's load as ``uptime`` prints it (the load average of the last 1, 5 and 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
