"""Selection rules (flowmix.selection): which restart a fit keeps, never from labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs, make_circles

from flowmix import FlowMixture, clustering, selection
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.recipes import SingleFit
from flowmix.training import TrainResult


def test_graph_cut_prefers_the_partition_along_the_gap(circles, monkeypatch):
    X, y = circles
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 4, 2), torch.zeros(2, 2, 2), 1.0)

    halves = (X[:, 0] > 0).astype(int)
    monkeypatch.setattr(selection, "restart_labels", lambda density, columns: np.stack([y, halves]))
    scores = selection.graph_cut(None, density, columns, None)
    assert scores[0] == 0 < scores[1]


def _unstopped(n_restarts):
    """A training result whose restarts all ran to the end (select() reads stopped_epoch only)."""
    from types import SimpleNamespace

    return SimpleNamespace(stopped_epoch=np.full(n_restarts, -1))


def test_spectral_objective_ranks_the_rings_above_halves_and_an_emptied_component_last(circles, monkeypatch):
    X, y = circles
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 6, 2), torch.zeros(3, 2, 2), 1.0)
    halves = (X[:, 0] > 0).astype(int)
    parts = np.stack([halves, y, np.zeros_like(y)])
    monkeypatch.setattr(selection, "restart_labels", lambda density, columns: parts)
    scores = selection.spectral_objective(None, density, columns, None)
    assert np.argsort(scores).tolist() == [1, 0, 2]
    best, _ = selection.select("spectral", _unstopped(3), density, columns, None)
    assert best == 1


def test_a_selection_rule_picks_the_kept_restart(two_tight_blobs, monkeypatch):
    X, _ = two_tight_blobs

    def highest_loss(result, density, train, validation):
        return -result.losses[:, -1]

    monkeypatch.setitem(selection.SELECTIONS, "worst", highest_loss)
    model = FlowMixture(2, recipe=SingleFit(selection="worst"), n_init=3, n_epochs=5, random_state=0).fit(X)
    assert model.best_restart_ == int(np.argmax(model.losses_[:, -1]))
    assert model.best_restart_ != int(np.argmin(model.losses_[:, -1]))


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
    scores = selection.likelihood_or_cut(result, density, columns, columns)
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
    means, _, weights = clustering.cluster_normals(X, clustering.one_hot(truth[None], 2))
    covariances = clustering.shrunk_covariances(X, clustering.one_hot(truth[None], 2))
    mix = weights[0, 0] * multivariate_normal(means[0, 0], covariances[0, 0]).pdf(X)
    mix = mix + weights[0, 1] * multivariate_normal(means[0, 1], covariances[0, 1]).pdf(X)
    assert scores[0] == pytest.approx(-np.log(mix).mean(), rel=1e-5)


def test_the_reference_gmm_scores_held_out_points_deterministically():
    rng = np.random.default_rng(0)
    train = torch.as_tensor(rng.normal(size=(2, 200)), dtype=torch.float32)
    validation = torch.as_tensor(rng.normal(size=(2, 40)), dtype=torch.float32)
    first = selection.gmm_validation_likelihood(train, validation, 2)
    assert selection.gmm_validation_likelihood(train, validation, 2) == first
    # points of the training distribution score higher than points moved away from it
    assert first > selection.gmm_validation_likelihood(train, validation + 3, 2) + 1


def test_a_cluster_smaller_than_the_neighbourhood_is_not_counted_as_cut():
    rng = np.random.RandomState(0)
    # a large blob and two isolated pairs: every point of a pair keeps at most 1 of its 5 neighbours
    points = np.r_[rng.normal(0, 0.3, (100, 2)), [[10.0, 0.0], [10.1, 0.0], [0.0, 10.0], [0.0, 10.1]]]
    right = np.r_[np.zeros(100, int), 1, 1, 2, 2]
    split_blob = np.r_[(points[:100, 0] > 0).astype(int), 2, 2, 2, 2]  # the blob halved, the pairs joined
    cuts = selection.normalised_cuts(points, np.stack([right, split_blob]), 3, (5,))
    # only the blob's side of the pairs' edges is left: 8 edges of a volume of about 500
    assert cuts[0] < 0.02 and cuts[1] > 0.4
