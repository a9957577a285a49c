"""Precision selection and the bfloat16 clone of a model."""

from __future__ import annotations

import numpy as np
import pytest

from satseg.inference.engine import as_predictor, cpu_has_bf16, resolve_precision, to_mixed_bfloat16


def test_auto_precision_follows_the_cpu_and_can_be_turned_off() -> None:
    assert resolve_precision("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4")


def test_bf16_clone_keeps_weights_and_a_float32_output(roof_model) -> None:
    bf = to_mixed_bfloat16(roof_model)
    assert [w.shape for w in bf.get_weights()] == [w.shape for w in roof_model.get_weights()]
    assert bf.layers[1].compute_dtype == "bfloat16"
    assert bf.layers[-1].compute_dtype == "float32"  # the probability stays float32
    assert roof_model.layers[1].compute_dtype == "float32"  # the original is untouched


def test_predictor_is_traced_once_per_model_and_tile(roof_model) -> None:
    a = as_predictor(roof_model, 64, "fp32")
    assert as_predictor(roof_model, 64, "fp32") is a
    assert as_predictor(a, 64) is a
    b = as_predictor(a, 128)
    assert b is not a and b.tile == 128 and b.precision == "fp32"
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    y = a(x)
    assert y.shape == (2, 64, 64) and y.dtype == np.float32 and 0 <= y.min() <= y.max() <= 1


def test_int8_predictor_pads_and_chunks_batches(roof_model) -> None:
    from satseg.inference.engine import INT8_BATCH, Int8Predictor

    q = as_predictor(roof_model, 64, "int8")
    assert isinstance(q, Int8Predictor) and q.precision == "int8"
    assert as_predictor(roof_model, 64, "int8") is q
    f = as_predictor(roof_model, 64, "fp32")
    x = np.random.default_rng(1).random((INT8_BATCH + 3, 64, 64, 3), dtype=np.float32)
    yq, yf = q(x), f(x)
    assert yq.shape == yf.shape == (INT8_BATCH + 3, 64, 64) and yq.dtype == np.float32
    assert np.abs(yq - yf).mean() < 0.02  # quantisation noise, not another model
    np.testing.assert_allclose(q(x[:2]), yq[:2], atol=1e-6)  # padding does not leak in
