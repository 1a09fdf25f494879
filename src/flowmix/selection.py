"""Selection rules: which restart of a fit is kept, one function per rule, by name.

A rule sees the training result and the batched density, the training points and, where the
estimator held some out (``selection="likelihood-or-cut"`` or ``"validation"``), the validation
points; it returns one score per restart (lower is better). Restarts that stopped on a
non-finite loss are never kept. Rules never look at labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from flowmix.clustering import (
    MAX_FIT_POINTS,
    SPECTRAL_NEIGHBOUR_CYCLE,
    SPECTRAL_NEIGHBOURS,
    cluster_normals,
    fit_full_gmm,
    knn_graph,
    one_hot,
    shrunk_covariances,
    spectral_embedding,
    subsample,
)
from flowmix.density import MixtureOfFlows
from flowmix.flows.base_distributions import full_normal_log_prob_columns
from flowmix.training import TrainResult, mean_nll, restart_labels

Selection = Callable[[TrainResult, MixtureOfFlows, Tensor, "Tensor | None"], np.ndarray]


def final_loss(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The training loss of the last epoch: the paper's rule (of the kept epoch, where training stopped early).

    Examples
    --------
    >>> result = TrainResult(np.array([[3.0, 2.0], [3.0, 1.0]]), np.array([-1, -1]), 2)
    >>> final_loss(result, None, None, None).tolist()
    [2.0, 1.0]
    """
    if result.best_epoch is not None:
        kept = np.maximum(result.best_epoch, 0)
        return result.losses[np.arange(len(kept)), kept].astype(np.float64)
    if result.epochs_trained is not None:  # a restart's last trained epoch, where it converged early
        last = np.maximum(result.epochs_trained - 1, 0)
        return result.losses[np.arange(len(last)), last].astype(np.float64)
    return result.losses[:, -1].astype(np.float64)


