"""Principal subspaces: a component's density on wide data as a flow on a few directions and a normal on the rest.

The probabilistic-PCA idea with a flow in place of the Gaussian in the subspace. Component s has a
centre m_s, an orthonormal basis W_s (D x d) of its cluster's principal directions, their
standard deviations a_s (d,) and a residual standard deviation sigma_s. A point x splits into
whitened subspace coordinates y = diag(1 / a_s) W_s^T (x - m_s), which the component's flow
models, and the residual r = (x - m_s) - W_s W_s^T (x - m_s) in the (D - d)-dimensional
orthogonal complement, modelled as N(0, sigma_s^2 I). Rotating x - m_s onto (W_s, complement) has
a determinant of absolute value 1, so::

    log p_s(x) = log q_s(y) - sum_j log a_sj - |r|^2 / (2 sigma_s^2) - (D - d) (log sigma_s + log(2 pi) / 2)

is a proper density on all of R^D, with an exact log-determinant, whatever the flow q_s. Its cost
is one D x d projection per point and component plus the flow's on d coordinates, so a fit grows
about linearly in D instead of with the flow's D-wide layers.

The subspaces are fitted once, from the start's clusters (:func:`fit_subspaces`), and held fixed
while the flows train (the flows learn in their coordinates; moving the coordinates would undo
that). With flows that start as the identity and standard normal bases, each component starts as
its cluster's probabilistic PCA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowmix.preprocessing import WIDE_FEATURES

#: Fewest features for which ``subspace_dim="auto"`` takes a subspace (wide data,
#: flowmix.preprocessing): below it a flow on every feature costs little, and the 2-D and 3-D
#: shapes flowmix is known for keep their full flows.
AUTO_MIN_FEATURES = WIDE_FEATURES
#: Share of the within-cluster variance the automatic subspace keeps, and the most directions it
#: takes. A fit's training time grows about linearly with the directions while the extra ones
#: hold less and less of the variance (the normal on the residual models it as well); the
#: trade-off on raw MNIST digits is measured in benchmarks/RESULTS.md (wide data).
AUTO_EXPLAINED_VARIANCE = 0.9
AUTO_MAX_DIM = 24
# A direction's variance is at least this fraction of the data's mean variance per feature: a
# cluster flat along some directions (fewer points than dimensions, constant pixels) keeps a
# proper, finite density.
VARIANCE_FLOOR = 1e-3


@dataclass(frozen=True)
class Subspaces:
    """The subspace of every (restart, component): leading axes (R, K), torch tensors.

    Attributes
    ----------
    mean : Tensor of shape (R, K, D)
    basis : Tensor of shape (R, K, D, d)
        Orthonormal columns.
    scale : Tensor of shape (R, K, d)
        Standard deviations along the basis (positive).
    residual_scale : Tensor of shape (R, K)
        Standard deviation of the residual in every orthogonal direction (positive).
    """

    mean: Tensor
    basis: Tensor
    scale: Tensor
    residual_scale: Tensor

    @property
    def dim(self) -> int:
        """d, the subspace dimension the flows work in."""
        return self.basis.shape[-1]

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mean, basis, scale, residual_scale), the arguments of :func:`to_subspace_columns` once stacked."""
        return self.mean, self.basis, self.scale, self.residual_scale

    def take(self, restarts: Tensor | slice) -> Subspaces:
        """The subspaces of the given restarts (an index or a slice of the leading axis)."""
        return Subspaces(*(t[restarts] for t in self.tensors()))

    def stacked(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`tensors` with (R, K) flattened to the stack axis S = R * K."""
        return tuple(t.reshape(-1, *t.shape[2:]) for t in self.tensors())


# Up to this many features a cluster's covariance is formed and fully decomposed; beyond, its
# leading directions come from randomised subspace iteration on the centred points (forming a
# 3072 x 3072 covariance from 10 000 points costs 1e11 operations per cluster, the iteration
# 1e9), which recovers directions whose variance stands out to about float precision.
EXACT_MAX_FEATURES = 1024
_OVERSAMPLING, _POWER_ITERATIONS = 10, 4


def leading_directions(
    centred: np.ndarray, n_directions: int, exact_max_features: int = EXACT_MAX_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_directions`` largest eigenvalues (descending) and eigenvectors (D, n) of ``centred.T @ centred``.

    ``centred`` (n, D) holds weighted, centred points; with at most ``exact_max_features``
    features the product is decomposed exactly, else by randomised subspace iteration (seeded,
    so the result does not change from run to run).
    """
    n_features = centred.shape[1]
    if n_features <= exact_max_features:
        values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
        return np.maximum(values[::-1][:n_directions], 0.0), vectors[:, ::-1][:, :n_directions]
    width = min(n_features, n_directions + _OVERSAMPLING)
    basis = np.random.RandomState(0).normal(size=(n_features, width))
    for _ in range(_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(centred.T @ (centred @ basis))
    small = basis.T @ (centred.T @ (centred @ basis))
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(values)[::-1][:n_directions]
    return np.maximum(values[order], 0.0), basis @ vectors[:, order]


def within_cluster_spectra(
    X: np.ndarray, responsibilities: np.ndarray, n_directions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each weighted cluster's mean, leading covariance eigenpairs and total variance, float64.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    responsibilities : ndarray of shape (R, N, K)
        Soft or hard assignments (rows summing to 1).
    n_directions : int
        How many leading directions to return (at most D).

    Returns
    -------
    means : ndarray of shape (R, K, D)
    eigenvalues : ndarray of shape (R, K, n_directions)
        Descending.
    eigenvectors : ndarray of shape (R, K, D, n_directions)
        Columns matching ``eigenvalues``.
    total_variance : ndarray of shape (R, K)
        The trace of each covariance (the sum of all D eigenvalues).

    An empty cluster takes the whole data's.
    """
    X = np.asarray(X, dtype=np.float64)
    r = np.asarray(responsibilities, dtype=np.float64)
    n_restarts, _, n_components = r.shape
    n_features = X.shape[1]
    means = np.empty((n_restarts, n_components, n_features))
    values = np.empty((n_restarts, n_components, n_directions))
    vectors = np.empty((n_restarts, n_components, n_features, n_directions))
    totals = np.empty((n_restarts, n_components))
    whole = None
    for restart in range(n_restarts):  # once per fit, before training
        for k in range(n_components):
            weights = r[restart, :, k]
            rows = np.flatnonzero(weights > 0)  # hard clusters: only their own points
            mass = weights[rows].sum()
            if mass <= 1e-12:
                if whole is None:
                    centred = (X - X.mean(axis=0)) / np.sqrt(len(X))
                    whole = (
                        X.mean(axis=0),
                        *leading_directions(centred, n_directions),
                        np.square(centred).sum(),
                    )
                means[restart, k], values[restart, k], vectors[restart, k], totals[restart, k] = whole
                continue
            mean = weights[rows] @ X[rows] / mass
            centred = (X[rows] - mean) * np.sqrt(weights[rows] / mass)[:, None]
            means[restart, k], totals[restart, k] = mean, np.square(centred).sum()
            values[restart, k], vectors[restart, k] = leading_directions(centred, n_directions)
    return means, values, vectors, totals


def explained_dim(
    eigenvalues: np.ndarray, total_variance: np.ndarray, weights: np.ndarray, share: float
) -> int:
    """Fewest leading directions that hold ``share`` of the within-cluster variance, averaged over clusters.

    Parameters
    ----------
    eigenvalues : ndarray of shape (..., n)
        Each cluster's leading covariance eigenvalues, descending.
    total_variance : ndarray of the leading shape
        Each cluster's total variance.
    weights : ndarray of the leading shape
        Each cluster's share of the points.
    share : float
        In (0, 1].

    Returns
    -------
    int
        At most n: all the given directions where they hold less than ``share``.

    Examples
    --------
    >>> explained_dim(np.array([[4.0, 3.0, 2.0, 1.0]]), np.array([10.0]), np.array([1.0]), 0.7)
    2
    """
    n = eigenvalues.shape[-1]
    cumulative = np.cumsum(eigenvalues, axis=-1) / np.maximum(total_variance, 1e-300)[..., None]
    mean_cumulative = np.tensordot(weights.ravel() / weights.sum(), cumulative.reshape(-1, n), 1)
    return int(min(np.searchsorted(mean_cumulative, share - 1e-12) + 1, n))


#: The key of FlowMixture's ``flow_params`` that sets the components' subspaces, beside the flow
#: family's architecture and options (it shapes each component's density as they do).
PARAMS_KEY = "subspace_dim"
DEFAULT_DIM = "auto"


def split_flow_params(flow_params: Mapping[str, Any] | None) -> tuple[dict[str, Any], int | str | None]:
    """(the flow family's architecture and options, the subspace setting) of a ``flow_params``.

    Examples
    --------
    >>> split_flow_params({"n_bins": 4, "subspace_dim": None})
    ({'n_bins': 4}, None)
    >>> split_flow_params(None)
    ({}, 'auto')
    """
    options = dict(flow_params or {})
    return options, options.pop(PARAMS_KEY, DEFAULT_DIM)


def largest_dim(requested: int | str | None, n_features: int) -> int:
    """The most coordinates the flows can have under ``requested``, before the clusters settle it.

    Examples
    --------
    >>> largest_dim("auto", 784), largest_dim("auto", 2), largest_dim(None, 784)
    (24, 2, 784)
    """
    if requested is None:
        return n_features
    if requested == "auto":
        return n_features if n_features < AUTO_MIN_FEATURES else min(AUTO_MAX_DIM, n_features)
    return min(int(requested), n_features)


def fit_subspaces(
    X: np.ndarray, responsibilities: np.ndarray, requested: int | str | None
) -> Subspaces | None:
    """Each cluster's leading principal directions and its residual's variance, or None for the full space.

    ``requested`` is the estimator's ``subspace_dim``. ``"auto"`` takes a subspace on data of at
    least ``AUTO_MIN_FEATURES`` features: the fewest directions that hold
    ``AUTO_EXPLAINED_VARIANCE`` of the within-cluster variance (clusters weighted by their
    sizes), at most ``AUTO_MAX_DIM``. An integer of at least the number of features, or
    None, is the full space. The residual variance is the mean of a cluster's remaining
    eigenvalues (probabilistic PCA's maximum-likelihood estimate); every variance is at least
    ``VARIANCE_FLOOR`` times the data's mean variance per feature.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    responsibilities : ndarray of shape (R, N, K)
    requested : int, "auto" or None
    """
    n_features = X.shape[1]
    most = largest_dim(requested, n_features)
    if most >= n_features:
        return None
    means, eigenvalues, eigenvectors, totals = within_cluster_spectra(X, responsibilities, most)
    dim = most
    if requested == "auto":
        weights = np.asarray(responsibilities).sum(axis=1)
        dim = explained_dim(eigenvalues, totals, weights, AUTO_EXPLAINED_VARIANCE)
    floor = VARIANCE_FLOOR * max(float(np.var(np.asarray(X, dtype=np.float64), axis=0).mean()), 1e-300)
    kept = np.maximum(eigenvalues[..., :dim], floor)
    residual_variance = np.maximum((totals - eigenvalues[..., :dim].sum(-1)) / (n_features - dim), floor)
    return Subspaces(
        mean=torch.as_tensor(means, dtype=torch.float32),
        basis=torch.as_tensor(np.ascontiguousarray(eigenvectors[..., :dim]), dtype=torch.float32),
        scale=torch.as_tensor(np.sqrt(kept), dtype=torch.float32),
        residual_scale=torch.as_tensor(np.sqrt(residual_variance), dtype=torch.float32),
    )


def to_subspace_columns(
    x: Tensor, mean: Tensor, basis: Tensor, scale: Tensor, residual_scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Points as columns to every component's whitened subspace coordinates, and the rest of their log density.

    Parameters
    ----------
    x : Tensor of shape (D, N) or (S, D, N)
        Shared points, or each stacked component's own.
    mean : Tensor of shape (S, D)
    basis : Tensor of shape (S, D, d)
    scale : Tensor of shape (S, d)
    residual_scale : Tensor of shape (S,)

    Returns
    -------
    y : Tensor of shape (S, d, N)
        The coordinates the flows model.
    log_rest : Tensor of shape (S, N)
        ``-sum log a - |r|^2 / (2 sigma^2) - (D - d)(log sigma + log(2 pi) / 2)``: added to the
        flow's log density of y it gives the component's log density of x.
    """
    n_features, dim = basis.shape[-2:]
    centred = x - mean[:, :, None]  # (S, D, N) for shared points too
    coordinates = basis.transpose(1, 2) @ centred  # (S, d, N)
    residual = centred - basis @ coordinates
    n_rest = n_features - dim
    log_rest = (
        -0.5 * residual.square().sum(1) / residual_scale[:, None].square()
        - n_rest * (residual_scale.log() + 0.5 * math.log(2 * math.pi))[:, None]
        - scale.log().sum(-1, keepdim=True)
    )
    return coordinates / scale[:, :, None], log_rest


def own_coordinates(X: np.ndarray, labels: np.ndarray, subspaces: Subspaces) -> Tensor:
    """Every point's whitened coordinates in the subspace of its own component, restart by restart.

    X (N, D) and labels (R, N) -> (R * N, d) float32: the points a component's flow will see
    (what the flows' data-driven constants are set from, ``StackedFlow.prepare``).
    """
    columns = torch.from_numpy(np.ascontiguousarray(X.T, dtype=np.float32))
    n_restarts, n_components = subspaces.mean.shape[:2]
    parts = []
    for restart in range(n_restarts):  # once per fit, before training
        for k in range(n_components):
            rows = torch.from_numpy(np.flatnonzero(labels[restart] == k))
            own = Subspaces(*(t[restart : restart + 1, k : k + 1] for t in subspaces.tensors()))
            coordinates, _ = to_subspace_columns(columns[:, rows], *own.stacked())
            parts.append(coordinates[0].T)
    return torch.cat(parts)


def from_subspace(
    y: Tensor, noise: Tensor, mean: Tensor, basis: Tensor, scale: Tensor, residual_scale: Tensor
) -> Tensor:
    """Points as rows from whitened subspace coordinates and standard normal noise for the residual.

    y (S, N, d) and noise (S, N, D) -> x (S, N, D): ``m + W (a * y) + sigma (noise - W W^T noise)``.
    """
    along = (y * scale[:, None, :]) @ basis.transpose(1, 2)
    across = noise - (noise @ basis) @ basis.transpose(1, 2)
    return mean[:, None, :] + along + residual_scale[:, None, None] * across


def floats_per_point(n_features: int, dim: int) -> int:
    """Activations the projection holds per point and stacked component (the centred copy, the residual, y)."""
    return 2 * n_features + dim
