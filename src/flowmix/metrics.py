"""Clustering metrics: pure functions of ``(y_true, y_pred)``.

These are the four scores of the paper's Table 1 (purity, ARI, NMI, unsupervised accuracy) and the
row-normalised contingency tables of its Tables 2-4. Every function takes two 1-D label arrays of the
same, non-zero length. Labels need not be ``0..k-1``: true classes and clusters are matched by value,
clusters may be empty, and there may be more (or fewer) clusters than classes.

Example
-------
>>> import numpy as np
>>> y_true = np.array([0, 0, 1, 1, 2, 2])
>>> y_pred = np.array([1, 1, 0, 0, 0, 0])
>>> round(purity(y_true, y_pred), 4), round(unsupervised_accuracy(y_true, y_pred), 4)
(0.6667, 0.6667)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "ContingencyTable",
    "adjusted_rand",
    "clustering_scores",
    "contingency_table",
    "nmi",
    "purity",
    "unsupervised_accuracy",
]


def _check_labels(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of label vectors and return them as numpy arrays.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)

    Returns
    -------
    y_true, y_pred : ndarray, shape (N,)

    Raises
    ------
    ValueError
        If either is not 1-D, they differ in length, or they are empty.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D array of labels, got an array of shape {y.shape}; "
                "flatten it (e.g. y.ravel()) first"
            )
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.shape[0]} and {y_pred.shape[0]}"
        )
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty; clustering scores need at least one sample")
    return y_true, y_pred


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Contingency counts over the classes and clusters that occur.

    Returns
    -------
    counts : ndarray of int64, shape (n_classes, n_clusters)
        ``counts[i, j]`` is the number of samples of the i-th smallest class in the j-th smallest cluster.
    """
    _, ti = np.unique(y_true, return_inverse=True)
    _, pi = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(counts, (ti.ravel(), pi.ravel()), 1)
    return counts


