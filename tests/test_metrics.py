"""Clustering metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from flowmix.metrics import (
    ContingencyTable,
    adjusted_rand,
    clustering_scores,
    contingency_table,
    nmi,
    purity,
    unsupervised_accuracy,
)

Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([1, 1, 0, 0, 0, 0])


def test_hand_computed_merge():
    # Cluster 1 = class 0 (2 right); cluster 0 holds classes 1 and 2 and votes for one of them (2 right).
    assert purity(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    # Only two clusters, so at most two classes can be matched: 2 + 2 = 4 of 6.
    assert unsupervised_accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)


def test_ari_hand_computed():
    # Pairs: sum_ij C(n_ij,2) = C(2,2)+C(2,2)+C(2,2) = 3; rows a = (2,2,2) -> 3; cols b = (4,2) -> 6+1 = 7.
    # expected = 3*7/C(6,2) = 21/15 = 1.4; max = (3+7)/2 = 5; ARI = (3-1.4)/(5-1.4) = 1.6/3.6 = 4/9.
    assert adjusted_rand(Y_TRUE, Y_PRED) == pytest.approx(4 / 9)


def test_nmi_hand_computed():
    # H(true) = log 3; H(pred) = H(2/3, 1/3); I = H(true) - H(true|pred) = log 3 - (4/6) log 2.
    h_true = np.log(3)
    h_pred = -(2 / 3) * np.log(2 / 3) - (1 / 3) * np.log(1 / 3)
    mi = np.log(3) - (4 / 6) * np.log(2)
    assert nmi(Y_TRUE, Y_PRED) == pytest.approx(mi / ((h_true + h_pred) / 2))


def test_acc_differs_from_purity_when_clusters_share_a_class():
    # Both clusters are mostly class 0: purity counts 0 twice (3+2=5), ACC matches it once (3+1=4).
    y_true = np.array([0, 0, 0, 1, 0, 0, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1])
    assert purity(y_true, y_pred) == pytest.approx(5 / 7)
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(4 / 7)


def test_more_clusters_than_classes():
    # Four clusters for two classes: purity is perfect, but ACC can match only two of the clusters.
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    assert purity(y_true, y_pred) == 1.0
    # Best matching: class 0 -> cluster 0 (2), class 1 -> cluster 2 (3).
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(5 / 8)


def test_every_point_its_own_cluster():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.arange(4)
    assert purity(y_true, y_pred) == 1.0
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(2 / 4)


def test_single_cluster():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.zeros(6, dtype=int)
    assert purity(y_true, y_pred) == pytest.approx(3 / 6)
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(3 / 6)
    assert adjusted_rand(y_true, y_pred) == pytest.approx(0.0)
    assert nmi(y_true, y_pred) == pytest.approx(0.0)


def test_arbitrary_label_values():
    # Labels need not be 0..k-1, and need not share values between the two vectors.
    y_true = np.array([10, 10, 20, 20, 30, 30])
    y_pred = np.array([-5, -5, 7, 7, 7, 7])
    assert purity(y_true, y_pred) == pytest.approx(4 / 6)
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert clustering_scores(y_true, y_pred) == pytest.approx(clustering_scores(Y_TRUE, Y_PRED))


def test_perfect_clustering_scores_one():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([2, 2, 0, 0, 1, 1, 1])  # same partition, renamed
    scores = clustering_scores(y_true, y_pred)
    assert scores == pytest.approx({"purity": 1.0, "ari": 1.0, "nmi": 1.0, "acc": 1.0})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariant_to_renaming_clusters_and_classes(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=50)
    y_pred = rng.integers(0, 5, size=50)
    base = clustering_scores(y_true, y_pred)
    renamed = clustering_scores(rng.permutation(4)[y_true], rng.permutation(5)[y_pred])
    assert renamed == pytest.approx(base)


def test_invariant_to_sample_order():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, size=40)
    y_pred = rng.integers(0, 3, size=40)
    order = rng.permutation(40)
    assert clustering_scores(y_true[order], y_pred[order]) == pytest.approx(clustering_scores(y_true, y_pred))


def test_scores_are_plain_floats():
    scores = clustering_scores(Y_TRUE, Y_PRED)
    assert set(scores) == {"purity", "ari", "nmi", "acc"}
    assert all(type(v) is float for v in scores.values())


def test_accepts_lists():
    assert purity([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0


@pytest.mark.parametrize(
    "fn", [purity, adjusted_rand, nmi, unsupervised_accuracy, clustering_scores, contingency_table]
)
def test_input_validation(fn):
    with pytest.raises(ValueError, match="same length"):
        fn(np.array([0, 1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        fn(np.array([], dtype=int), np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"y_true must be a 1-D array.*\(3, 1\)"):
        fn(np.zeros((3, 1), dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="y_pred must be a 1-D array"):
        fn(np.zeros(3, dtype=int), np.zeros((3, 1), dtype=int))


# ----------------------------------------------------------------------------------------------------------
# Contingency tables


def test_contingency_table_hand_computed():
    ct = contingency_table(Y_TRUE, Y_PRED)
    assert isinstance(ct, ContingencyTable)
    np.testing.assert_array_equal(ct.counts, [[0, 2], [2, 0], [2, 0]])
    np.testing.assert_allclose(ct.table, [[0, 1], [1, 0], [1, 0]])
    assert ct.row_labels == [0, 1, 2]
    assert ct.col_labels == [0, 1]


def test_contingency_table_empty_clusters_are_zero_columns():
    # Like the paper's Table 3: five clusters, two of them never used.
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 2, 1, 1, 0, 0, 0, 2])
    ct = contingency_table(y_true, y_pred, n_clusters=5)
    assert ct.table.shape == (3, 5)
    assert ct.col_labels == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(
        ct.table,
        [[2 / 3, 0, 1 / 3, 0, 0], [0, 1, 0, 0, 0], [3 / 4, 0, 1 / 4, 0, 0]],
    )
    np.testing.assert_allclose(ct.table.sum(axis=1), 1.0)


def test_contingency_table_gap_in_cluster_indices_without_n_clusters():
    ct = contingency_table([0, 1, 1], [0, 3, 3])
    assert ct.col_labels == [0, 1, 2, 3]
    np.testing.assert_array_equal(ct.counts, [[1, 0, 0, 0], [0, 0, 0, 2]])


def test_contingency_table_rows_sum_to_one():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=200)
    y_pred = rng.integers(0, 7, size=200)
    ct = contingency_table(y_true, y_pred, n_clusters=8)
    assert ct.table.shape == (5, 8)
    np.testing.assert_allclose(ct.table.sum(axis=1), 1.0)
    assert ct.counts.sum() == 200
    np.testing.assert_array_equal(ct.counts[:, 7], 0)


def test_contingency_table_counts_when_not_normalised():
    ct = contingency_table(Y_TRUE, Y_PRED, normalize=False)
    np.testing.assert_array_equal(ct.table, [[0, 2], [2, 0], [2, 0]])
    assert ct.table.dtype == np.float64


def test_contingency_table_non_integer_cluster_labels():
    # A noise label such as -1 cannot index a column, so columns are the distinct values.
    ct = contingency_table([0, 0, 1], [-1, 4, 4])
    assert ct.col_labels == [-1, 4]
    np.testing.assert_allclose(ct.table, [[0.5, 0.5], [0, 1]])


def test_contingency_table_rejects_labels_outside_n_clusters():
    with pytest.raises(ValueError, match=r"cluster labels must lie in \[0, 2\)"):
        contingency_table([0, 1, 1], [0, 1, 2], n_clusters=2)
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        contingency_table([0, 1], [0, 0], n_clusters=0)
