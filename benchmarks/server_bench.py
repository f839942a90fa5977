"""Benchmark of the HTTP API (not a test): requests/s and p50/p99 latency of ``POST /config/system-metrics``
on ``perfkit serve`` over loopback with concurrent keep-alive clients, and the in-process cost of one
``perfkit.system_metrics`` call.

    python3 benchmarks/server_bench.py [--clients 8] [--seconds 10] [--threads 8] [--workers 1]

Targets (issue 3): >= 1,000 requests/s on a 2-core machine, p99 <= 20 ms, one in-process call <= 0.5 ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
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


def in_process(repeat: int = 7, number: int = 2000) -> dict:
    perfkit.system_metrics(REQUEST)  # warm the catalog caches
    runs = timeit.repeat(lambda: perfkit.system_metrics(REQUEST), repeat=repeat, number=number)
    return {"best_ms": min(runs) / number * 1e3, "median_ms": statistics.median(runs) / number * 1e3}


def start_server(threads: int, workers: int = 1) -> tuple[subprocess.Popen, str, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_SECRET_KEY": "bench", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "perfkit.cli", "serve", "--port", "0", "--threads",
                             str(threads), "--workers", str(workers)], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "perfkit API on " in line:
            host, port = line.split("http://")[1].split("/")[0].rsplit(":", 1)
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, host, int(port)
    raise RuntimeError("perfkit serve did not start")


def client(host: str, port: int, body: bytes, stop: float, latencies: list, errors: list) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        conn.request("POST", "/config/system-metrics", body, headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            errors.append(response.status)
    conn.close()


def server_cpu_s(proc: subprocess.Popen) -> float | None:
    """CPU seconds used so far by the server and its worker processes (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    root = psutil.Process(proc.pid)
    total = 0.0
    for p in (root, *root.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def load(host: str, port: int, clients: int, seconds: float, proc: subprocess.Popen | None = None) -> dict:
    body = json.dumps(REQUEST).encode()
    lists = [[] for _ in range(clients)]
    errors: list = []
    client(host, port, body, time.perf_counter() + 1.0, [], errors)  # warm-up
    cpu0 = server_cpu_s(proc) if proc else None
    stop = time.perf_counter() + seconds
    t0 = time.perf_counter()
    workers = [threading.Thread(target=client, args=(host, port, body, stop, lst, errors)) for lst in lists]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    lat = sorted(x for lst in lists for x in lst)
    out = {"requests": len(lat), "errors": len(errors), "requests_per_s": len(lat) / elapsed,
           "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3}
    if cpu0 is not None:  # CPU per request hardly depends on what else the machine runs
        out["server_cpu_ms_per_request"] = (server_cpu_s(proc) - cpu0) * 1e3 / len(lat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="threads per server process")
    parser.add_argument("--workers", type=int, default=1, help="server processes (1: waitress, more: gunicorn)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure below
    print(f"in-process system_metrics: {in_process()}")
    proc, host, port = start_server(args.threads, args.workers)
    try:
        result = load(host, port, args.clients, args.seconds, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"HTTP, {args.clients} clients, {args.workers} worker(s) x {args.threads} threads, {os.cpu_count()} cores, "
          f"load average before {load_before:.1f}: {result}")


if __name__ == "__main__":
    main()
