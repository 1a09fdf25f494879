"""Genie: hierarchical clustering on the minimum spanning tree, with a Gini index limit on cluster sizes.

Genie (Gagolewski, Bartoszuk and Cena, Information Sciences 363, 2016) merges clusters along the
edges of the Euclidean minimum spanning tree, shortest first, as single linkage does, except that
whenever the Gini index of the cluster sizes exceeds a threshold it merges along the shortest
edge that touches one of the smallest clusters. Single linkage finds chains, spirals and nested
shapes but leaves outliers as clusters of their own; the limit keeps those tiny clusters from
lasting. This is a from-scratch implementation of the published algorithm (flowmix's licence is
MIT; the reference package, genieclust, is AGPL): a dense Prim tree and one vectorised scan of
the remaining edges per constrained merge, O(N^2 D) time and O(N D) memory, so sets above
``max_points`` are clustered on a random subsample and the other points take the label of their
nearest clustered point.
"""

from __future__ import annotations

import numpy as np

# Points genie() clusters at most unless told otherwise; the dense tree costs N^2 D operations.
# flowmix's own clusterer (flowmix.clustering.genie_labels) passes flowmix.clustering.MAX_FIT_POINTS;
# this module sits below flowmix.clustering (which imports it), so it cannot import that constant.
GENIE_MAX_POINTS = 20_000


def minimum_spanning_tree(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Euclidean minimum spanning tree of X (N, D): edges (i, j, length), shortest first.

    Prim's algorithm on the dense distance matrix, one row at a time (O(N) memory). Equal
    lengths keep the order in which Prim's algorithm found them.

    Examples
    --------
    >>> i, j, length = minimum_spanning_tree(np.array([[0.0], [3.0], [1.0]]))
    >>> sorted(zip(i.tolist(), j.tolist())), length.tolist()
    ([(0, 2), (2, 1)], [1.0, 2.0])
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    # The points not yet in the tree, packed at the front of these arrays (the last one moves
    # into the place of each point that joins), so every step touches only those points.
    outside = np.arange(1, n)
    points = X[outside].copy()
    nearest = np.full(n - 1, np.inf)  # squared distance of each outside point to the tree
    attach = np.zeros(n - 1, dtype=np.int64)  # the tree point it is nearest to
    heads, tails, lengths = np.empty(n - 1, np.int64), np.empty(n - 1, np.int64), np.empty(n - 1)
    newest = 0
    for step in range(n - 1):
        m = n - 1 - step
        diff = points[:m] - X[newest]
        distances = np.einsum("ij,ij->i", diff, diff)
        closer = distances < nearest[:m]
        nearest[:m][closer] = distances[closer]
        attach[:m][closer] = newest
        j = int(np.argmin(nearest[:m]))
        newest = int(outside[j])
        heads[step], tails[step], lengths[step] = attach[j], newest, nearest[j]
        last = m - 1
        for array in (outside, points, nearest, attach):
            array[j] = array[last]
    order = np.argsort(lengths, kind="stable")
    return heads[order], tails[order], np.sqrt(lengths[order])


def gini_index(sizes: np.ndarray) -> float:
    """Normalised Gini index of cluster sizes: 0 when all are equal, 1 when one holds (almost) everything.

    ``sum_{i<j} |s_i - s_j| / ((c - 1) sum_i s_i)`` over c clusters, as in the Genie paper.

    Examples
    --------
    >>> gini_index(np.array([5, 5, 5])), gini_index(np.array([1, 1, 10]))
    (0.0, 0.75)
    """
    return _gini_of_histogram(*np.unique(np.asarray(sizes), return_counts=True))


def _gini_of_histogram(sizes: np.ndarray, counts: np.ndarray) -> float:
    """:func:`gini_index` of ``counts[i]`` clusters of size ``sizes[i]`` (sizes distinct, ascending).

    Over pairs of distinct sizes, each of the ``counts[b]`` clusters of size ``sizes[b]`` differs by
    ``sizes[b] - s`` from every smaller cluster: work in the number of distinct sizes, not of clusters.
    """
    c = float(counts.sum())
    if c < 2:
        return 0.0
    sizes, counts = sizes.astype(np.float64), counts.astype(np.float64)
    smaller = np.cumsum(counts) - counts  # clusters smaller than each size
    smaller_mass = np.cumsum(counts * sizes) - counts * sizes  # their points
    spread = float(np.sum(counts * (sizes * smaller - smaller_mass)))
    return spread / ((c - 1) * float(np.sum(counts * sizes)))


def genie_on_tree(
    heads: np.ndarray, tails: np.ndarray, n_points: int, n_clusters: int, gini_threshold: float
) -> np.ndarray:
    """Genie's merges along a spanning tree's edges (shortest first) until ``n_clusters`` remain; (N,) labels.

    Labels number the clusters by their smallest point index.
    """
    label = np.arange(n_points)
    members = [[i] for i in range(n_points)]
    size = np.ones(n_points, dtype=np.int64)
    count_of_size = np.zeros(n_points + 1, dtype=np.int64)  # clusters of each size
    count_of_size[1] = n_points
    unused = np.ones(len(heads), dtype=bool)
    next_edge = 0  # the shortest unused edge is never before this one
    for _ in range(n_points - n_clusters):  # one merge each
        sizes_now = np.flatnonzero(count_of_size)
        if _gini_of_histogram(sizes_now, count_of_size[sizes_now]) > gini_threshold:
            smallest = sizes_now[0]
            touches = unused & ((size[label[heads]] == smallest) | (size[label[tails]] == smallest))
            edge = int(np.argmax(touches))
        else:
            while not unused[next_edge]:
                next_edge += 1
            edge = next_edge
        unused[edge] = False
        a, b = label[heads[edge]], label[tails[edge]]
        if size[a] < size[b]:
            a, b = b, a  # the larger cluster absorbs the smaller one's members
        count_of_size[size[a]] -= 1
        count_of_size[size[b]] -= 1
        size[a] += size[b]
        count_of_size[size[a]] += 1
        label[members[b]] = a
        members[a].extend(members[b])
        members[b] = []
    return np.unique(label, return_inverse=True)[1]


def genie(
    X: np.ndarray,
    n_clusters: int,
    gini_threshold: float = 0.3,
    max_points: int = GENIE_MAX_POINTS,
    rng: np.random.RandomState | None = None,
) -> np.ndarray:
    """Genie's partition of X (N, D) into ``n_clusters`` clusters; (N,) labels in 0..n_clusters-1.

    Above ``max_points`` points, a random subsample (drawn from ``rng``) is clustered and every
    other point takes the label of its nearest subsample point.

    Examples
    --------
    >>> X = np.r_[np.linspace(0, 1, 20), np.linspace(3, 4, 20)][:, None]
    >>> genie(X, 2).tolist() == [0] * 20 + [1] * 20
    True
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must lie in 1..{n} (the number of points), got {n_clusters}.")
    if not 0.0 <= gini_threshold <= 1.0:
        raise ValueError(f"gini_threshold must lie in [0, 1], got {gini_threshold}.")
    subset = np.arange(n)
    if n > max_points:
        rng = np.random.RandomState(0) if rng is None else rng
        subset = np.sort(rng.choice(n, max_points, replace=False))
    heads, tails, _ = minimum_spanning_tree(X[subset])
    labels = genie_on_tree(heads, tails, len(subset), n_clusters, gini_threshold)
    if len(subset) == n:
        return labels
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(1).fit(X[subset], labels).predict(X)
