"""Principal subspaces: a component's density on wide data as a flow on a few directions and a normal on the rest.

The probabilistic-PCA idea with a flow in place of the Gaussian in the subspace. Component s has a
centre m_s, an orthonormal basis W_s (D x d) of its cluster's principal directions, their
standard deviations a_s (d,) and a residual standard deviation sigma_s. A point x splits into
whitened subspace coordinates y = diag(1 / a_s) W_s^T (x - m_s), which the component's flow
models, and the residual r = (x - m_s) - W_s W_s^T (x - m_s) in the (D - d)-dimensional
orthogonal complement, modelled as N(0, sigma_s^2 I). Rotating x - m_s onto (W_s, complement) has
|det| 1, so

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
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowmix.preprocessing import WIDE_FEATURES

#: Fewest features for which ``subspace_dim="auto"`` takes a subspace (wide data,
#: flowmix.preprocessing): below it a flow on every feature costs little, and the 2-D and 3-D
#: shapes flowmix is known for keep their full flows.
AUTO_MIN_FEATURES = WIDE_FEATURES
#: Share of the within-cluster variance the automatic subspace keeps, and the most directions it
#: takes: beyond about 32 directions the flows' cost grows while their clusters' extra variance is
#: spread thin over many directions (the normal on the residual models it as well).
AUTO_EXPLAINED_VARIANCE = 0.9
AUTO_MAX_DIM = 32
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


def within_cluster_spectra(
    X: np.ndarray, responsibilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each weighted cluster's mean and covariance eigen-decomposition, float64.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    responsibilities : ndarray of shape (R, N, K)
        Soft or hard assignments (rows summing to 1).

    Returns
    -------
    means : ndarray of shape (R, K, D)
    eigenvalues : ndarray of shape (R, K, D)
        Descending.
    eigenvectors : ndarray of shape (R, K, D, D)
        Columns matching ``eigenvalues``.

    An empty cluster takes the whole data's mean and covariance.
    """
    X = np.asarray(X, dtype=np.float64)
    r = np.asarray(responsibilities, dtype=np.float64)
    n_restarts, _, n_components = r.shape
    dim = X.shape[1]
    overall_mean = X.mean(axis=0)
    overall_covariance = np.cov(X, rowvar=False, bias=True).reshape(dim, dim)
    means = np.empty((n_restarts, n_components, dim))
    covariances = np.empty((n_restarts, n_components, dim, dim))
    for restart in range(n_restarts):
        for k in range(n_components):
            weights = r[restart, :, k]
            rows = np.flatnonzero(weights > 0)  # hard clusters: only their own points
            mass = weights[rows].sum()
            if mass <= 1e-12:
                means[restart, k], covariances[restart, k] = overall_mean, overall_covariance
                continue
            mean = weights[rows] @ X[rows] / mass
            centred = (X[rows] - mean) * np.sqrt(weights[rows] / mass)[:, None]
            means[restart, k], covariances[restart, k] = mean, centred.T @ centred
    values, vectors = np.linalg.eigh(covariances)  # ascending
    return means, np.maximum(values[..., ::-1], 0.0), vectors[..., ::-1]


def explained_dim(eigenvalues: np.ndarray, weights: np.ndarray, share: float) -> int:
    """Fewest leading directions that hold ``share`` of the within-cluster variance, averaged over clusters.

    Parameters
    ----------
    eigenvalues : ndarray of shape (..., D)
        Each cluster's covariance eigenvalues, descending.
    weights : ndarray of the leading shape
        Each cluster's share of the points.
    share : float
        In (0, 1].

    Examples
    --------
    >>> explained_dim(np.array([[4.0, 3.0, 2.0, 1.0]]), np.array([1.0]), 0.7)
    2
    """
    total = eigenvalues.sum(-1, keepdims=True)
    cumulative = np.cumsum(eigenvalues, axis=-1) / np.maximum(total, 1e-300)
    mean_cumulative = np.tensordot(
        weights.ravel() / weights.sum(), cumulative.reshape(-1, eigenvalues.shape[-1]), 1
    )
    return int(min(np.searchsorted(mean_cumulative, share - 1e-12) + 1, eigenvalues.shape[-1]))


def resolve_dim(
    requested: int | str | None, n_features: int, eigenvalues: np.ndarray, weights: np.ndarray
) -> int | None:
    """The subspace dimension ``requested`` stands for (None: flows on every feature).

    ``"auto"`` takes a subspace on data of at least :data:`AUTO_MIN_FEATURES` features: the fewest
    directions that hold :data:`AUTO_EXPLAINED_VARIANCE` of the within-cluster variance (clusters
    weighted by their sizes, ``eigenvalues`` (R, K, D) and ``weights`` (R, K)), at most
    :data:`AUTO_MAX_DIM`. An integer of at least ``n_features`` is the full space.

    Examples
    --------
    >>> resolve_dim("auto", 2, np.ones((1, 1, 2)), np.ones((1, 1))) is None
    True
    >>> resolve_dim(5, 100, np.ones((1, 1, 100)), np.ones((1, 1)))
    5
    """
    if requested is None:
        return None
    if requested == "auto":
        if n_features < AUTO_MIN_FEATURES:
            return None
        return min(AUTO_MAX_DIM, explained_dim(eigenvalues, weights, AUTO_EXPLAINED_VARIANCE))
    return None if int(requested) >= n_features else int(requested)


def largest_dim(requested: int | str | None, n_features: int) -> int:
    """The most coordinates the flows can have under ``requested``, before the clusters settle it.

    Examples
    --------
    >>> largest_dim("auto", 784), largest_dim("auto", 2), largest_dim(None, 784)
    (32, 2, 784)
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

    The dimension is :func:`resolve_dim`'s. The residual variance is the mean of a cluster's
    remaining eigenvalues (probabilistic PCA's maximum-likelihood estimate); every variance is at
    least :data:`VARIANCE_FLOOR` times the data's mean variance per feature.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    responsibilities : ndarray of shape (R, N, K)
    requested : int, "auto" or None
        The estimator's ``subspace_dim``.
    """
    n_features = X.shape[1]
    if requested is None or (requested == "auto" and n_features < AUTO_MIN_FEATURES):
        return None  # no spectra needed
    means, eigenvalues, eigenvectors = within_cluster_spectra(X, responsibilities)
    dim = resolve_dim(requested, n_features, eigenvalues, np.asarray(responsibilities).sum(axis=1))
    if dim is None:
        return None
    floor = VARIANCE_FLOOR * max(float(np.var(np.asarray(X, dtype=np.float64), axis=0).mean()), 1e-300)
    eigenvalues = np.maximum(eigenvalues, floor)
    residual_variance = eigenvalues[..., dim:].mean(-1)
    return Subspaces(
        mean=torch.as_tensor(means, dtype=torch.float32),
        basis=torch.as_tensor(np.ascontiguousarray(eigenvectors[..., :dim]), dtype=torch.float32),
        scale=torch.as_tensor(np.sqrt(eigenvalues[..., :dim]), dtype=torch.float32),
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
