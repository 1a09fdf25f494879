"""Per-column rescaling: fitted once, repeated exactly on new rows, JSON-able, constant columns safe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowmix.datasets.scaling import SCALINGS, apply_scaling, fit_scaling, minmax_scale


def table() -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, (50, 3))
    X[:, 2] = 7.0  # a constant column
    return X


def test_minmax_maps_the_fitted_table_to_the_unit_box():
    X = table()
    Z = apply_scaling(X, fit_scaling(X, "minmax"))
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z[:, :2].min(axis=0), 0.0)
    np.testing.assert_allclose(Z[:, :2].max(axis=0), 1.0)
    np.testing.assert_array_equal(Z[:, 2], 0.0)  # constant: shifted to 0, not divided by 0
    np.testing.assert_array_equal(minmax_scale(X), Z)


def test_standard_gives_zero_mean_and_unit_variance():
    X = table()
    Z = apply_scaling(X, fit_scaling(X, "standard"))
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(Z[:, 2], 0.0)


@pytest.mark.parametrize("method", SCALINGS)
def test_parameters_survive_json_and_repeat_on_new_rows(method):
    X = table()
    params = fit_scaling(X, method)
    assert params["scale"] == method
    stored = json.loads(json.dumps(params))
    new = X[:7] * 1.5 - 2.0
    np.testing.assert_array_equal(apply_scaling(new, stored), apply_scaling(new, params))
    if method != "none":
        offset, span = np.asarray(params["offset"]), np.asarray(params["span"])
        expected = (new - offset) / np.where(span > 0, span, 1.0)
        np.testing.assert_array_equal(apply_scaling(new, stored), expected.astype(np.float32))


def test_none_returns_the_data_unchanged():
    X = table()
    assert fit_scaling(X, "none") == {"scale": "none"}
    assert apply_scaling(X, {"scale": "none"}) is X
    assert apply_scaling(X, {}) is X


def test_errors_say_what_to_do():
    X = table()
    with pytest.raises(ValueError, match=r"Unknown scaling 'robust'; choose one of minmax, standard, none\."):
        fit_scaling(X, "robust")
    with pytest.raises(ValueError, match=r"non-empty \(N, D\) table, got an array of shape \(0, 3\)"):
        fit_scaling(X[:0], "minmax")
    params = fit_scaling(X, "minmax")
    with pytest.raises(ValueError, match=r"fitted to 3 column\(s\) but got an array of shape \(4, 2\)"):
        apply_scaling(X[:4, :2], params)
