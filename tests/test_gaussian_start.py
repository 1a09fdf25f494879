"""Full-covariance base normals, the shrunk cluster covariances that set them, and selection="auto"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs, make_circles

from flowmix import FlowMixture, init, selection
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.flows.base_distributions import full_normal_log_prob_columns
from flowmix.training import TrainResult


def _correlated(n=400, seed=0):
    rng = np.random.RandomState(seed)
    return rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 1.2, 0.3], [1.2, 1.5, -0.4], [0.3, -0.4, 0.8]], n)


def test_full_normal_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    a = rng.normal(size=(2, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + np.eye(3)
    loc, z = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 7))
    tril = torch.linalg.cholesky(torch.as_tensor(cov))
    ours = full_normal_log_prob_columns(torch.as_tensor(z), torch.as_tensor(loc), tril).numpy()
    for s in range(2):
        np.testing.assert_allclose(ours[s], multivariate_normal(loc[s], cov[s]).logpdf(z[s].T), rtol=1e-10)


@pytest.mark.parametrize("family", ["spline", "maf"])
def test_identity_flows_with_a_full_base_are_the_gaussian_mixture(family):
    X = _correlated()
    start = init.start_from_responsibilities(X, np.ones((1, len(X), 1)))
    covariances = init.shrunk_covariances(X, np.ones((1, len(X), 1)))
    tril = torch.linalg.cholesky(torch.as_tensor(covariances))
    flows = make_flow(family, 1, 3, generator=torch.Generator().manual_seed(0))
    if family == "maf":  # a MAF starts random; zero its outputs to make it the identity
        for p in flows.mades[0].layers[-1].parameters():
            p.data.zero_()
    flows.prepare(torch.as_tensor(X, dtype=torch.float32))
    density = MixtureOfFlows(flows, torch.as_tensor(start.means), 1.0, None, tril).double()
    ours = density.log_prob(torch.as_tensor(X)).detach().numpy()[0]
    expected = multivariate_normal(start.means[0, 0], covariances[0, 0]).logpdf(X)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_shrunk_covariances_are_positive_definite_for_clusters_smaller_than_the_dimension():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 10))
    labels = np.r_[np.zeros(3, int), np.ones(37, int)]  # cluster 0: 3 points in 10 dimensions
    start = init.start_from_responsibilities(X, init.one_hot(labels[None], 2))
    covariances = init.shrunk_covariances(X, init.one_hot(labels[None], 2))
    assert np.linalg.eigvalsh(covariances[0]).min() > 0
    # Its diagonal stays the cluster's own spread; a large cluster keeps most of its covariance.
    np.testing.assert_allclose(np.diag(covariances[0, 0]), start.scales[0, 0] ** 2, rtol=1e-5)
    sample = np.cov(X[3:].T, bias=True)
    assert np.abs(covariances[0, 1] - sample).max() < 0.25 * np.abs(sample).max()


def test_a_gmm_start_with_a_full_base_fits_correlated_blobs_and_saves_its_covariances(tmp_path):
    X = np.concatenate([_correlated(300, 0), _correlated(300, 1) + 8.0])
    model = FlowMixture(
        2, init="gmm", covariance_type="full", n_init=1, n_epochs=3, pretrain_epochs=3, random_state=0
    ).fit(X)
    assert model.base_covariances_.shape == (2, 3, 3)
    np.testing.assert_allclose(
        np.sqrt(np.diagonal(model.base_covariances_, axis1=1, axis2=2)), model.base_scales_
    )
    diag = FlowMixture(2, init="gmm", n_init=1, n_epochs=3, pretrain_epochs=3, random_state=0,
                       covariance_type="diag").fit(X)  # fmt: skip
    assert diag.base_covariances_ is None
    assert model.score(X) > diag.score(X)  # the correlations are in the base from the start
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(loaded.base_covariances_, model.base_covariances_, rtol=1e-6)
    assert loaded.sample(50)[0].shape == (50, 3)


def test_a_model_file_whose_covariance_factor_is_not_triangular_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    X = _correlated()
    path = (
        FlowMixture(
            2, init="gmm", covariance_type="full", n_init=1, n_epochs=1, pretrain_epochs=1, random_state=0
        )
        .fit(X)
        .save(tmp_path / "m")
    )
    tensors = load_file(str(path / "model.safetensors"))
    tensors["base_scale_tril"][0, 0, 0, 2] = 0.5
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match="lower-triangular with a positive diagonal"):
        FlowMixture.load(path)


def test_spectral_restarts_cycle_through_the_neighbourhood_sizes(monkeypatch):
    seen = []
    real = init.spectral_embedding

    def spy(X, k, seed, n_neighbours=10):
        seen.append(n_neighbours)
        return real(X, k, seed, n_neighbours)

    monkeypatch.setattr(init, "spectral_embedding", spy)
    X, _ = make_circles(200, noise=0.03, factor=0.5, random_state=0)
    init.spectral_partition(X.astype(np.float32), 4, 2, np.random.RandomState(0))
    assert seen == [10, 5, 20]  # one embedding per graph, the fourth restart reuses the first


@pytest.mark.parametrize(("gmm_ll", "rule"), [(-10.0, "graph-cut"), (10.0, "gaussian-fit")])
def test_auto_selection_uses_the_cut_only_where_flows_beat_a_gmm_clearly(monkeypatch, gmm_ll, rule):
    X, _ = make_blobs(120, centers=2, random_state=0)
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("spline", 4, 2), torch.zeros(2, 2, 2), 1.0)
    monkeypatch.setattr(selection, "gmm_validation_likelihood", lambda *a: gmm_ll)
    monkeypatch.setattr(selection, "validation_likelihood", lambda *a: np.array([1.0, 2.0]))
    monkeypatch.setattr(selection, "partition_gaussian_likelihood", lambda *a: np.array([7.0, 6.0]))
    monkeypatch.setattr(selection, "multiscale_graph_cut", lambda *a: np.array([5.0, 3.0]))
    result = TrainResult(np.zeros((2, 1)), np.array([-1, -1]), 1)
    scores = selection.automatic(result, density, columns, columns)
    assert scores.tolist() == ([5.0, 3.0] if rule == "graph-cut" else [7.0, 6.0])


def test_gmm_reference_likelihood_is_a_fitted_gmms_score():
    X, _ = make_blobs(300, centers=3, random_state=0)
    train, validation = (torch.as_tensor(part.T, dtype=torch.float32) for part in (X[:250], X[250:]))
    score = selection.gmm_validation_likelihood(train, validation, 3)
    from sklearn.mixture import GaussianMixture

    expected = (
        GaussianMixture(3, random_state=0).fit(X[:250].astype(np.float32)).score(X[250:].astype(np.float32))
    )
    assert score == pytest.approx(expected, abs=0.05)


def test_multiscale_cut_prefers_the_rings_and_differs_from_one_graphs_cut(monkeypatch):
    X, y = make_circles(400, noise=0.03, factor=0.3, random_state=0)
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 4, 2), torch.zeros(2, 2, 2), 1.0)
    parts = np.stack([y, (X[:, 0] > 0).astype(int)])
    monkeypatch.setattr(selection, "restart_labels", lambda d, c: parts)
    scores = selection.multiscale_graph_cut(None, density, columns, None)
    assert scores[0] < scores[1]
    assert scores[1] != selection.graph_cut(None, density, columns, None)[1]


def test_partition_gaussian_likelihood_prefers_the_gaussian_partition_of_overlapping_blobs(monkeypatch):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1.0, (300, 2)), rng.normal([2.5, 0], 0.3, (100, 2))])
    truth = np.repeat([0, 1], [300, 100])
    by_x = (X[:, 0] > 1.25).astype(int)  # the valley cut, through the broad blob
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 4, 2), torch.zeros(2, 2, 2), 1.0)
    monkeypatch.setattr(selection, "restart_labels", lambda d, c: np.stack([truth, by_x]))
    scores = selection.partition_gaussian_likelihood(None, density, columns, None)
    assert scores[0] < scores[1]
    # The score is the mean log-likelihood of the Gaussian mixture made from the true partition.
    start = init.start_from_responsibilities(X, init.one_hot(truth[None], 2))
    covariances = init.shrunk_covariances(X, init.one_hot(truth[None], 2))
    mix = start.weights[0, 0] * multivariate_normal(start.means[0, 0], covariances[0, 0]).pdf(X)
    mix = mix + start.weights[0, 1] * multivariate_normal(start.means[0, 1], covariances[0, 1]).pdf(X)
    assert scores[0] == pytest.approx(-np.log(mix).mean(), rel=1e-5)


def test_assigned_nll_is_each_points_own_component_nll():
    from flowmix.training import mean_assigned_nll

    density = MixtureOfFlows(make_flow("maf", 2, 2), torch.tensor([[[0.0, 0.0], [3.0, 3.0]]]), 1.0)
    points = torch.randn(2, 9)
    r = torch.nn.functional.one_hot(torch.arange(9) % 2, 2).T[None].float()
    component = density.component_log_prob_columns(points).detach()[0]
    expected = -component[torch.arange(9) % 2, torch.arange(9)].double().mean()
    assert mean_assigned_nll(density, points, r)[0] == pytest.approx(float(expected), rel=1e-6)


def test_the_reference_gmm_is_fitted_once_for_the_same_points(monkeypatch):
    rng = np.random.default_rng(0)
    train = torch.as_tensor(rng.normal(size=(2, 200)), dtype=torch.float32)
    validation = torch.as_tensor(rng.normal(size=(2, 40)), dtype=torch.float32)
    fits = []
    real = selection.fit_full_gmm
    monkeypatch.setattr(selection, "fit_full_gmm", lambda *a, **k: fits.append(1) or real(*a, **k))
    monkeypatch.setattr(selection, "_last_reference", None)
    first = selection.gmm_validation_likelihood(train, validation, 2)
    assert selection.gmm_validation_likelihood(train, validation, 2) == first and len(fits) == 1
    selection.gmm_validation_likelihood(train, validation, 3)  # another K: fitted again
    selection.gmm_validation_likelihood(train + 1e-3, validation, 3)  # other points: fitted again
    assert len(fits) == 3