def purity(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Purity: each cluster votes for its majority class.

    ``purity = (1/N) * sum_clusters max_class |cluster ∩ class|``. Several clusters may vote for the
    same class, so purity rewards over-segmentation (N singleton clusters score 1).

    Parameters
    ----------
    y_true : array-like, shape (N,)
        True class labels.
    y_pred : array-like, shape (N,)
        Cluster labels.

    Returns
    -------
    float
        In ``(0, 1]``; 1 when every cluster holds a single class.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    counts = _counts(y_true, y_pred)
    return float(counts.max(axis=0).sum() / y_true.shape[0])


def unsupervised_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unsupervised clustering accuracy (ACC) under the best one-to-one cluster-to-class matching.

    The matching maximises the number of correctly labelled samples and is found with the Hungarian
    algorithm on the contingency matrix. The matrix may be rectangular: with more clusters than classes
    the unmatched clusters count as wrong, and with fewer, the unmatched classes do.

    Parameters
    ----------
    y_true : array-like, shape (N,)
        True class labels.
    y_pred : array-like, shape (N,)
        Cluster labels.

    Returns
    -------
    float
        In ``(0, 1]``; 1 when the clusters equal the classes up to renaming.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    counts = _counts(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / y_true.shape[0])


def adjusted_rand(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index (scikit-learn's ``adjusted_rand_score``).

    Parameters
    ----------
    y_true : array-like, shape (N,)
    y_pred : array-like, shape (N,)

    Returns
    -------
    float
        1 for identical partitions, about 0 for random ones, can be negative.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised mutual information (scikit-learn's ``normalized_mutual_info_score`` defaults).

    The default normalisation is the arithmetic mean of the two entropies, as in the paper's protocol.

    Parameters
    ----------
    y_true : array-like, shape (N,)
    y_pred : array-like, shape (N,)

    Returns
    -------
    float
        In ``[0, 1]``.
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return float(normalized_mutual_info_score(y_true, y_pred))


def clustering_scores(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All four scores of the paper's Table 1.

    Parameters
    ----------
    y_true : array-like, shape (N,)
    y_pred : array-like, shape (N,)

    Returns
    -------
    dict
        Keys ``"purity"``, ``"ari"``, ``"nmi"``, ``"acc"``; plain Python floats (JSON-ready).
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    return {
        "purity": purity(y_true, y_pred),
        "ari": adjusted_rand(y_true, y_pred),
        "nmi": nmi(y_true, y_pred),
        "acc": unsupervised_accuracy(y_true, y_pred),
    }


@dataclass(frozen=True)
class ContingencyTable:
    """A contingency table of true classes (rows) against clusters (columns).

    Attributes
    ----------
    table : ndarray of float64, shape (n_classes, n_clusters)
        Row-normalised fractions (each row sums to 1) or raw counts, as requested.
    counts : ndarray of int64, shape (n_classes, n_clusters)
        Raw counts, always available.
    row_labels : list
        The true class of each row, sorted.
    col_labels : list
        The cluster of each column, sorted; empty clusters have zero columns.
    """

    table: np.ndarray
    counts: np.ndarray
    row_labels: list
    col_labels: list


def _is_integer_array(y: np.ndarray) -> bool:
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return True
    # Float arrays holding whole numbers (e.g. labels read from a CSV) behave like ints.
    return bool(np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)))


def contingency_table(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_clusters: int | None = None,
    normalize: bool = True,
) -> ContingencyTable:
    """Contingency table of true labels against clusters, as in the paper's Tables 2-4.

    Rows are the true classes that occur (sorted). Columns are clusters ``0..n_clusters-1``, so that
    clusters a model never used appear as zero columns (the paper's Table 3 has two).

    Parameters
    ----------
    y_true : array-like, shape (N,)
        True class labels.
    y_pred : array-like, shape (N,)
        Cluster labels. With ``n_clusters`` they must be integers in ``[0, n_clusters)``.
    n_clusters : int, optional
        Number of clusters the model had. If omitted and the clusters are non-negative integers, the
        columns are ``0..max(y_pred)``; otherwise (e.g. a noise label ``-1``) the columns are the
        distinct values of ``y_pred``.
    normalize : bool, default True
        Divide each row by its total, so that entry ``(i, j)`` is the fraction of class ``i`` put into
        cluster ``j``. If False, ``table`` holds the raw counts (as floats).

    Returns
    -------
    ContingencyTable
        ``table`` and ``counts`` of shape (n_classes, n_columns) plus the row and column labels.

    Raises
    ------
    ValueError
        For invalid label vectors, a non-positive ``n_clusters``, or cluster labels outside
        ``[0, n_clusters)``.

    Examples
    --------
    >>> ct = contingency_table([0, 0, 1, 1], [0, 2, 2, 2], n_clusters=4)
    >>> ct.table
    array([[0.5, 0. , 0.5, 0. ],
           [0. , 0. , 1. , 0. ]])
    """
    y_true, y_pred = _check_labels(y_true, y_pred)
    row_values, ti = np.unique(y_true, return_inverse=True)

    if n_clusters is not None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        if not _is_integer_array(y_pred):
            raise ValueError(
                f"with n_clusters, y_pred must hold integer cluster indices, got dtype {y_pred.dtype}"
            )
        lo, hi = int(y_pred.min()), int(y_pred.max())
        if lo < 0 or hi >= n_clusters:
            raise ValueError(
                f"cluster labels must lie in [0, {n_clusters}) for n_clusters={n_clusters}, "
                f"got labels from {lo} to {hi}"
            )
        col_values = np.arange(n_clusters)
        pi = y_pred.astype(np.int64)
    elif _is_integer_array(y_pred) and y_pred.min() >= 0:
        col_values = np.arange(int(y_pred.max()) + 1)
        pi = y_pred.astype(np.int64)
    else:
        col_values, pi = np.unique(y_pred, return_inverse=True)

    counts = np.zeros((row_values.shape[0], col_values.shape[0]), dtype=np.int64)
    np.add.at(counts, (ti.ravel(), np.asarray(pi).ravel()), 1)
    if normalize:
        # Every row has at least one sample because rows are the classes that occur.
        table = counts / counts.sum(axis=1, keepdims=True)
    else:
        table = counts.astype(np.float64)
    return ContingencyTable(
        table=table,
        counts=counts,
        row_labels=row_values.tolist(),
        col_labels=col_values.tolist(),
    )
