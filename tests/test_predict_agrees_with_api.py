"""The calibration predictor and ``perfkit.system_metrics`` read a measured point the same way (issue 12: notebook
04 printed ``system_metrics == calibration predictor: False``, TPOT off by 12.5% on H200 vLLM/SGLang fp8 rows,
because the notebook built its own request with a different KV-cache dtype)."""
from __future__ import annotations

import numpy as np
import pytest

import perfkit
from perfkit.api import rounded
from perfkit.calibration import measurements, predict

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def sample():
    measured = measurements.load()
    points = measured.join(predict.predict(measured))
    agg = points[(points["mode"] == "agg") & points["valid"].astype(bool)]
    # one row of every (model, system, engine, dtype) cell: dense and MoE, attention DP, pipeline stages, fp8/fp4
    return agg.groupby(["model_id", "system", "backend", "gemm_dtype"]).head(2)


def test_the_sample_covers_the_rows_that_disagreed(sample):
    h200 = sample[(sample["system"] == "h200_sxm") & (sample["gemm_dtype"] == "fp8")]
    assert {"vllm", "sglang"} <= set(h200["backend"])
    assert len(sample) >= 60 and sample["model_id"].nunique() >= 5
    assert (sample["decode_attn_dp"] > 1).any() and (sample["decode_moe_ep"] > 1).any()


def test_system_metrics_answers_what_the_predictor_says(sample):
    bodies = predict.requests(sample)
    assert len(bodies) == len(sample)
    for (label, row), body in zip(sample.iterrows(), bodies):
        answer = perfkit.system_metrics(body)
        # the API carries perfkit.api.SIGNIFICANT_DIGITS; the predictor's DataFrame every bit. The predictor
        # evaluates arrays, the API scalars: numpy's vectorized pow (the kernel models' p-norms) and its scalar
        # pow may differ in the last bit, so the two agree to 1e-12, far inside any reading difference (the bug
        # this guards against was 12.5%)
        assert answer["ttft_ms"] == pytest.approx(rounded(row["predicted_ttft_ms"]), rel=1e-12), (label, body)
        assert answer["tpot_ms"] == pytest.approx(rounded(row["predicted_tpot_ms"]), rel=1e-12), (label, body)


def test_engine_arrays_are_the_requests_encoding(sample):
    from perfkit import catalog
    from perfkit.inputs import system_config, to_arrays

    rows = sample[sample["model_id"] == sample["model_id"].iloc[0]]
    model = catalog.model_spec(rows["model_id"].iloc[0])
    cfg = predict.side_config(rows, "decode", model, rows["decode_batch"].to_numpy(float))
    for j, body in enumerate(predict.requests(rows)):
        one = to_arrays(system_config(body))
        for key, values in cfg.items():
            assert np.asarray(values)[j] == one[key], key


def test_only_agg_rows_are_one_request():
    measured = measurements.load()
    with pytest.raises(ValueError, match="disagg"):
        predict.requests(measured[measured["mode"] == "disagg"].head(1))
