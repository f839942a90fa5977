"""Parallel layouts behave like real deployments: replicated work is split, expert-parallel traffic is shared by
the tensor-parallel ranks, pipelines keep micro-batches in flight, collectives cost what NCCL and the serving
engines' custom kernels measure. These pin the physics (orderings and equalities), not calibrated numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

import perfkit
from perfkit import catalog
from perfkit.calibration import collectives
from perfkit.engine import costs, layout
from perfkit.engine.costs import Collective, Pass
from perfkit.engine.timing import collective_seconds, op_seconds
from perfkit.inputs import system_config, to_arrays

LLAMA8, LLAMA70, LLAMA405 = "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-405B"
QWEN235, DEEPSEEK = "Qwen/Qwen3-235B-A22B", "deepseek-ai/DeepSeek-V3"
TABLE_SYSTEMS = sorted({n for names in collectives.CATALOG.values() for n in names})


def system(model_id, hardware="nvidia_h200_hgx", batch_size=1, input_seq=1024, output_seq=128, **extra):
    return perfkit.system_metrics({"model_id": model_id, "hardware_config": hardware, "batch_size": batch_size,
                                   "input_seq": input_seq, "output_seq": output_seq, **extra})


def tp(t, **more):
    return {"attention": {"tensor_parallel": t}, "feedforward": {"tensor_parallel": t, **more},
            "embedding": {"tensor_parallel": t}}


def cfg_of(request):
    return to_arrays(system_config(request))


# -- 1. a replicated layer splits the tokens between its copies ----------------------------------------------


@pytest.mark.parametrize("mode", ["static", "continuous"])
@pytest.mark.parametrize("n", [2, 8])
def test_attention_data_parallel_of_a_tp1_layout_is_n_replicas(n, mode):
    """Attention DP n beside a TP-1 feed-forward: every layer is on one chip, replicated n times, so the
    deployment runs as n replicas of TP 1 at batch B / n each (no collective is left at TP 1)."""
    b = 64
    dp = system(LLAMA8, "nvidia_h100_hgx", b, 2048, 256, serving_mode=mode,
                layers={"attention": {"data_parallel": n}})
    one = system(LLAMA8, "nvidia_h100_hgx", b // n, 2048, 256, serving_mode=mode)
    assert dp["system"]["num_chips"] == n
    assert dp["ttft_ms"] == pytest.approx(one["ttft_ms"], rel=1e-9)
    assert dp["tpot_ms"] == pytest.approx(one["tpot_ms"], rel=1e-9)
    assert dp["throughput_tokens_s"] == pytest.approx(n * one["throughput_tokens_s"], rel=1e-9)


def test_deepseek_dense_layers_and_shared_experts_split_their_tokens_over_expert_parallel_ranks():
    """DeepSeek's three dense feed-forwards, its shared expert and router are whole on every expert-parallel
    rank beside attention DP 8: each rank runs them on its eighth of the tokens, not on the whole batch."""
    model = catalog.model_spec(DEEPSEEK)
    p = Pass(np.float64(256), np.float64(1), np.float64(2048), np.float64(2048), prefill=False)

    def dense_flops(layers):
        cfg = cfg_of({"model_id": DEEPSEEK, "hardware_config": "nvidia_h200_hgx", "batch_size": 256,
                      "input_seq": 2048, "output_seq": 128, "layers": layers})
        cost = costs.feedforward(model, cfg, p)
        return float(cost.flops - cost.expert_flops)  # dense layers, shared experts and the router

    one_chip = dense_flops({})
    wide = dense_flops({"attention": {"data_parallel": 8}, "feedforward": {"expert_parallel": 8}})
    split = dense_flops({"attention": {"data_parallel": 8}, "feedforward": {"sequence_parallel": 8}})
    assert wide == pytest.approx(one_chip / 8, rel=1e-6) and split == pytest.approx(one_chip / 8, rel=1e-6)


def test_replicas_are_whole_copies_of_the_layout():
    """replicas: chips and totals multiply, latency is that of one replica at its share of the batch."""
    four = system(LLAMA70, batch_size=64, input_seq=2048, output_seq=256, layers=tp(2), replicas=4)
    one = system(LLAMA70, batch_size=16, input_seq=2048, output_seq=256, layers=tp(2))
    assert four["system"]["num_chips"] == 4 * one["system"]["num_chips"] == 8
    assert four["ttft_ms"] == pytest.approx(one["ttft_ms"]) and four["tpot_ms"] == pytest.approx(one["tpot_ms"])
    assert four["throughput_tokens_s"] == pytest.approx(4 * one["throughput_tokens_s"])
    assert four["memory"]["memory_per_chip_gb"] == pytest.approx(one["memory"]["memory_per_chip_gb"])
    for key in ("weight_memory_gb", "kv_cache_gb", "total_memory_gb"):
        assert four["memory"][key] == pytest.approx(4 * one["memory"][key])
    assert any("replica" in note for note in four["system"]["notes"])


def test_replicas_of_a_layout_without_scale_out_may_fill_several_nodes():
    """Replicas never talk to each other: two TP-4 copies on 4-GPU trays need no scale-out network."""
    r = system(LLAMA8, "nvidia_gb200_single", batch_size=8, layers=tp(4), replicas=2)
    assert r["system"]["num_chips"] == 8 and r["system"]["num_nodes"] == 2


def test_more_replicas_than_the_hardware_allows_is_an_error_naming_the_field():
    hw = catalog.hardware_spec("google_tpu_v5e_pod")
    with pytest.raises(perfkit.PerfkitError, match=f"at most {hw.max_chips}"):
        system(LLAMA8, "google_tpu_v5e_pod", batch_size=8, layers=tp(8), replicas=hw.max_chips)


# -- 2. expert-parallel all-to-all shares the exchange among the tensor-parallel ranks ----------------------


def _alltoall(model_id, t, e, batch=64):
    model = catalog.model_spec(model_id)
    cfg = cfg_of({"model_id": model_id, "hardware_config": "nvidia_h200_hgx", "batch_size": batch,
                  "input_seq": 1024, "output_seq": 128,
                  "layers": {"attention": {"tensor_parallel": t, "data_parallel": e},
                             "feedforward": {"tensor_parallel": t, "expert_parallel": e}}})
    p = Pass(np.float64(batch), np.float64(1024), np.float64(1024), np.float64(1024), prefill=True)
    [a2a] = [c for c in costs.feedforward(model, cfg, p).collectives if c.kind == "alltoall"]
    return a2a


@pytest.mark.parametrize("t", [2, 4])
def test_feedforward_tp_t_moves_one_t_th_of_the_all_to_all_bytes_per_chip(t):
    assert float(_alltoall(QWEN235, t, 2).bytes) == pytest.approx(float(_alltoall(QWEN235, 1, 2).bytes) / t)


def test_two_node_expert_parallel_prices_only_what_leaves_the_node():
    """Qwen3-235B TP 8 x EP 2 on two HGX nodes: half of the dispatch crosses the NICs, shared by the 8 TP ranks
    of each token, so the first token is not several times slower than TP 8 on one node."""
    hw = catalog.hardware_spec("nvidia_h200_hgx")
    a2a = _alltoall(QWEN235, 8, 2)
    crossing = collective_seconds(hw, a2a)
    all_scaleout = a2a.bytes / (hw.scaleout_bytes_per_s * hw.efficiency.scaleout)  # the whole buffer on NICs
    assert crossing < all_scaleout
    wide = system(QWEN235, batch_size=8, input_seq=2048, layers={
        "attention": {"tensor_parallel": 8, "data_parallel": 2},
        "feedforward": {"tensor_parallel": 8, "expert_parallel": 2}, "embedding": {"tensor_parallel": 8}})
    single = system(QWEN235, batch_size=8, input_seq=2048, layers=tp(8))
    assert wide["system"]["num_nodes"] == 2
    assert wide["ttft_ms"] < 1.5 * single["ttft_ms"]


# -- 3. pipeline parallel keeps micro-batches in flight ------------------------------------------------------


@pytest.mark.parametrize("mode", ["static", "continuous"])
@pytest.mark.parametrize("batch", [8, 64])
def test_pipeline_raises_throughput_over_its_first_stage_alone(batch, mode):
    """TP 4 x PP 2 on 8 chips serves the same sequences faster than TP 4 on 4 chips: two stages work at once."""
    piped = system(LLAMA70, batch_size=batch, input_seq=2048, output_seq=256, layers=tp(4), pipeline_parallel=2,
                   serving_mode=mode)
    alone = system(LLAMA70, batch_size=batch, input_seq=2048, output_seq=256, layers=tp(4), serving_mode=mode)
    assert piped["system"]["num_chips"] == 8
    assert piped["throughput_tokens_s"] > alone["throughput_tokens_s"]


def test_pipeline_per_token_latency_is_above_tensor_parallel_over_the_same_chips():
    """At batch 1 a pipeline has one micro-batch: each token crosses both stages in turn (the bubble)."""
    piped = system(LLAMA70, batch_size=1, layers=tp(4), pipeline_parallel=2)
    wide = system(LLAMA70, batch_size=1, layers=tp(8))
    assert piped["tpot_ms"] > wide["tpot_ms"]


def test_pipeline_stage_hand_offs_add_latency():
    """With one sequence, a pipeline of pp stages is the whole model in turn plus pp - 1 hand-offs."""
    piped = system(LLAMA8, batch_size=1, pipeline_parallel=4, layers={"attention": {"tensor_parallel": 2},
                                                                    "feedforward": {"tensor_parallel": 2},
                                                                    "embedding": {"tensor_parallel": 2}})
    flat = system(LLAMA8, batch_size=1, layers=tp(2))
    assert piped["tpot_ms"] > flat["tpot_ms"] and piped["ttft_ms"] > flat["ttft_ms"]


def test_pipeline_splits_memory_per_chip_but_holds_the_whole_batch():
    piped = system(LLAMA70, batch_size=32, input_seq=4096, layers=tp(4), pipeline_parallel=2)
    alone = system(LLAMA70, batch_size=32, input_seq=4096, layers=tp(4))
    assert piped["memory"]["kv_cache_gb"] == pytest.approx(alone["memory"]["kv_cache_gb"])
    assert piped["memory"]["memory_per_chip_gb"] < alone["memory"]["memory_per_chip_gb"]


# -- 4. collectives as NCCL and the custom all-reduce run them ---------------------------------------------


@pytest.mark.parametrize("hardware", [h for h in TABLE_SYSTEMS if h != "nvidia_l40s_server"])  # NVLink systems
def test_small_all_reduce_beats_the_ring_at_every_group_size(hardware):
    """A 16 KiB decode all-reduce runs the engine's one-shot kernel over NVLink: cheaper than NCCL's ring
    (launch + 2(n-1) steps, as fitted to nccl_perf) at every n of the node, and it grows less from 2 to 8."""
    hw = catalog.hardware_spec(hardware)
    nbytes = np.float64(16384)
    sizes = range(2, min(hw.chips_per_node, 72) + 1)
    small = [float(collective_seconds(hw, Collective("allreduce", nbytes, np.float64(n), np.float64(n))))
             for n in sizes]
    ring = [float(op_seconds(hw.collectives.allreduce, "allreduce", np.float64(n), nbytes)) for n in sizes]
    assert all(s < r for s, r in zip(small, ring))
    assert small[-1] - small[0] < ring[-1] - ring[0]


@pytest.mark.parametrize("hardware", ["nvidia_h100_hgx", "nvidia_h200_hgx", "nvidia_b200_hgx"])
@pytest.mark.parametrize("nbytes", [16384, 1 << 20])
def test_two_nodes_cost_more_than_one_but_less_than_the_ring_steps_imply(hardware, nbytes):
    hw = catalog.hardware_spec(hardware)

    def allreduce(n):
        return float(collective_seconds(hw, Collective("allreduce", np.float64(nbytes), np.float64(n),
                                                       np.float64(n))))

    one_node, two_nodes = allreduce(8), allreduce(16)
    ring = 2 * 15 * hw.scaleout_latency_s  # 2(n-1) steps of the scale-out latency
    assert one_node < two_nodes < ring + nbytes * 2 * 15 / 16 / (hw.scaleout_bytes_per_s * hw.efficiency.scaleout)


def test_two_node_tensor_parallel_decode_is_not_slower_than_one_node():
    """Llama-3.1-405B: TP 16 over two nodes reads half the weights per chip; its small all-reduces cross the
    NICs in a log-depth tree, which must not outweigh that (it did with 2(n-1) ring steps)."""
    assert system(LLAMA405, batch_size=1, layers=tp(16))["tpot_ms"] < system(LLAMA405, batch_size=1,
                                                                           layers=tp(8))["tpot_ms"]


@pytest.mark.parametrize("system_dir", ["h200_sxm", "b200_sxm"])
def test_shipped_collectives_reproduce_from_the_tables(system_dir):
    """``perfkit calibrate --collectives`` refits the shipped blocks, and the closed form follows the tables."""
    folder = collectives.default_dir() / system_dir
    assert folder.is_dir(), f"kernel tables missing: {folder} (CI lays shared/ beside the clone)"
    block = collectives.fit_system(folder)
    shipped = catalog.hardware_spec(collectives.CATALOG[system_dir][0]).collectives
    for kind in ("allreduce", "allgather", "alltoall", "custom_allreduce"):
        ours, theirs = block[kind], getattr(shipped, kind)
        assert ours.launch_s == pytest.approx(theirs.launch_s, rel=1e-3)
        assert ours.bus_bytes_per_s == pytest.approx(theirs.bus_bytes_per_s, rel=1e-3)
    errors = collectives.errors(folder, block).groupby("kernel")["error_pct"].median()
    assert (errors < 20).all(), errors


def test_chips_without_tables_keep_the_ring_over_their_links():
    hw = catalog.hardware_spec("amd_mi300x_platform")
    assert hw.collectives.custom_allreduce is None
    n, nbytes = np.float64(8), np.float64(1 << 20)
    expected = 2 * 7 * hw.scaleup_latency_s + nbytes * 2 * 7 / 8 / (hw.scaleup_bytes_per_s * hw.efficiency.scaleup)
    assert collective_seconds(hw, Collective("allreduce", nbytes, n, n)) == pytest.approx(expected)
    assert op_seconds(hw.collectives.allreduce, "allreduce", n, nbytes) == pytest.approx(expected)


def test_layers_response_documents_replicas_and_pipeline():
    body = perfkit.layers(LLAMA8)
    assert {"replicas", "pipeline_parallel"} <= set(body["deployment"])
    assert layout.LAYER_TYPES == tuple(entry["type"] for entry in body["layers"])
