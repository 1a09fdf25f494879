"""Initialisation strategies: where the components start, one function per strategy, by name.

A strategy sees the (validated) training data and a RandomState and returns a :class:`Start` for
all ``n_init`` restarts at once: base locations, optionally base scales and mixture weights, and
optionally responsibilities on which every component's flow is pretrained before training
(see :func:`flowmix.training.pretrain`). The estimator turns the name given as ``init=`` into one
of :data:`INITIALISATIONS`. The cluster starts place the components on partitions of the cheap
clusterers of :mod:`flowmix.clustering`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Re-exported (``X as X``): the estimator, tests and benchmarks import these from here.
from flowmix.clustering import SPECTRAL_NEIGHBOUR_CYCLE as SPECTRAL_NEIGHBOUR_CYCLE
from flowmix.clustering import (
    best_gmm_responsibilities,
    cluster_normals,
    genie_labels,
    gmm_responsibilities,
    kmeans_centroids,
    kmeans_labels,
    spectral_labels,
)
from flowmix.clustering import one_hot as one_hot
from flowmix.clustering import shrunk_covariances as shrunk_covariances


@dataclass
class Start:
    """Where the R restarts x K components start.

    Attributes
    ----------
    means : ndarray of shape (R, K, D)
        Base locations.
    scales : ndarray of shape (R, K, D) or None
        Base standard deviations, or None for the estimator's ``base_std``.
    weights : ndarray of shape (R, K) or None
        Mixture weights, or None for uniform weights.
    responsibilities : ndarray of shape (R, N, K) or None
        Soft or hard assignments of the training points to pretrain the flows on, or None for
        no pretraining.
    """

    means: np.ndarray
    scales: np.ndarray | None = None
    weights: np.ndarray | None = None
    responsibilities: np.ndarray | None = None


Initialisation = Callable[[np.ndarray, int, int, np.random.RandomState], Start]


def start_from_responsibilities(X: np.ndarray, responsibilities: np.ndarray) -> Start:
    """A start located, scaled and weighted from (soft or hard) cluster assignments.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        The training points.
    responsibilities : ndarray of shape (R, N, K)
        Assignments of the points to the components, rows summing to 1.

    Returns
    -------
    Start
        Base means at the clusters' (weighted) means, base scales at their per-dimension standard
        deviations, weights at their proportions (:func:`flowmix.clustering.cluster_normals`), and
        the assignments themselves, on which every component's flow is pretrained.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.0, 5.4]])
    >>> start = start_from_responsibilities(X, np.eye(2)[[0, 0, 1, 1]][None])
    >>> start.means[0].tolist(), start.weights[0].tolist()
    ([[0.10000000149011612, 0.0], [5.0, 5.199999809265137]], [0.5, 0.5])
    """
    r = np.asarray(responsibilities, dtype=np.float64)
    # The responsibilities stay float64: the full-covariance start computes covariances from them.
    return Start(*cluster_normals(X, r), r)


def kmeans_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Clusters of k-means (k-means++ seeding, one draw per restart), each component pretrained on its own."""
    return start_from_responsibilities(X, one_hot(kmeans_labels(X, n_components, rng, n_init), n_components))


