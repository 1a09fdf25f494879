"""The cheap clusterers (Genie, spectral clustering, Gaussian mixtures, k-means) of starts, rules and recipes.

Every clusterer takes the points (N, D), the number of clusters K, a RandomState and how many
partitions to make, and returns them as labels (R, N) or responsibilities (R, N, K). The starts
of :mod:`flowmix.init` place the components on them; the selection rules of
:mod:`flowmix.selection` and the recipes of :mod:`flowmix.recipes` score partitions with the same
kNN graphs, spectral embeddings and Gaussian mixtures. Sets of more than :data:`MAX_FIT_POINTS`
points are clustered on a random subsample, and the other points labelled from it.
"""

from __future__ import annotations

import warnings

import numpy as np

from flowmix.genie import genie

#: Points a clusterer is fitted to at most: larger sets are clustered on a random subsample and
#: every other point labelled from it (its nearest subsample points' cluster, or a Gaussian
#: mixture's posteriors). It bounds Genie's dense spanning tree (N^2 D operations), the graph that
#: spectral clustering embeds, the ten EM runs of the best Gaussian mixture (on 70 000 x 50 they
#: took 222 s on a 2-core CPU, while 20 000 points still give each of 10 components some 2 000 for
#: its 1 325 parameters) and the reference Gaussian mixture of the ``"likelihood-or-cut"``
#: selection rule.
MAX_FIT_POINTS = 20_000
#: Neighbours of the kNN graph that labels the points outside spectral clustering's subsample, and
#: of the graph whose embedding scores partitions (:func:`flowmix.selection.spectral_inertias`).
SPECTRAL_NEIGHBOURS = 10
#: Neighbours of the kNN graphs that spectral clustering's partitions cut in turn.
SPECTRAL_NEIGHBOUR_CYCLE = (10, 5, 20)
#: Graphs of at least this many neighbours link every point to itself, as scikit-learn's
#: SpectralClustering does: on the moons of benchmarks/clustering_quality.py the spectral start
#: went from ARI 0.70 / 0.92 to 0.80 / 0.97 (seeds 0, 1; 10 neighbours), circles, smile, rings
#: and spirals stayed at 1.00. The loop takes the place of the farthest neighbour; on 5-neighbour
#: graphs that blurred the cuts (smile 0.64, rings 0.39), so the sparsest graph has none.
SELF_LOOP_MIN_NEIGHBOURS = 10
#: EM runs of which the best Gaussian mixture is the most likely: the count scikit-learn users
#: compare with.
BEST_GMM_RUNS = 10
#: Gini index thresholds that Genie's partitions cycle through: 0.3 is the published default;
#: larger values force more even cluster sizes, which joins clusters of points that a smaller one
#: left as fringes of a larger cluster.
GENIE_THRESHOLD_CYCLE = (0.3, 0.5, 0.7)
# A cluster's scale is at least this fraction of the data's own spread (per dimension): a cluster
# of one point, or one flat along a feature, still gets a usable normal.
_MIN_RELATIVE_SCALE = 1e-3


def subsample(n_points: int, rng: np.random.RandomState) -> np.ndarray:
    """Indices of the points a clusterer fits: all of them, or a sorted random :data:`MAX_FIT_POINTS`.

    ``rng`` is drawn from only when there are more points than that.

    Examples
    --------
    >>> subsample(4, np.random.RandomState(0)).tolist()
    [0, 1, 2, 3]
    """
    if n_points > MAX_FIT_POINTS:
        return np.sort(rng.choice(n_points, MAX_FIT_POINTS, replace=False))
    return np.arange(n_points)


def knn_graph(X: np.ndarray, n_neighbours: int, self_loops: bool = False):
    """The symmetric kNN connectivity graph of X, ``G + G^T`` (sparse CSR; an edge both ways weighs 2).

    Every point links to its ``n_neighbours`` nearest others (all of them, in a set of fewer
    points); with ``self_loops`` a point counts as its own nearest neighbour, in place of the
    farthest one.

    Examples
    --------
    >>> knn_graph(np.array([[0.0], [1.0], [3.0]]), 1).toarray().tolist()
    [[0.0, 2.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(X, min(n_neighbours, len(X) - 1), include_self=self_loops)
    return (graph + graph.T).tocsr()


def one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    """(R, N) integer labels as (R, N, K) hard responsibilities."""
    return np.eye(n_components, dtype=np.float32)[labels]


def _cluster_moments(X: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mass (R, K), means (R, K, D), per-dimension scales (R, K, D)) of weighted clusters, float64."""
    mass = r.sum(axis=1)  # (R, K)
    safe = np.maximum(mass, 1e-12)[:, :, None]
    means = np.einsum("rnk,nd->rkd", r, X) / safe
    second = np.einsum("rnk,nd->rkd", r, X.astype(np.float64) ** 2) / safe
    floor = _MIN_RELATIVE_SCALE * np.maximum(X.std(axis=0), 1e-12)
    scales = np.maximum(np.sqrt(np.maximum(second - means**2, 0)), floor)
    # An empty cluster sits on the data's centre with the data's spread.
    empty = mass <= 1e-12
    means[empty] = X.mean(axis=0)
    scales[empty] = np.maximum(X.std(axis=0), floor)
    return mass, means, scales


