"""Initialisation strategies: where the components start, one function per strategy, by name.

A strategy sees the (validated) training data and a RandomState and returns a :class:`Start` for
all ``n_init`` restarts at once: base locations, optionally base scales and mixture weights, and
optionally responsibilities on which every component's flow is pretrained before training
(see :func:`flowmix.training.pretrain`). The estimator turns the name given as ``init=`` into one
of :data:`INITIALISATIONS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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

# A cluster's base scale is at least this fraction of the data's own spread (per dimension): a
# cluster of one point, or one flat along a feature, still gets a usable base normal.
_MIN_RELATIVE_SCALE = 1e-3
# Neighbours of the kNN graph that spectral clustering cuts, and the points it embeds at most;
# larger sets are clustered on a random subsample and the rest labelled by their nearest neighbours.
SPECTRAL_NEIGHBOURS = 10
SPECTRAL_NEIGHBOUR_CYCLE = (10, 5, 20)
SPECTRAL_MAX_POINTS = 20000
# Graphs of at least this many neighbours link every point to itself, as scikit-learn's
# SpectralClustering does: on the moons of benchmarks/clustering_quality.py the spectral start
# went from ARI 0.70 / 0.92 to 0.80 / 0.97 (seeds 0, 1; 10 neighbours), circles, smile, rings
# and spirals stayed at 1.00. The loop takes the place of the farthest neighbour; on 5-neighbour
# graphs that blurred the cuts (smile 0.64, rings 0.39), so the sparsest graph has none.
SELF_LOOP_MIN_NEIGHBOURS = 10


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
        deviations, weights at their proportions, and the assignments themselves, on which every
        component's flow is pretrained.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.0, 5.4]])
    >>> start = start_from_responsibilities(X, np.eye(2)[[0, 0, 1, 1]][None])
    >>> start.means[0].tolist(), start.weights[0].tolist()
    ([[0.10000000149011612, 0.0], [5.0, 5.199999809265137]], [0.5, 0.5])
    """
    r = np.asarray(responsibilities, dtype=np.float64)
    mass, means, scales = _cluster_moments(X, r)
    weights = mass / mass.sum(axis=1, keepdims=True)
    # The responsibilities stay float64: the full-covariance start computes covariances from them.
    return Start(means.astype(np.float32), scales.astype(np.float32), weights, r)


def _cluster_moments(X: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mass (R, K), means (R, K, D), per-dimension scales (R, K, D)) of weighted clusters, float64."""
    mass = r.sum(axis=1)  # (R, K)
    safe = np.maximum(mass, 1e-12)[:, :, None]
    means = np.einsum("rnk,nd->rkd", r, X) / safe
    second = np.einsum("rnk,nd->rkd", r, X.astype(np.float64) ** 2) / safe
    floor = _MIN_RELATIVE_SCALE * np.maximum(X.std(axis=0), 1e-12)
    scales = np.maximum(np.sqrt(np.maximum(second - means**2, 0)), floor)
    # An empty cluster starts on the data's centre with the data's spread.
    empty = mass <= 1e-12
    means[empty] = X.mean(axis=0)
    scales[empty] = np.maximum(X.std(axis=0), floor)
    return mass, means, scales


def shrunk_covariances(X: np.ndarray, responsibilities: np.ndarray) -> np.ndarray:
    """Weighted cluster covariances, shrunk towards their diagonals: (R, K, D, D), float64.

    (n_k S_k + nu diag(scales_k^2)) / (n_k + nu) with nu = D + 1 pseudo-points, as a conjugate
    prior would give: a cluster of fewer points than dimensions (whose S_k is singular) gets a
    positive-definite covariance with its own per-dimension spread, while a large cluster keeps
    its sample covariance. The means and scales are those of :func:`start_from_responsibilities`.
    Only full-covariance starts need them (R x K products of N x D by D x D), so they are not
    part of a :class:`Start`.
    """
    r = np.asarray(responsibilities, dtype=np.float64)
    mass, means, scales = _cluster_moments(X, r)
    X64 = X.astype(np.float64)
    prior = X.shape[1] + 1.0
    covariances = np.empty((*means.shape, X.shape[1]))
    for i in range(r.shape[0]):
        for k in range(r.shape[2]):
            centred = X64 - means[i, k]
            scatter = (centred * r[i, :, k, None]).T @ centred  # n_k S_k
            diagonal = np.diag(scales[i, k].astype(np.float64) ** 2)
            covariances[i, k] = (scatter + prior * diagonal) / (mass[i, k] + prior)
    return covariances


def one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    """(R, N) integer labels as (R, N, K) hard responsibilities."""
    return np.eye(n_components, dtype=np.float32)[labels]


def kmeans_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Clusters of k-means (k-means++ seeding, one draw per restart), each component pretrained on its own."""
    from sklearn.cluster import KMeans

    labels = np.stack(
        [
            KMeans(n_components, n_init=1, random_state=rng.randint(2**31 - 1)).fit_predict(X)
            for _ in range(n_init)
        ]
    )
    return start_from_responsibilities(X, one_hot(labels, n_components))


