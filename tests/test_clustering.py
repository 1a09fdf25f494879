"""The cheap clusterers (flowmix.clustering): their partitions, the cluster statistics and the subsample cap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_circles
from sklearn.metrics import adjusted_rand_score

from flowmix import clustering


def test_spectral_clustering_separates_the_circles(circles):
    X, y = circles
    labels = clustering.spectral_labels(X.astype(np.float32), 2, np.random.RandomState(0), 2)
    assert labels.shape == (2, len(X))
    for part in labels:
        assert adjusted_rand_score(y, part) == 1.0


def test_spectral_clustering_on_a_subsample_labels_every_point(circles, monkeypatch):
    X, y = circles
    monkeypatch.setattr(clustering, "MAX_FIT_POINTS", 200)
    labels = clustering.spectral_labels(X.astype(np.float32), 2, np.random.RandomState(0))
    assert labels.shape == (1, len(X))
    assert adjusted_rand_score(y, labels[0]) > 0.95


def test_spectral_partitions_cycle_through_the_neighbourhood_sizes(monkeypatch):
    seen = []
    real = clustering.spectral_embedding

    def spy(X, k, seed, n_neighbours=10):
        seen.append(n_neighbours)
        return real(X, k, seed, n_neighbours)

    monkeypatch.setattr(clustering, "spectral_embedding", spy)
    X, _ = make_circles(200, noise=0.03, factor=0.5, random_state=0)
    clustering.spectral_labels(X.astype(np.float32), 2, np.random.RandomState(0), 4)
    assert seen == [10, 5, 20]  # one embedding per graph, the fourth partition reuses the first


def test_genie_partitions_cycle_through_gini_thresholds(circles):
    X, y = circles
    labels = clustering.genie_labels(X.astype(np.float32), 2, np.random.RandomState(0), 4)
    assert labels.shape == (4, len(X))
    for part in labels:
        assert adjusted_rand_score(y, part) == 1.0
    # the fourth partition takes the first threshold again: the same partition
    np.testing.assert_array_equal(labels[3], labels[0])


def test_genie_clusters_a_subsample_of_larger_sets_and_labels_every_point(circles, monkeypatch):
    X, y = circles
    monkeypatch.setattr(clustering, "MAX_FIT_POINTS", 200)
    sizes = []
    real = clustering.genie

    def recording_genie(points, *args, **kwargs):
        sizes.append(kwargs["max_points"])
        return real(points, *args, **kwargs)

    monkeypatch.setattr(clustering, "genie", recording_genie)
    labels = clustering.genie_labels(X.astype(np.float32), 2, np.random.RandomState(0))
    assert sizes == [200] and labels.shape == (1, len(X))
    assert adjusted_rand_score(y, labels[0]) > 0.95


@pytest.mark.parametrize("clusterer", [clustering.spectral_labels, clustering.genie_labels])
@pytest.mark.parametrize(("n_points", "n_components"), [(3, 3), (40, 1)])
def test_one_cluster_or_too_few_points_for_a_graph_fall_back_to_k_means(clusterer, n_points, n_components):
    X = np.random.RandomState(0).normal(size=(n_points, 2))
    labels = clusterer(X, n_components, np.random.RandomState(1), 2)
    np.testing.assert_array_equal(
        labels, clustering.kmeans_labels(X, n_components, np.random.RandomState(1), 2)
    )


def test_best_gmm_is_the_most_likely_of_several_runs(three_blobs):
    X, y = three_blobs
    best = clustering.best_gmm_responsibilities(X, 3, np.random.RandomState(0), 2)
    assert best.shape == (2, len(X), 3)
    np.testing.assert_array_equal(best[0], best[1])
    assert adjusted_rand_score(y, best[0].argmax(1)) > 0.95
    # several runs are at least as likely as the first of them alone
    one = clustering.fit_full_gmm(X, 3, seed=0)
    many = clustering.fit_full_gmm(X, 3, seed=0, n_runs=clustering.BEST_GMM_RUNS)
    assert many.n_init == clustering.BEST_GMM_RUNS and many.score(X) >= one.score(X) - 1e-9


def test_best_gmm_runs_fit_a_subset_of_large_data_and_give_every_point_posteriors(three_blobs, monkeypatch):
    X, y = three_blobs
    fitted_sizes = []
    fit = clustering.fit_full_gmm

    def recording_fit(points, *args, **kwargs):
        fitted_sizes.append(len(points))
        return fit(points, *args, **kwargs)

    monkeypatch.setattr(clustering, "fit_full_gmm", recording_fit)
    whole = clustering.best_gmm_responsibilities(X, 3, np.random.RandomState(0))
    monkeypatch.setattr(clustering, "MAX_FIT_POINTS", len(X) // 3)
    subset = clustering.best_gmm_responsibilities(X, 3, np.random.RandomState(0))
    assert fitted_sizes == [len(X), len(X) // 3]
    assert subset.shape == whole.shape == (1, len(X), 3)
    assert adjusted_rand_score(y, subset[0].argmax(1)) > 0.95


def test_a_gmm_that_em_cannot_fit_leaves_that_runs_k_means_clusters(three_blobs, monkeypatch):
    X, _ = three_blobs
    monkeypatch.setattr(clustering, "fit_full_gmm", lambda *args, **kwargs: None)
    responsibilities = clustering.gmm_responsibilities(X, 3, np.random.RandomState(0), 2)
    labels = clustering.kmeans_labels(X, 3, np.random.RandomState(0), 2)
    np.testing.assert_array_equal(responsibilities, clustering.one_hot(labels, 3))


def test_a_subsample_is_drawn_only_above_the_cap(monkeypatch):
    monkeypatch.setattr(clustering, "MAX_FIT_POINTS", 50)
    rng = np.random.RandomState(0)
    np.testing.assert_array_equal(clustering.subsample(50, rng), np.arange(50))
    assert rng.randint(10**9) == np.random.RandomState(0).randint(10**9)  # nothing drawn
    subset = clustering.subsample(400, np.random.RandomState(0))
    assert len(subset) == 50 and np.all(np.diff(subset) > 0) and subset.max() < 400


def test_the_knn_graph_is_symmetric_with_self_loops_only_when_asked():
    X = np.random.RandomState(0).normal(size=(30, 2))
    graph = clustering.knn_graph(X, 5)
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    assert np.all(np.asarray((graph > 0).sum(axis=1)).ravel() >= 5)
    looped = clustering.knn_graph(X, 5, self_loops=True)
    np.testing.assert_array_equal(looped.diagonal(), np.full(30, 2.0))


def test_cluster_normals_locate_scale_and_weight_clusters():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, [1, 2], (300, 2)), rng.normal(10, 0.5, (100, 2))])
    labels = np.repeat([0, 1], [300, 100])
    means, scales, weights = clustering.cluster_normals(X, clustering.one_hot(labels[None], 2))
    np.testing.assert_allclose(weights[0], [0.75, 0.25])
    np.testing.assert_allclose(means[0], [X[:300].mean(0), X[300:].mean(0)], rtol=1e-5)
    np.testing.assert_allclose(scales[0], [X[:300].std(0), X[300:].std(0)], rtol=1e-4)
    assert means.dtype == scales.dtype == np.float32 and weights.dtype == np.float64


def test_shrunk_covariances_are_positive_definite_for_clusters_smaller_than_the_dimension():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 10))
    labels = np.r_[np.zeros(3, int), np.ones(37, int)]  # cluster 0: 3 points in 10 dimensions
    _, scales, _ = clustering.cluster_normals(X, clustering.one_hot(labels[None], 2))
    covariances = clustering.shrunk_covariances(X, clustering.one_hot(labels[None], 2))
    assert np.linalg.eigvalsh(covariances[0]).min() > 0
    # Its diagonal stays the cluster's own spread; a large cluster keeps most of its covariance.
    np.testing.assert_allclose(np.diag(covariances[0, 0]), scales[0, 0] ** 2, rtol=1e-5)
    sample = np.cov(X[3:].T, bias=True)
    assert np.abs(covariances[0, 1] - sample).max() < 0.25 * np.abs(sample).max()
