"""Initialisation strategies: where the components start, one function per strategy, by name.

A strategy sees the (validated) training data and a RandomState and returns a :class:`Start` for
all ``n_init`` restarts at once: base locations, optionally base scales and mixture weights, and
optionally responsibilities on which every component's flow is pretrained before training
(see :func:`flowmix.training.pretrain`). The estimator turns the name given as ``init=`` into one
of :data:`INITIALISATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Start:
    """Where the R restarts x K components start.

    Attributes:
        means: (R, K, D) base locations.
        scales: (R, K, D) base standard deviations, or None for the estimator's ``base_std``.
        weights: (R, K) mixture weights, or None for uniform weights.
        responsibilities: (R, N, K) soft or hard assignments of the training points to pretrain
            the flows on, or None for no pretraining.
    """

    means: np.ndarray
    scales: np.ndarray | None = None
    weights: np.ndarray | None = None
    responsibilities: np.ndarray | None = None


Initialisation = Callable[[np.ndarray, int, int, np.random.RandomState], Start]


def unit_cube(X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Base means drawn from U(0, 1)^D whatever the data: the paper's rule.

    Example:
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
}


def initialise(name: str, X: np.ndarray, n_init: int, n_components: int, rng: np.random.RandomState) -> Start:
    """Run strategy ``name`` and check the shapes of what it returns."""
    if name not in INITIALISATIONS:
        raise ValueError(f"init must be one of {list(INITIALISATIONS)}, got {name!r}.")
    start = INITIALISATIONS[name](X, n_init, n_components, rng)
    shape = (n_init, n_components, X.shape[1])
    if start.means.shape != shape or (start.scales is not None and start.scales.shape != shape):
        raise RuntimeError(f"init {name!r} returned means/scales not of shape {shape}.")
    return start