def cluster_normals(X: np.ndarray, responsibilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (R, K, D), per-dimension scales (R, K, D) and weights (R, K) of (soft or hard) clusters.

    The clusters' (weighted) means and standard deviations, as float32, and their proportions,
    as float64. A scale is at least a thousandth of the data's spread in that dimension; an empty
    cluster gets the data's mean and spread.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0], [5.0, 5.4]])
    >>> means, scales, weights = cluster_normals(X, np.eye(2)[[0, 0, 1, 1]][None])
    >>> means[0].tolist(), weights[0].tolist()
    ([[0.10000000149011612, 0.0], [5.0, 5.199999809265137]], [0.5, 0.5])
    """
    r = np.asarray(responsibilities, dtype=np.float64)
    mass, means, scales = _cluster_moments(X, r)
    weights = mass / mass.sum(axis=1, keepdims=True)
    return means.astype(np.float32), scales.astype(np.float32), weights


def shrunk_covariances(X: np.ndarray, responsibilities: np.ndarray) -> np.ndarray:
    """Weighted cluster covariances, shrunk towards their diagonals: (R, K, D, D), float64.

    (n_k S_k + nu diag(scales_k^2)) / (n_k + nu) with nu = D + 1 pseudo-points, as a conjugate
    prior would give: a cluster of fewer points than dimensions (whose S_k is singular) gets a
    positive-definite covariance with its own per-dimension spread, while a large cluster keeps
    its sample covariance. The means and scales are those of :func:`cluster_normals`. Only
    full-covariance starts and the Gaussian fit of a partition need them (R x K products of
    N x D by D x D), so they are not part of a :class:`flowmix.init.Start`.
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


def _kmeans(n_components: int, seed: int):
    """One k-means run (k-means++ seeding) with this seed."""
    from sklearn.cluster import KMeans

    return KMeans(n_components, n_init=1, random_state=seed)


def kmeans_labels(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, N) labels of k-means, one run (k-means++ seeding, seed drawn from ``rng``) per partition."""
    return np.stack(
        [_kmeans(n_components, rng.randint(2**31 - 1)).fit_predict(X) for _ in range(n_partitions)]
    )


def kmeans_centroids(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, K, D) centroids of k-means, one run (k-means++ seeding, seed drawn from ``rng``) per partition."""
    return np.stack(
        [_kmeans(n_components, rng.randint(2**31 - 1)).fit(X).cluster_centers_ for _ in range(n_partitions)]
    )


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


def gmm_responsibilities(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, N, K) posteriors of a full-covariance Gaussian mixture, one EM run from k-means per partition.

    Where EM cannot fit one, the partition is that run's k-means clusters (hard responsibilities).
    """
    posteriors = []
    for _ in range(n_partitions):
        seed = rng.randint(2**31 - 1)
        gmm = fit_full_gmm(X, n_components, seed)
        if gmm is not None:
            posteriors.append(gmm.predict_proba(X.astype(np.float64)))
        else:
            posteriors.append(one_hot(_kmeans(n_components, seed).fit_predict(X), n_components))
    return np.stack(posteriors)


def best_gmm_responsibilities(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, N, K) posteriors of the likeliest of :data:`BEST_GMM_RUNS` full-covariance EM runs, R times the same.

    One EM run from k-means often stops in a poor local optimum (two clusters shared by three
    components); the best of several is the Gaussian mixture a user would compare with. On more
    than :data:`MAX_FIT_POINTS` points the runs fit a random subset of that many, and every point
    gets its posteriors. Where EM cannot fit one, :func:`gmm_responsibilities` goes on with ``rng``.
    """
    seed = rng.randint(2**31 - 1)
    gmm = fit_full_gmm(X[subsample(len(X), np.random.RandomState(seed))], n_components, seed, BEST_GMM_RUNS)
    if gmm is None:
        return gmm_responsibilities(X, n_components, rng, n_partitions)
    posteriors = gmm.predict_proba(X.astype(np.float64))
    return np.repeat(posteriors[None], n_partitions, axis=0)


def spectral_embedding(X: np.ndarray, n_components: int, seed: int, n_neighbours: int = 10) -> np.ndarray:
    """Spectral embedding of the symmetric kNN connectivity graph of X (sparse eigensolver).

    Rows are scaled to unit length (Ng, Jordan and Weiss, 2001) so that k-means on the embedding
    sees directions rather than distances from the origin (the measured effect is in
    docs/user_guide/recipe.rst). Graphs of :data:`SELF_LOOP_MIN_NEIGHBOURS` neighbours or more link
    every point to itself.
    """
    from sklearn.manifold import spectral_embedding as embed

    graph = 0.5 * knn_graph(X, n_neighbours, self_loops=n_neighbours >= SELF_LOOP_MIN_NEIGHBOURS)
    with warnings.catch_warnings():
        # Well-separated clusters leave the kNN graph disconnected: then the embedding is exact.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        maps = embed(graph, n_components=n_components, drop_first=False, random_state=seed)
    return maps / np.maximum(np.linalg.norm(maps, axis=1, keepdims=True), 1e-12)


def spectral_labels(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, N) labels of spectral clustering on kNN graphs; the partitions cycle through 10, 5 and 20 neighbours.

    One graph's cut can bridge two clusters that another neighbourhood size keeps apart (on the
    paper's smile, 10 neighbours join an eye to the mouth on some subsamples where 5 do not), so
    the partitions see different graphs (:data:`SPECTRAL_NEIGHBOUR_CYCLE`), each embedded once and
    cut by k-means. Up to :data:`MAX_FIT_POINTS` points are embedded (a random subsample of larger
    sets, whose other points take the label of their nearest embedded neighbours), so the cost
    stays that of a sparse eigenproblem on a bounded graph. One cluster, or too few points for a
    graph: k-means.
    """
    from sklearn.cluster import KMeans
    from sklearn.neighbors import KNeighborsClassifier

    if n_components == 1 or len(X) <= max(n_components, 2):
        return kmeans_labels(X, n_components, rng, n_partitions)
    subset = subsample(len(X), rng)
    maps: dict[int, np.ndarray] = {}
    labels = []
    for i in range(n_partitions):
        neighbours = SPECTRAL_NEIGHBOUR_CYCLE[i % len(SPECTRAL_NEIGHBOUR_CYCLE)]
        if neighbours not in maps:
            maps[neighbours] = spectral_embedding(X[subset], n_components, rng.randint(2**31 - 1), neighbours)
        part = KMeans(n_components, n_init=10, random_state=rng.randint(2**31 - 1)).fit_predict(
            maps[neighbours]
        )
        if len(subset) < len(X):
            part = KNeighborsClassifier(SPECTRAL_NEIGHBOURS).fit(X[subset], part).predict(X)
        labels.append(part)
    return np.stack(labels)


def genie_labels(
    X: np.ndarray, n_components: int, rng: np.random.RandomState, n_partitions: int = 1
) -> np.ndarray:
    """(R, N) labels of Genie (:mod:`flowmix.genie`); the partitions cycle through Gini thresholds 0.3, 0.5, 0.7.

    Genie cuts the minimum spanning tree, so it finds chains, spirals and nested shapes that a
    graph's spectrum blurs, while its limit on uneven cluster sizes keeps outliers from taking
    clusters of their own. Each threshold (:data:`GENIE_THRESHOLD_CYCLE`) is run once, on at most
    :data:`MAX_FIT_POINTS` points. One cluster, or too few points for a tree: k-means.
    """
    if n_components == 1 or len(X) <= max(n_components, 2):
        return kmeans_labels(X, n_components, rng, n_partitions)
    found: dict[float, np.ndarray] = {}
    labels = []
    for i in range(n_partitions):
        threshold = GENIE_THRESHOLD_CYCLE[i % len(GENIE_THRESHOLD_CYCLE)]
        if threshold not in found:
            found[threshold] = genie(X, n_components, threshold, max_points=MAX_FIT_POINTS, rng=rng)
        labels.append(found[threshold])
    return np.stack(labels)
