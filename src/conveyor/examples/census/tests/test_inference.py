"""Tests of the inference code; `conveyor test` runs them against the packaged model and code."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import score
from inference.model import EXAMPLE_REQUEST, WageModel
from inference.transforms import RequestError, parse_request


@pytest.fixture(scope="module")
def scorer():
    score.init()
    return score


def test_init_loads_scalers_and_model(scorer):
    assert scorer.model.x_scaler is not None and hasattr(scorer.model.x_scaler, "mean_")
    assert scorer.model.y_scaler is not None and hasattr(scorer.model.y_scaler, "scale_")
    assert scorer.model.model is not None and hasattr(scorer.model.model, "coef_")


def test_prediction_is_a_finite_float(scorer):
    result = scorer.run(json.dumps(EXAMPLE_REQUEST))
    assert set(result) == {"estimated_wages"}
    assert isinstance(result["estimated_wages"], float) and math.isfinite(result["estimated_wages"])


def test_folded_weights_match_the_fitted_objects(scorer):
    model: WageModel = scorer.model
    weights, bias = WageModel.fold(model.x_scaler, model.y_scaler, model.model)
    assert np.allclose(weights, model.weights, rtol=1e-12) and bias == pytest.approx(model.bias, rel=1e-12)


def test_fast_path_matches_the_fitted_objects(scorer):
    model: WageModel = scorer.model
    features = np.array([[37.0, 40.0], [20.0, 10.0], [65.0, 60.0]])
    expected = model.predict_sklearn(features)
    got = [model.predict(*row) for row in features]
    assert np.allclose(got, expected, rtol=1e-9)


def test_batch_equals_single(scorer):
    requests = [EXAMPLE_REQUEST, {"age": 50, "hours-per-week": 20}]
    batch = scorer.run_batch(requests)
    single = [scorer.run(r) for r in requests]
    assert [b["estimated_wages"] for b in batch] == pytest.approx([s["estimated_wages"] for s in single], rel=1e-12)


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ('{"hours-per-week": 40}', "age"),
        ('{"age": "old", "hours-per-week": 40}', "age"),
        ('{"age": 37, "hours-per-week": null}', "hours-per-week"),
        ('{"age": 37, "hours-per-week": 40, "sex": 1}', "sex"),
    ],
)
def test_malformed_request_names_the_field(request_body, field):
    with pytest.raises(RequestError) as info:
        parse_request(request_body)
    assert info.value.field == field
    assert field in str(info.value)


def test_not_json_is_a_clear_error():
    with pytest.raises(RequestError, match="not valid JSON"):
        parse_request("{age: 37")
