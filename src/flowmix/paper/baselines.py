"""The paper's clustering baselines: random labels, k-means and EM for a Gaussian mixture.

Each baseline follows the protocol of the paper (see ``PAPER_NOTES.md``): scikit-learn's estimators with
``n_init=10`` and otherwise default settings, on the same data and with the same ``k`` as the mixture
of flows. Every function is seeded, so the same seed gives the same labels on the same machine.

Example
-------
>>> import numpy as np
>>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2))] + 0.01 * np.arange(10)[:, None]
>>> result = run_baseline("kmeans", X, k=2, seed=0)
>>> sorted(np.bincount(result.labels).tolist())
[5, 5]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from flowmix.paper import device_baselines
from flowmix.validation import resolve_device

__all__ = ["BASELINES", "BaselineResult", "gmm", "kmeans", "random_labels", "run_baseline"]


@dataclass(frozen=True)
class BaselineResult:
    """The outcome of one baseline run.

    Attributes
    ----------
    labels : ndarray of int64, shape (N,)
        Cluster of each sample, in ``0..k-1`` (some clusters may be empty).
    objective : float or None
        The quantity the method minimises, lower is better, for choosing the best of several runs:
        the k-means inertia (sum of squared distances to the closest centre) or the GMM's negative
        mean log-likelihood per sample. None for random labels, which optimise nothing.
    name : str
        The baseline's name in :data:`BASELINES`.
    seconds : float
        Wall-clock time of the fit and prediction.
    """

    labels: np.ndarray
    objective: float | None
    name: str
    seconds: float


def _check_inputs(X: ArrayLike, k: int, seed: int) -> np.ndarray:
    """Validate the data, the number of clusters and the seed.

    Parameters
    ----------
    X : array-like, shape (N, D)

    Returns
    -------
    X : ndarray, shape (N, D)
        Floating point (float32 is kept to save memory on image data).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values; remove or impute them first")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > X.shape[0]:
        raise ValueError(f"k={k} clusters is more than the {X.shape[0]} samples in X")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return X


def _device_tensor(X: np.ndarray, device: str) -> torch.Tensor:
    return torch.as_tensor(X, dtype=torch.float64, device=resolve_device(device))


def random_labels(X: ArrayLike, k: int, seed: int) -> BaselineResult:
    """Labels drawn independently and uniformly from ``{0, ..., k-1}``.

    Parameters
    ----------
    X : array-like, shape (N, D)
        Only its number of rows is used.
    k : int
        Number of clusters.
    seed : int
        Seed of the numpy random generator.

    Returns
    -------
    BaselineResult
        With ``objective=None``.
    """
    X = _check_inputs(X, k, seed)
    start = time.perf_counter()
    labels = np.random.default_rng(int(seed)).integers(0, k, size=X.shape[0], dtype=np.int64)
    return BaselineResult(labels=labels, objective=None, name="random", seconds=time.perf_counter() - start)


def kmeans(X: ArrayLike, k: int, seed: int, n_init: int = 10, device: str | None = None) -> BaselineResult:
    """k-means with scikit-learn's defaults (k-means++ initialisation, Lloyd iterations).

    Parameters
    ----------
    X : array-like, shape (N, D)
    k : int
        Number of clusters.
    seed : int
        ``random_state`` of ``KMeans``.
    n_init : int, default 10
        Number of initialisations; the one with the lowest inertia is kept.
    device : str, optional
        None (default) runs scikit-learn's ``KMeans``, the paper's protocol. A torch device
        (``"cuda"``, or ``"cpu"``) runs the same algorithm in torch with the initialisations
        batched (flowmix.paper.device_baselines), for GPU machines.

    Returns
    -------
    BaselineResult
        ``objective`` is the inertia of the kept solution.
    """
    X = _check_inputs(X, k, seed)
    start = time.perf_counter()
    if device is not None:
        fit = device_baselines.kmeans(
            _device_tensor(X, device), k, n_init, torch.Generator().manual_seed(int(seed))
        )
        best = int(fit.inertia.argmin())
        labels = fit.labels[best].cpu().numpy()
        return BaselineResult(
            labels=labels,
            objective=float(fit.inertia[best]),
            name="kmeans",
            seconds=time.perf_counter() - start,
        )
    model = KMeans(n_clusters=k, n_init=n_init, random_state=int(seed))
    labels = model.fit_predict(X).astype(np.int64)
    return BaselineResult(
        labels=labels, objective=float(model.inertia_), name="kmeans", seconds=time.perf_counter() - start
    )


def gmm(X: ArrayLike, k: int, seed: int, n_init: int = 10, device: str | None = None) -> BaselineResult:
    """A Gaussian mixture with full covariances fitted by EM (scikit-learn's defaults otherwise).

    Parameters
    ----------
    X : array-like, shape (N, D)
    k : int
        Number of components.
    seed : int
        ``random_state`` of ``GaussianMixture``.
    n_init : int, default 10
        Number of EM initialisations; the one with the highest likelihood bound is kept.
    device : str, optional
        None (default) runs scikit-learn's ``GaussianMixture``, the paper's protocol. A torch
        device runs the same EM in torch with the initialisations batched
        (flowmix.paper.device_baselines): hours on a CPU for raw pixels become minutes on a GPU.

    Returns
    -------
    BaselineResult
        ``objective`` is the negative mean log-likelihood per sample of the kept mixture on ``X``,
        comparable with the mixture of flows' training loss.
    """
    X = _check_inputs(X, k, seed)
    start = time.perf_counter()
    if device is not None:
        fit = device_baselines.gaussian_mixture(
            _device_tensor(X, device), k, n_init, torch.Generator().manual_seed(int(seed))
        )
        return BaselineResult(
            labels=fit.labels.cpu().numpy(),
            objective=-fit.score,
            name="gmm",
            seconds=time.perf_counter() - start,
        )
    model = GaussianMixture(n_components=k, covariance_type="full", n_init=n_init, random_state=int(seed))
    labels = model.fit_predict(X).astype(np.int64)
    objective = -float(model.score(X))
    return BaselineResult(labels=labels, objective=objective, name="gmm", seconds=time.perf_counter() - start)


BASELINES: dict[str, Callable[..., BaselineResult]] = {
    "random": random_labels,
    "kmeans": kmeans,
    "gmm": gmm,
}
"""The baselines by name, each called as ``f(X, k, seed, **kwargs)``."""


def run_baseline(name: str, X: ArrayLike, k: int, seed: int, **kwargs: object) -> BaselineResult:
    """Run the baseline called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`BASELINES`: ``"random"``, ``"kmeans"`` or ``"gmm"``.
    X : array-like, shape (N, D)
    k : int
        Number of clusters.
    seed : int
    **kwargs
        Passed on, e.g. ``n_init`` for k-means and the GMM.

    Returns
    -------
    BaselineResult

    Raises
    ------
    ValueError
        If ``name`` is not a known baseline (the message lists the known ones).
    """
    try:
        fn = BASELINES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown baseline {name!r}; choose one of: {', '.join(sorted(BASELINES))}"
        ) from None
    return fn(X, k, seed, **kwargs)
