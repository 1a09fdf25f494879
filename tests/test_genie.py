"""Genie (flowmix.genie): the spanning tree, the Gini index and the constrained merges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree as scipy_tree
from scipy.spatial.distance import cdist
from sklearn.datasets import make_circles
from sklearn.metrics import adjusted_rand_score

from flowmix.genie import genie, gini_index, minimum_spanning_tree


def test_spanning_tree_has_the_minimum_total_length_and_sorted_edges():
    X = np.random.RandomState(0).normal(size=(150, 3))
    heads, tails, lengths = minimum_spanning_tree(X)
    assert len(heads) == 149
    np.testing.assert_allclose(lengths, np.linalg.norm(X[heads] - X[tails], axis=1))
    assert np.all(np.diff(lengths) >= 0)
    assert lengths.sum() == pytest.approx(scipy_tree(cdist(X, X)).sum(), rel=1e-12)
    # a spanning tree: every point reached
    assert len(np.unique(np.r_[heads, tails])) == 150


def test_gini_index_of_equal_and_uneven_sizes():
    assert gini_index(np.array([4, 4, 4, 4])) == 0.0
    assert gini_index(np.array([7])) == 0.0
    # sum |s_i - s_j| = 9 + 9 + 0 = 18; (c - 1) * sum = 2 * 12
    assert gini_index(np.array([1, 1, 10])) == pytest.approx(18 / 24)


def test_genie_separates_nested_rings_that_k_means_cannot():
    X, y = make_circles(400, factor=0.4, noise=0.03, random_state=0)
    assert adjusted_rand_score(y, genie(X, 2)) == 1.0


def test_the_gini_limit_keeps_an_outlier_from_taking_a_cluster():
    rng = np.random.RandomState(1)
    X = np.r_[rng.normal(0, 0.3, (100, 2)), rng.normal(4, 0.3, (100, 2)), [[30.0, 30.0]]]
    truth = np.r_[np.zeros(100), np.ones(100), 1]
    single_linkage = genie(X, 2, gini_threshold=1.0)  # never constrained
    assert np.bincount(single_linkage).min() == 1  # the outlier alone
    assert adjusted_rand_score(truth, genie(X, 2, gini_threshold=0.3)) == 1.0


def test_a_subsample_labels_every_point_by_its_nearest_clustered_neighbour():
    X, y = make_circles(600, factor=0.4, noise=0.03, random_state=0)
    labels = genie(X, 2, max_points=300, rng=np.random.RandomState(0))
    assert labels.shape == (600,)
    assert adjusted_rand_score(y, labels) > 0.98


def test_as_many_clusters_as_points_or_one_cluster():
    X = np.random.RandomState(0).normal(size=(6, 2))
    assert sorted(genie(X, 6)) == list(range(6))
    assert set(genie(X, 1)) == {0}


def test_bad_arguments_are_refused_with_the_valid_range():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"n_clusters must lie in 1\.\.5"):
        genie(X, 6)
    with pytest.raises(ValueError, match=r"gini_threshold must lie in \[0, 1\]"):
        genie(X, 2, gini_threshold=1.5)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.7])
def test_partitions_match_the_reference_package(threshold):
    genieclust = pytest.importorskip("genieclust", reason="the reference package (pip install genieclust)")
    rng = np.random.RandomState(2)
    X = np.r_[rng.normal(0, 1, (200, 2)), rng.normal(5, 0.5, (60, 2)), rng.uniform(-6, 9, (40, 2))]
    reference = genieclust.Genie(n_clusters=4, gini_threshold=threshold).fit_predict(X)
    assert adjusted_rand_score(reference, genie(X, 4, threshold)) == 1.0