def gmm_posteriors(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Posteriors of a full-covariance Gaussian mixture (one EM run from k-means per restart)."""
    return start_from_responsibilities(X, gmm_responsibilities(X, n_components, rng, n_init))


def best_gmm_posteriors(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Posteriors of the most likely of several full-covariance EM runs, the same for every restart.

    See :func:`flowmix.clustering.best_gmm_responsibilities`: the best of
    :data:`~flowmix.clustering.BEST_GMM_RUNS` runs is the Gaussian mixture a user would compare with.
    """
    return start_from_responsibilities(X, best_gmm_responsibilities(X, n_components, rng, n_init))


def spectral_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Clusters of spectral clustering on kNN graphs: restarts cycle through 10, 5 and 20 neighbours.

    See :func:`flowmix.clustering.spectral_labels`: different graphs for different restarts, each
    embedded once.
    """
    return start_from_responsibilities(
        X, one_hot(spectral_labels(X, n_components, rng, n_init), n_components)
    )


def genie_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Clusters of Genie (:mod:`flowmix.genie`); restarts cycle through Gini thresholds 0.3, 0.5 and 0.7.

    See :func:`flowmix.clustering.genie_labels`: Genie's cut of the minimum spanning tree finds
    chains, spirals and nested shapes, and its limit on uneven cluster sizes keeps outliers from
    taking clusters of their own.
    """
    return start_from_responsibilities(X, one_hot(genie_labels(X, n_components, rng, n_init), n_components))


# The strategies that "spectral-gmm-kmeans" (what init="auto" stands for) cycles through, one
# per restart: shapes that only a graph cut finds, overlapping ellipses, and compact blobs.
AUTO_STRATEGIES = ("spectral", "gmm", "kmeans-partition")


def cycled_start(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Restarts start from spectral clustering, a GMM and k-means in turn; selection keeps the best.

    Examples
    --------
    >>> X = np.random.RandomState(0).rand(60, 2)
    >>> start = cycled_start(X, 3, 2, np.random.RandomState(0))
    >>> start.responsibilities.shape
    (3, 60, 2)
    """
    counts = [len(range(i, n_init, len(AUTO_STRATEGIES))) for i in range(len(AUTO_STRATEGIES))]
    starts = [
        INITIALISATIONS[name](X, c, n_components, rng)
        for name, c in zip(AUTO_STRATEGIES, counts, strict=True)
        if c
    ]
    order = np.argsort(
        np.concatenate([np.arange(i, n_init, len(AUTO_STRATEGIES)) for i, c in enumerate(counts) if c])
    )
    return Start(
        *(
            np.concatenate([getattr(s, f) for s in starts])[order]
            for f in ("means", "scales", "weights", "responsibilities")
        )
    )


def from_user_assignments(X: np.ndarray, assignments: np.ndarray, n_init: int, n_components: int) -> Start:
    """A start from labels (N,) or responsibilities (N, K) given by the user, the same for every restart."""
    assignments = np.asarray(assignments)
    n = len(X)
    if assignments.ndim == 1:
        if assignments.shape[0] != n or not np.issubdtype(assignments.dtype, np.integer):
            raise ValueError(
                f"init given as labels must be an integer array of shape ({n},), one label per training point; "
                f"got dtype {assignments.dtype} and shape {assignments.shape}."
            )
        if assignments.min() < 0 or assignments.max() >= n_components:
            raise ValueError(f"init labels must lie in 0..{n_components - 1} (n_components={n_components}).")
        r = one_hot(assignments, n_components)
    elif assignments.ndim == 2:
        if assignments.shape != (n, n_components):
            raise ValueError(
                f"init given as responsibilities must have shape (n_samples, n_components) = ({n}, {n_components}); "
                f"got {assignments.shape}."
            )
        r = assignments.astype(np.float64)
        if not np.isfinite(r).all() or (r < 0).any() or not np.allclose(r.sum(axis=1), 1, atol=1e-4):
            raise ValueError("init responsibilities must be finite, non-negative, and sum to 1 in every row.")
    else:
        raise ValueError(
            f"init as an array must be labels (N,) or responsibilities (N, K); got shape {assignments.shape}."
        )
    return start_from_responsibilities(X, np.repeat(r[None], n_init, axis=0))


def unit_cube(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Base means drawn from U(0, 1)^D whatever the data: the paper's rule.

    Examples
    --------
    >>> start = unit_cube(np.zeros((5, 2)), 3, 4, np.random.RandomState(0))
    >>> start.means.shape
    (3, 4, 2)
    """
    return Start(rng.uniform(size=(n_init, n_components, X.shape[1])).astype(np.float32))


def bounding_box(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Base means drawn uniformly in the data's bounding box (``"unit"`` on min-max scaled data)."""
    low, high = X.min(axis=0), X.max(axis=0)
    shape = (n_init, n_components, X.shape[1])
    return Start((low + (high - low) * rng.uniform(size=shape)).astype(np.float32))


def kmeans_centres(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Base means at k-means centroids, one k-means run (k-means++ seeding) per restart."""
    return Start(kmeans_centroids(X, n_components, rng, n_init).astype(np.float32))


INITIALISATIONS: dict[str, Initialisation] = {
    "box": bounding_box,
    "unit": unit_cube,
    "kmeans": kmeans_centres,
    "kmeans-partition": kmeans_partition,
    "gmm": gmm_posteriors,
    "gmm-best": best_gmm_posteriors,
    "spectral": spectral_partition,
    "genie": genie_partition,
    "spectral-gmm-kmeans": cycled_start,
}


def initialise(
    init: str | np.ndarray, X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState
) -> Start:
    """Run strategy ``init`` (a name, or the user's labels/responsibilities) and check its shapes."""
    if not isinstance(init, str):
        return from_user_assignments(X, init, n_init, n_components)
    if init not in INITIALISATIONS:
        raise ValueError(f"init must be one of {list(INITIALISATIONS)} or an array of labels, got {init!r}.")
    start = INITIALISATIONS[init](X, n_init, n_components, rng)
    shape = (n_init, n_components, X.shape[1])
    if start.means.shape != shape or (start.scales is not None and start.scales.shape != shape):
        raise RuntimeError(f"init {init!r} returned means/scales not of shape {shape}.")
    return start