def fit_full_gmm(X: np.ndarray, n_components: int, seed: int, n_runs: int = 1):
    """A full-covariance GaussianMixture fitted to X (float64), or None if EM cannot fit one.

    With ``n_runs`` > 1, EM runs from that many k-means starts and the most likely fit is kept.

    A collapsed component's covariance is regularised in proportion to the data's spread; if EM
    still finds an ill-defined covariance, it is retried once with a regulariser 1000 times larger.
    """
    from sklearn.mixture import GaussianMixture

    X64 = X.astype(np.float64)
    regularisation = 1e-6 * max(float(X64.var(axis=0).mean()), 1e-12)
    for reg in (regularisation, 1e3 * regularisation):
        try:
            return GaussianMixture(
                n_components, covariance_type="full", reg_covar=reg, n_init=n_runs, random_state=seed
            ).fit(X64)
        except ValueError:  # ill-defined covariance even so
            continue
    return None


def gmm_posteriors(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Posteriors of a full-covariance Gaussian mixture (one EM run from k-means per restart)."""
    from sklearn.cluster import KMeans

    posteriors = []
    for _ in range(n_init):
        seed = rng.randint(2**31 - 1)
        gmm = fit_full_gmm(X, n_components, seed)
        if gmm is not None:
            posteriors.append(gmm.predict_proba(X.astype(np.float64)))
        else:
            posteriors.append(
                one_hot(KMeans(n_components, n_init=1, random_state=seed).fit_predict(X), n_components)
            )
    return start_from_responsibilities(X, np.stack(posteriors))


# EM runs of which "gmm-best" keeps the most likely: the count scikit-learn users compare with.
BEST_GMM_RUNS = 10
# Points those runs are fitted to at most; larger data are subsampled and every point then gets
# its posteriors. Ten full-covariance runs on 70 000 x 50 took 222 s on a 2-core CPU, while
# 20 000 points still give each of 10 components some 2 000 for its 1 325 parameters.
BEST_GMM_FIT_POINTS = 20_000


def best_gmm_posteriors(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Posteriors of the most likely of ``BEST_GMM_RUNS`` full-covariance EM runs, the same for every restart.

    One EM run from k-means often stops in a poor local optimum (two clusters shared by three
    components); the best of several is the Gaussian mixture a user would compare with. On
    more than ``BEST_GMM_FIT_POINTS`` points the runs fit a random subset of that many.
    """
    seed = rng.randint(2**31 - 1)
    fitted = X
    if len(X) > BEST_GMM_FIT_POINTS:
        fitted = X[np.sort(np.random.RandomState(seed).choice(len(X), BEST_GMM_FIT_POINTS, replace=False))]
    gmm = fit_full_gmm(fitted, n_components, seed, BEST_GMM_RUNS)
    if gmm is None:
        return gmm_posteriors(X, n_init, n_components, rng)
    posteriors = gmm.predict_proba(X.astype(np.float64))
    return start_from_responsibilities(X, np.repeat(posteriors[None], n_init, axis=0))


def spectral_embedding(X: np.ndarray, n_components: int, seed: int, n_neighbours: int = 10) -> np.ndarray:
    """Spectral embedding of the symmetric kNN connectivity graph of X (sparse eigensolver).

    Rows are scaled to unit length (Ng, Jordan and Weiss, 2001) so that k-means on the embedding
    sees directions rather than distances from the origin (the measured effect is in
    docs/user_guide/recipe.rst). Graphs of :data:`SELF_LOOP_MIN_NEIGHBOURS` neighbours or more link
    every point to itself.
    """
    from sklearn.manifold import spectral_embedding as embed
    from sklearn.neighbors import kneighbors_graph

    self_loops = n_neighbours >= SELF_LOOP_MIN_NEIGHBOURS
    graph = kneighbors_graph(X, min(n_neighbours, len(X) - 1), include_self=self_loops)
    graph = 0.5 * (graph + graph.T)
    with warnings.catch_warnings():
        # Well-separated clusters leave the kNN graph disconnected: then the embedding is exact.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        maps = embed(graph, n_components=n_components, drop_first=False, random_state=seed)
    return maps / np.maximum(np.linalg.norm(maps, axis=1, keepdims=True), 1e-12)


def spectral_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Spectral clustering on kNN graphs: restarts cycle through 10, 5 and 20 neighbours.

    One graph's cut can bridge two clusters that another neighbourhood size keeps apart (on the
    paper's smile, 10 neighbours join an eye to the mouth on some subsamples where 5 do not), so
    the restarts see different graphs, each embedded once and cut by k-means. Up to
    :data:`SPECTRAL_MAX_POINTS` points are embedded (a random subsample of larger sets, whose
    other points take the label of their nearest embedded neighbours), so the cost stays that of
    a sparse eigenproblem on a bounded graph.
    """
    from sklearn.cluster import KMeans
    from sklearn.neighbors import KNeighborsClassifier

    if n_components == 1 or len(X) <= max(n_components, 2):
        return kmeans_partition(X, n_init, n_components, rng)  # too few points for a graph
    subset = np.arange(len(X))
    if len(X) > SPECTRAL_MAX_POINTS:
        subset = np.sort(rng.choice(len(X), SPECTRAL_MAX_POINTS, replace=False))
    maps: dict[int, np.ndarray] = {}
    labels = []
    for i in range(n_init):
        neighbours = SPECTRAL_NEIGHBOUR_CYCLE[i % len(SPECTRAL_NEIGHBOUR_CYCLE)]
        if neighbours not in maps:
            maps[neighbours] = spectral_embedding(X[subset], n_components, rng.randint(2**31 - 1), neighbours)
        part = KMeans(n_components, n_init=10, random_state=rng.randint(2**31 - 1)).fit_predict(
            maps[neighbours]
        )
        if len(subset) < len(X):
            part = KNeighborsClassifier(SPECTRAL_NEIGHBOURS).fit(X[subset], part).predict(X)
        labels.append(part)
    return start_from_responsibilities(X, one_hot(np.stack(labels), n_components))


# Gini index thresholds that Genie's restarts cycle through: 0.3 is the published default; larger
# values force more even cluster sizes, which joins clusters of points that a smaller one left as
# fringes of a larger cluster.
GENIE_THRESHOLD_CYCLE = (0.3, 0.5, 0.7)


def genie_partition(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Clusters of Genie (:mod:`flowmix.genie`); restarts cycle through Gini thresholds 0.3, 0.5 and 0.7.

    Genie cuts the minimum spanning tree, so it finds chains, spirals and nested shapes that a
    graph's spectrum blurs, while its limit on uneven cluster sizes keeps outliers from taking
    clusters of their own.
    """
    from flowmix.genie import genie

    if n_components == 1 or len(X) <= max(n_components, 2):
        return kmeans_partition(X, n_init, n_components, rng)
    found: dict[float, np.ndarray] = {}
    labels = []
    for i in range(n_init):
        threshold = GENIE_THRESHOLD_CYCLE[i % len(GENIE_THRESHOLD_CYCLE)]
        if threshold not in found:
            found[threshold] = genie(X, n_components, threshold, rng=rng)
        labels.append(found[threshold])
    return start_from_responsibilities(X, one_hot(np.stack(labels), n_components))


# The strategies that "auto" cycles through, one per restart: shapes that only a graph cut finds,
# overlapping ellipses, and compact blobs.
AUTO_STRATEGIES = ("spectral", "gmm", "kmeans-partition")


def automatic(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Restarts start from spectral clustering, a GMM and k-means in turn; selection keeps the best.

    Examples
    --------
    >>> X = np.random.RandomState(0).rand(60, 2)
    >>> start = automatic(X, 3, 2, np.random.RandomState(0))
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
    from sklearn.cluster import KMeans

    centres = [
        KMeans(n_components, n_init=1, random_state=rng.randint(2**31 - 1)).fit(X).cluster_centers_
        for _ in range(n_init)
    ]
    return Start(np.stack(centres).astype(np.float32))


INITIALISATIONS: dict[str, Initialisation] = {
    "box": bounding_box,
    "unit": unit_cube,
    "kmeans": kmeans_centres,
    "kmeans-partition": kmeans_partition,
    "gmm": gmm_posteriors,
    "gmm-best": best_gmm_posteriors,
    "spectral": spectral_partition,
    "genie": genie_partition,
    "auto": automatic,
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