def training_likelihood(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The mixture's mean NLL on the training points after training (whatever the algorithm optimised)."""
    return mean_nll(density, train)


def validation_likelihood(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The mixture's mean NLL on the held-out validation points."""
    if validation is None:
        raise ValueError("selection='validation' needs validation points (validation_fraction > 0).")
    return mean_nll(density, validation)


def graph_cut(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The normalised cut of each restart's partition of the training points' kNN graph.

    sum_k cut(C_k, rest) / vol(C_k) on the symmetric 10-nearest-neighbour graph: low when every
    cluster is a well-connected region separated from the others by few edges, whatever its
    shape. Unlike a likelihood, it does not reward flows flexible enough to model a piece cut
    out of a cluster.
    """
    return _mean_normalised_cut(density, train, (10,))


def multiscale_graph_cut(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The normalised cut of each restart's partition, averaged over kNN graphs of 5, 10 and 20 neighbours.

    One graph can bridge two clusters by a few edges (on a subsample of the paper's smile, 10
    neighbours join an eye to the mouth), which makes its cut prefer a partition that merges
    them; the average over the neighbourhood sizes that the spectral start cycles through depends
    less on one graph's accidents. On sparse sets the 20-neighbour graph bridges clusters that
    the smaller ones keep apart (two circles of 200 points in all), which blunts the average
    there. Used by :func:`likelihood_or_cut`.
    """
    return _mean_normalised_cut(density, train, SPECTRAL_NEIGHBOUR_CYCLE)


def _mean_normalised_cut(
    density: MixtureOfFlows, train: Tensor, neighbour_counts: tuple[int, ...]
) -> np.ndarray:
    """(R,) normalised cuts of the restarts' partitions, averaged over symmetric kNN graphs of these sizes."""
    if density.n_components == 1 or train.shape[1] < 3:
        return np.zeros(density.n_restarts)  # nothing to cut
    labels = restart_labels(density, train)
    return normalised_cuts(train.T.double().cpu().numpy(), labels, density.n_components, neighbour_counts)


def normalised_cuts(
    points: np.ndarray, labels: np.ndarray, n_components: int, neighbour_counts: tuple[int, ...] = (10,)
) -> np.ndarray:
    """(R,) normalised cuts of R partitions (R, N) of the points (N, D), averaged over kNN graphs of these sizes.

    Edges that a cluster smaller than the neighbourhood cannot keep inside (a cluster of n points
    keeps at most n - 1 of each point's k neighbours) are not counted as cut.

    Examples
    --------
    >>> points = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> partitions = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    >>> normalised_cuts(points, partitions, 2, (2,)).round(3).tolist()
    [0.0, 0.125, 1.0]
    """
    if n_components == 1 or len(points) < 3:
        return np.zeros(len(labels))
    scores = np.zeros(len(labels))
    for neighbours in neighbour_counts:
        graph = knn_graph(points, neighbours)  # symmetric, without self-loops
        degree = np.asarray(graph.sum(axis=1)).ravel()
        rows, cols = graph.nonzero()
        k = min(neighbours, len(points) - 1)
        for r, part in enumerate(labels):
            crossing = part[rows] != part[cols]
            cut = np.bincount(part[rows][crossing], minlength=n_components)
            volume = np.bincount(part, weights=degree, minlength=n_components)
            # A cluster of n points cannot keep more than n - 1 of a point's k neighbours: the
            # other edges cross whatever the partition, so they do not count against it (else
            # any cluster smaller than the neighbourhood looks badly cut, however isolated).
            sizes = np.bincount(part, minlength=n_components)
            cut = np.maximum(cut - sizes * np.maximum(k - sizes + 1, 0), 0)
            # cut(A) / vol(A) <= 1; an empty cluster scores that worst value, where its 0 / 0
            # would otherwise make a partition that leaves components empty look perfect.
            ratios = np.where(volume > 0, cut / np.maximum(volume, 1e-12), 1.0)
            scores[r] += float(np.sum(ratios)) / len(neighbour_counts)
    return scores


def spectral_inertias(points: np.ndarray, labels: np.ndarray, n_components: int) -> np.ndarray:
    """(R,) spectral clustering's objective for R partitions (R, N) of the points (N, D); lower is better.

    The mean squared distance of every point's row of the unit-normalised spectral embedding of
    the 10-nearest-neighbour graph (:func:`flowmix.clustering.spectral_embedding`) to its
    cluster's mean row: what spectral clustering's k-means step minimises. Unlike the normalised cut, it does
    not reward a partition that joins a small cluster to the end of a long one through the few
    edges between them (as an eye joined to a piece of the mouth on the paper's smile; see
    docs/user_guide/recipe.rst). A partition that leaves a component empty
    counts 4, the largest squared distance of unit vectors, per empty component. Sets above
    ``MAX_FIT_POINTS`` are scored on a fixed random subsample.

    Examples
    --------
    >>> points = np.r_[np.linspace(0, 1, 15), np.linspace(5, 6, 15)][:, None]
    >>> right = np.repeat([0, 1], 15)
    >>> wrong = np.where(np.arange(30) < 10, 0, 1)
    >>> spectral_inertias(points, np.stack([right, wrong, np.zeros(30, int)]), 2).round(3).tolist()
    [0.0, 0.25, 4.5]
    """
    labels = np.asarray(labels)
    if n_components == 1 or len(points) <= max(n_components, 2):
        return np.zeros(len(labels))
    subset = subsample(len(points), np.random.RandomState(0))
    embedding = spectral_embedding(points[subset], n_components, 0, SPECTRAL_NEIGHBOURS)
    scores = np.zeros(len(labels))
    for r, part in enumerate(labels[:, subset]):
        counts = np.bincount(part, minlength=n_components)
        sums = np.zeros((n_components, embedding.shape[1]))
        np.add.at(sums, part, embedding)
        means = sums / np.maximum(counts, 1)[:, None]
        spread = float(np.square(embedding - means[part]).sum(1).mean())
        scores[r] = spread + 4.0 * float(np.sum(counts == 0))
    return scores


def spectral_objective(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """Spectral clustering's objective of each restart's partition (:func:`spectral_inertias`); lower is better.

    The rule for clusters that are not Gaussian, where it ranks restarts better than the
    normalised cut (measurements: docs/user_guide/recipe.rst).
    """
    labels = restart_labels(density, train)
    return spectral_inertias(train.T.double().cpu().numpy(), labels, density.n_components)


# Held-out nats per point and dimension by which the best restart must beat a full-covariance
# GMM before the "likelihood-or-cut" rule trusts the graph cut. Below it the clusters are about
# Gaussian, and the likelihood ranks partitions the way EM's restarts are ranked. Measured gains
# (benchmarks/clustering_quality.py, seeds 0 and 1): 0.28-0.9 on rings, moons, spirals and the paper's
# 2-D sets; at most 0.15 on iris, wine, breast cancer and the blobs.
GAUSSIAN_GAIN = 0.2


def gmm_validation_likelihood(train: Tensor, validation: Tensor, n_components: int) -> float:
    """Mean held-out log-likelihood of a full-covariance GMM fitted (seed 0) to the training points.

    Sets of more than ``MAX_FIT_POINTS`` points fit it to a fixed random subsample (in random order).
    """
    points = train.T.double().cpu().numpy()
    if len(points) > MAX_FIT_POINTS:
        points = points[np.random.RandomState(0).choice(len(points), MAX_FIT_POINTS, replace=False)]
    gmm = fit_full_gmm(points, n_components, seed=0)
    return -np.inf if gmm is None else float(gmm.score(validation.T.double().cpu().numpy()))


def gain_over_gmm(nll: float, train: Tensor, validation: Tensor, n_components: int) -> float:
    """Held-out nats per point and dimension by which a mixture of mean validation NLL ``nll`` beats a GMM.

    The GMM is :func:`gmm_validation_likelihood`'s (full covariances, same K). Above
    ``GAUSSIAN_GAIN`` the clusters have shapes that Gaussians cannot take.
    """
    return (-float(nll) - gmm_validation_likelihood(train, validation, n_components)) / train.shape[0]


def partition_gaussian_likelihood(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """Minus the mean log-likelihood of the training points under each restart's partition made Gaussian.

    Every cluster of the restart's partition becomes a normal with the cluster's mean and
    (shrunk, :func:`flowmix.clustering.shrunk_covariances`) covariance, weighted by its share, and
    the Gaussian mixture's likelihood of all training points is the score: the rule that ranks
    partitions of Gaussian clusters, computed on every training point rather than on a few
    validation points, and blind to how far the flows overfit.
    """
    points = train.T.double().cpu()
    labels = restart_labels(density, train)
    assignments = one_hot(labels, density.n_components)
    all_means, _, all_weights = cluster_normals(points.numpy(), assignments)
    k = density.n_components
    scores = []
    all_covariances = shrunk_covariances(points.numpy(), assignments)
    for means, covariances, weights in zip(all_means, all_covariances, all_weights, strict=True):
        tril = torch.linalg.cholesky(torch.as_tensor(covariances))
        columns = points.T.expand(k, *points.T.shape)  # every component sees every point
        log_prob = full_normal_log_prob_columns(columns, torch.as_tensor(means, dtype=torch.float64), tril)
        log_weights = torch.as_tensor(np.log(np.maximum(weights, 1e-300)))[:, None]
        scores.append(-float(torch.logsumexp(log_weights + log_prob, dim=0).mean()))
    return np.asarray(scores)


def likelihood_or_cut(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """Multi-scale graph cut where flows beat a GMM clearly on held-out points, else the partitions' Gaussian fit.

    The gain of the best restart over a full-covariance GMM of the same K, in held-out nats per
    point and dimension, tells the two kinds of data apart: above ``GAUSSIAN_GAIN`` (0.2) the
    clusters have shapes a Gaussian cannot take, and the likelihood of flows flexible enough to
    model a piece cut out of a cluster no longer ranks partitions (on rings and smile a wrong
    partition's was higher), while the normalised cut does
    (:func:`multiscale_graph_cut`); below it the clusters are about Gaussian, where the cut
    prefers valleys of density to the overlap a GMM resolves, and the partitions are ranked by
    how well Gaussians fit them (:func:`partition_gaussian_likelihood`). The flows' own held-out
    likelihood ranked them worse there: on tables of 100-150 points it rests on 10-15 points.
    """
    nll = validation_likelihood(result, density, train, validation)
    finite = nll[np.isfinite(nll)]
    if finite.size == 0:
        return nll
    if gain_over_gmm(finite.min(), train, validation, density.n_components) > GAUSSIAN_GAIN:
        return multiscale_graph_cut(result, density, train, validation)
    return partition_gaussian_likelihood(result, density, train, validation)


SELECTIONS: dict[str, Selection] = {
    "likelihood-or-cut": likelihood_or_cut,
    "loss": final_loss,
    "likelihood": training_likelihood,
    "validation": validation_likelihood,
    "graph-cut": graph_cut,
    "spectral": spectral_objective,
}

#: The rules that score restarts on held-out points: a fit selected by one holds points out.
HELD_OUT_SELECTIONS = ("validation", "likelihood-or-cut")


def select(
    name: str, result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> tuple[int, np.ndarray]:
    """The kept restart under rule ``name`` and every restart's score (inf for a stopped restart)."""
    scores = np.asarray(get_selection(name)(result, density, train, validation), dtype=np.float64)
    scores = np.where((result.stopped_epoch >= 0) | ~np.isfinite(scores), np.inf, scores)
    return int(np.argmin(scores)), scores


def get_selection(name: str) -> Selection:
    """The selection rule registered as ``name``."""
    if name not in SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {name!r}.")
    return SELECTIONS[name]
