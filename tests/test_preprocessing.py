"""The affine map a fit applies first (flowmix.preprocessing), and the estimator's invariance to it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmix import FlowMixture
from flowmix.preprocessing import FeatureScaling, fit_scaling
from flowmix.recipes import Candidates


def test_standardize_centres_and_scales_each_feature_and_keeps_constant_ones():
    X = np.array([[1.0, 10.0, 3.0], [3.0, 30.0, 3.0], [5.0, 50.0, 3.0]])
    scaling = FeatureScaling.standardize(X)
    Z = scaling.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), [1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(scaling.inverse_transform(Z), X)
    assert scaling.log_det == pytest.approx(-np.log(X[:, 0].std() * X[:, 1].std()))


def test_the_identity_returns_the_very_array():
    X = np.ones((3, 2), dtype=np.float32)
    identity = fit_scaling("none", X)
    assert identity.is_identity and identity.transform(X) is X and identity.log_det == 0.0


def test_an_unknown_preprocessing_is_refused():
    expected = r"preprocessing must be one of \['auto', 'robust', 'standardize', 'global', 'none'\]"
    with pytest.raises(ValueError, match=expected):
        FlowMixture(2, preprocessing="whiten").fit(np.random.rand(20, 2))


def test_global_scaling_keeps_the_features_common_unit():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 60)) * np.r_[np.full(30, 2.0), np.full(30, 0.01)] + 5.0  # faint half
    scaling = FeatureScaling.global_scale(X)
    Z = scaling.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    assert np.all(scaling.scale == scaling.scale[0])  # one scale: the faint features stay faint
    assert Z[:, 30:].std() < 0.01 * Z[:, :30].std()
    assert np.mean(Z.var(axis=0)) == pytest.approx(1.0)
    assert fit_scaling("global", np.ones((4, 50))).scale.tolist() == [1.0] * 50  # constant data: scale 1


@pytest.mark.parametrize(
    ("n_features", "expected"), [(2, "robust"), (47, "robust"), (48, "global"), (784, "global")]
)
def test_auto_scales_narrow_tables_per_feature_and_wide_data_alike(n_features, expected):
    X = np.random.RandomState(0).normal(size=(30, n_features)) * np.arange(1, n_features + 1)
    auto, chosen = fit_scaling("auto", X), fit_scaling(expected, X)
    assert np.array_equal(auto.offset, chosen.offset) and np.array_equal(auto.scale, chosen.scale)


# The default recipe with fewer epochs (it trained one restart whatever n_init before n_init moved into it).
FAST = {"n_epochs": 15, "recipe": Candidates().with_settings(pretrain_epochs=10), "random_state": 0}


@pytest.mark.parametrize(
    ("scale", "shift"),
    [([1e3, 1e-3], [0.0, 0.0]), ([1e-3, 1.0], [-50.0, 1e4]), ([2.0, 7e2], [3.0, -3.0])],
)
def test_partition_and_density_follow_any_per_feature_affine_map(two_tight_blobs, scale, shift):
    X, _ = two_tight_blobs
    X = X.astype(np.float64)
    scale, shift = np.asarray(scale), np.asarray(shift)
    model = FlowMixture(2, **FAST).fit(X)
    moved = FlowMixture(2, **FAST).fit(X * scale + shift)
    np.testing.assert_array_equal(moved.labels_, model.labels_)
    np.testing.assert_allclose(
        moved.score_samples(X * scale + shift), model.score_samples(X) - np.log(scale).sum(), atol=2e-3
    )
    samples, _ = moved.sample(500)
    # samples come back in the user's units: the same spread as the data, feature by feature
    np.testing.assert_allclose(samples.std(axis=0) / (X * scale).std(axis=0), 1, atol=0.25)


def test_saved_models_keep_their_scaling(tmp_path, two_tight_blobs):
    X, _ = two_tight_blobs
    X = X * [1e3, 1e-2]
    model = FlowMixture(2, **FAST).fit(X)
    model.save(tmp_path / "m")
    loaded = FlowMixture.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.feature_scaling_.scale, model.feature_scaling_.scale)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


@settings(max_examples=5, deadline=None)
@given(
    log_scale=st.lists(st.floats(-3, 3), min_size=2, max_size=2),
    shift=st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=2),
)
def test_any_per_feature_affine_map_leaves_the_partition_alone(log_scale, shift):
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(0, 0.05, (60, 2)), rng.normal(1, 0.05, (60, 2))]
    scale = 10.0 ** np.asarray(log_scale)
    model = FlowMixture(2, **FAST).fit(X)
    moved = FlowMixture(2, **FAST).fit(X * scale + np.asarray(shift))
    np.testing.assert_array_equal(moved.labels_, model.labels_)
    np.testing.assert_allclose(
        moved.score_samples(X * scale + shift), model.score_samples(X) - np.log(scale).sum(), atol=5e-3
    )
