"""Starts (flowmix.init): clusters that locate, scale, weight and pretrain the components.

The clusterers the starts are made from are tested in test_clustering.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from flowmix import FlowMixture, clustering, init
from flowmix.recipes import SingleFit


def test_start_from_responsibilities_locates_scales_and_weights_clusters():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, [1, 2], (300, 2)), rng.normal(10, 0.5, (100, 2))])
    labels = np.repeat([0, 1], [300, 100])
    start = init.start_from_responsibilities(X, init.one_hot(labels[None], 2))
    np.testing.assert_allclose(start.weights[0], [0.75, 0.25])
    np.testing.assert_allclose(start.means[0], [X[:300].mean(0), X[300:].mean(0)], rtol=1e-5)
    np.testing.assert_allclose(start.scales[0], [X[:300].std(0), X[300:].std(0)], rtol=1e-4)
    assert start.responsibilities.shape == (1, 400, 2)


@pytest.mark.parametrize(
    ("name", "clusterer", "hard"),
    [
        ("kmeans-partition", clustering.kmeans_labels, True),
        ("spectral", clustering.spectral_labels, True),
        ("genie", clustering.genie_labels, True),
        ("gmm", clustering.gmm_responsibilities, False),
        ("gmm-best", clustering.best_gmm_responsibilities, False),
    ],
)
def test_a_cluster_start_is_made_of_its_clusterers_partitions(three_blobs, name, clusterer, hard):
    X, _ = three_blobs
    start = init.INITIALISATIONS[name](X, 2, 3, np.random.RandomState(0))
    assignments = clusterer(X, 3, np.random.RandomState(0), 2)
    if hard:
        assignments = init.one_hot(assignments, 3)
    np.testing.assert_array_equal(start.responsibilities, assignments)
    expected = init.start_from_responsibilities(X, assignments)
    np.testing.assert_array_equal(start.means, expected.means)
    np.testing.assert_array_equal(start.weights, expected.weights)


def test_k_means_start_puts_the_base_means_at_the_centroids(three_blobs):
    X, _ = three_blobs
    start = init.kmeans_centres(X, 2, 3, np.random.RandomState(0))
    centroids = clustering.kmeans_centroids(X, 3, np.random.RandomState(0), 2)
    np.testing.assert_array_equal(start.means, centroids.astype(np.float32))
    assert start.scales is None and start.responsibilities is None


def test_auto_start_cycles_through_the_strategies(three_blobs):
    X, _ = three_blobs
    start = init.cycled_start(X.astype(np.float32), 4, 3, np.random.RandomState(0))
    assert start.means.shape == (4, 3, 2) and start.responsibilities.shape == (4, 300, 3)
    # Restart 1 starts from GMM posteriors (soft); restarts 0, 2 and 3 from hard partitions.
    assert set(np.unique(start.responsibilities[0])) <= {0.0, 1.0}
    assert set(np.unique(start.responsibilities[2])) <= {0.0, 1.0}
    assert not set(np.unique(start.responsibilities[1])) <= {0.0, 1.0}


def test_user_labels_start_the_fit(three_blobs):
    X, y = three_blobs
    model = FlowMixture(
        3,
        init=y,
        algorithm="hard-em",
        recipe=SingleFit(selection="likelihood", pretrain_epochs=20),
        n_init=1,
        n_epochs=5,
        random_state=0,
    )  # hard EM keeps the start's partition; soft EM may move a point the three_blobs share (tested below)
    assert adjusted_rand_score(y, model.fit(X).labels_) == 1.0
    soft = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert adjusted_rand_score(y, model.set_params(init=soft).fit(X).labels_) == 1.0


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (np.zeros(5, dtype=int), r"integer array of shape \(300,\)"),
        (np.full(300, 3), r"init labels must lie in 0..2"),
        (np.full((300, 3), 0.5), "sum to 1 in every row"),
        (np.zeros((300, 2)), r"shape \(n_samples, n_components\) = \(300, 3\)"),
    ],
)
def test_bad_user_assignments_say_what_is_expected(three_blobs, assignments, message):
    with pytest.raises(ValueError, match=message):
        FlowMixture(3, init=assignments, recipe=SingleFit(selection="likelihood"), n_epochs=1).fit(
            three_blobs[0]
        )


def test_array_init_labels_every_point_and_the_held_out_rows_are_left_out(three_blobs):
    X, y = three_blobs
    recipe = SingleFit(selection="likelihood-or-cut", pretrain_epochs=5)  # a rule that holds rows out
    model = FlowMixture(
        3, init=y, early_stopping=True, recipe=recipe, n_init=1, n_epochs=3, random_state=0
    ).fit(X)
    assert adjusted_rand_score(y, model.labels_) == 1.0


# Diagonal bases, chosen by the graph cut: one fit on every point, where the default recipe
# (covariance_type="auto") may fit twice and holds points out.
ONE_FIT_ON_ALL_POINTS = {"covariance_type": "diag", "recipe": SingleFit(selection="graph-cut")}


def test_an_initialisation_sets_scales_weights_and_pretrains_the_flows(two_tight_blobs, monkeypatch):
    X, y = two_tight_blobs
    calls = {}

    def true_clusters(X, n_init, n_components, rng):
        calls["shape"] = (X.shape, n_init, n_components)
        means = np.stack([X[y == k].mean(0) for k in range(2)])[None].repeat(n_init, 0)
        responsibilities = np.eye(2)[y][None].repeat(n_init, 0)
        return init.Start(
            means=means.astype(np.float32),
            scales=np.full((n_init, 2, 2), 0.05, dtype=np.float32),
            weights=np.tile([0.3, 0.7], (n_init, 1)),
            responsibilities=responsibilities,
        )

    monkeypatch.setitem(init.INITIALISATIONS, "true-clusters", true_clusters)
    model = FlowMixture(2, init="true-clusters", n_init=2, n_epochs=20, batch_size=50, random_state=0,
                        **ONE_FIT_ON_ALL_POINTS).fit(X)  # fmt: skip
    assert calls["shape"] == ((200, 2), 2, 2)
    np.testing.assert_array_equal(model.base_scales_, np.full((2, 2), 0.05, dtype=np.float32))
    assert (model.predict(X) == y).all()
    # Each component was pretrained on its own blob: it gives its blob the higher density.
    with torch.no_grad():
        own = model.density_.component_log_prob(torch.as_tensor(X, dtype=torch.float32))[0].numpy()
    assert own[0, y == 0].mean() > own[1, y == 0].mean() + 10
    assert own[1, y == 1].mean() > own[0, y == 1].mean() + 10


def test_weights_from_an_initialisation_are_the_starting_weights(two_tight_blobs, monkeypatch):
    X, _ = two_tight_blobs

    def lopsided(X, n_init, n_components, rng):
        start = init.bounding_box(X, n_init, n_components, rng)
        start.weights = np.tile([0.9, 0.1], (n_init, 1))
        return start

    monkeypatch.setitem(init.INITIALISATIONS, "lopsided", lopsided)
    seen = []

    def record(epoch, density):
        seen.append(density.log_weights().exp().detach().numpy().copy())

    FlowMixture(2, init="lopsided", n_epochs=1, random_state=0).fit(X, callback=record)
    np.testing.assert_allclose(seen[0][0], [0.9, 0.1], rtol=1e-6)
