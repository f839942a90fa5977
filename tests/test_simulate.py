"""The event-driven simulator against the analytic open-loop figures, and its own bookkeeping.

The analytic form (perfkit.engine.load) should match the simulated p50 and p99 of TTFT and TPOT within 15%
up to 85% of capacity (benchmarks/RESULTS.md shows the full table); both price steps with the same engine.
"""
from __future__ import annotations

import numpy as np
import pytest

import perfkit
from perfkit.errors import PerfkitError
from perfkit.simulate.core import summary

CASES = {
    "prefill-bound": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                      "batch_size": 128, "input_seq": 2048, "output_seq": 128, "serving_mode": "continuous"},
    "kv-bound": {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx",
                 "batch_size": 512, "input_seq": 512, "output_seq": 2048, "serving_mode": "continuous"},
}
KEYS = ("ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99")


@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_matches_simulation(case):
    base = CASES[case]
    capacity = perfkit.system_metrics({**base, "arrival_rate_qps": 1.0})["load"]["capacity_qps"]
    for u in (0.1, 0.5, 0.85):
        request = {**base, "arrival_rate_qps": u * capacity}
        analytic = perfkit.system_metrics(request)["load"]
        simulated = summary(perfkit.simulate(request, n_requests=20000, seed=3))
        for key in KEYS:
            assert analytic[key] == pytest.approx(simulated[key], rel=0.15), (case, u, key)


def test_simulated_littles_law_and_rate():
    base = CASES["prefill-bound"]
    df = perfkit.simulate({**base, "arrival_rate_qps": 5.0}, n_requests=5000, seed=1)
    attrs = df.attrs
    # over a run that starts and ends empty, time-averaged occupancy = rate x mean time in a slot
    assert attrs["mean_running_sequences"] == pytest.approx(
        attrs["achieved_requests_s"] * df["slot_ms"].mean() / 1e3, rel=1e-6)
    assert attrs["achieved_requests_s"] == pytest.approx(5.0, rel=0.05)
    assert (df["ttft_ms"] <= df["e2e_ms"]).all() and (df["tpot_ms"] > 0).all()


def test_simulation_is_reproducible_and_lengths_spread():
    request = {**CASES["prefill-bound"], "arrival_rate_qps": 3.0, "input_seq_cv": 0.5, "output_seq_cv": 0.5}
    a = perfkit.simulate(request, n_requests=500, seed=7)
    b = perfkit.simulate(request, n_requests=500, seed=7)
    assert a.equals(b)
    assert a["input_seq"].std() / a["input_seq"].mean() == pytest.approx(0.5, rel=0.2)
    assert (a["output_seq"] >= 1).all()


@pytest.mark.parametrize("kwargs, field", [
    ({"n_requests": 0}, "n_requests"), ({"n_requests": 10**7}, "n_requests"), ({"n_requests": 2.5}, "n_requests"),
    ({"seed": -1}, "seed"),
])
def test_bad_simulation_sizes(kwargs, field):
    with pytest.raises(PerfkitError, match=field) as info:
        perfkit.simulate({**CASES["prefill-bound"], "arrival_rate_qps": 1.0}, **kwargs)
    assert info.value.field == field


def test_simulation_needs_a_rate():
    with pytest.raises(PerfkitError, match="arrival_rate_qps"):
        perfkit.simulate(CASES["prefill-bound"])


def test_too_many_prompt_steps_is_refused():
    request = {**CASES["prefill-bound"], "input_seq": 1 << 20, "batch_size": 1, "arrival_rate_qps": 0.001}
    with pytest.raises(PerfkitError, match="prompt steps") as info:
        perfkit.simulate(request, n_requests=100_000)
    assert info.value.field == "n_requests"


def test_simulating_replicas_is_one_replica_at_its_share():
    base = {**CASES["prefill-bound"], "arrival_rate_qps": 6.0}
    two = perfkit.simulate({**base, "replicas": 2, "batch_size": 256}, n_requests=2000, seed=5)
    one = perfkit.simulate({**base, "arrival_rate_qps": 3.0}, n_requests=2000, seed=5)
    assert two.attrs["rate_qps"] == pytest.approx(3.0)
    assert np.allclose(two["ttft_ms"], one["ttft_ms"]) and np.allclose(two["tpot_ms"], one["tpot_ms"])
