"""A configuration that does not fit says so in ``system.notes``: "does not fit: X GB per chip > Y GB", and the
smallest chip count of its layout family (tensor parallelism or pipeline stages doubled) that fits (issue 12)."""
from __future__ import annotations

import re

import pytest

import perfkit
from perfkit import examples

LLAMA_70B = "meta-llama/Llama-3.1-70B"


def system(model_id=LLAMA_70B, hardware="nvidia_h100_hgx", tp=1, pp=1, batch=8, isl=1024, osl=128, **extra):
    return {"model_id": model_id, "hardware_config": hardware, "batch_size": batch, "input_seq": isl,
            "output_seq": osl, "layers": examples.tensor_parallel(tp), "pipeline_parallel": pp, **extra}


def fits(request) -> bool:
    try:
        return perfkit.system_metrics(request)["system"]["fits_on_hardware"]
    except perfkit.PerfkitError:  # a layout that cannot run fits nowhere
        return False


@pytest.mark.parametrize("request_", [
    system(),                                                  # 70B bf16 on one H100: ~145 GB
    system(tp=2, batch=32, isl=4096, osl=512),                 # the README's TP2 variant
    system(model_id="Qwen/Qwen3-32B", hardware="nvidia_l40s_server", batch=16),
    system(pp=2, batch=64, isl=8192),
])
def test_the_note_names_the_figures_and_the_smallest_layout_that_fits(request_):
    body = perfkit.system_metrics(request_)
    assert body["system"]["fits_on_hardware"] is False
    note = body["system"]["notes"][0]
    memory = body["memory"]
    head = (f"does not fit: {memory['memory_per_chip_gb']:.1f} GB per chip > {memory['hw_capacity_gb']:.1f} GB")
    assert note.startswith(head), note
    tp_found = re.search(r"tensor_parallel x(\d+)", note)
    pp_found = re.search(r"pipeline_parallel (\d+) -> (\d+)", note)
    chips = int(re.search(r"(\d+) chips at", note).group(1))
    tp, pp = request_["layers"]["attention"]["tensor_parallel"], request_["pipeline_parallel"]
    if tp_found:
        k = int(tp_found.group(1))
        suggested = {**request_, "layers": examples.tensor_parallel(tp * k)}
        smaller = {**request_, "layers": examples.tensor_parallel(tp * k // 2)}
        # the pipeline family would need more chips (or does not fit either) at every smaller size
        assert not any(fits({**request_, "pipeline_parallel": pp * m}) for m in (2, 4, 8) if m < k)
    else:
        stages = int(pp_found.group(2))
        suggested, smaller = {**request_, "pipeline_parallel": stages}, {**request_, "pipeline_parallel": stages // 2}
    answer = perfkit.system_metrics(suggested)
    assert answer["system"]["fits_on_hardware"] and answer["system"]["num_chips"] == chips
    assert smaller == request_ or not fits(smaller)  # the smallest of the family


def test_a_configuration_nothing_rescues_says_so():
    note = perfkit.system_metrics(system(model_id="meta-llama/Llama-3.1-405B", batch=256, isl=32768))["system"]["notes"][0]
    assert note.startswith("does not fit:") and "no doubling of its tensor parallelism or pipeline stages" in note


def test_a_configuration_that_fits_has_no_such_note():
    assert not any(n.startswith("does not fit") for n in perfkit.system_metrics(system(tp=4))["system"]["notes"])
