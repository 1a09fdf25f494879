"""k-means and EM for a full-covariance Gaussian mixture in torch, on any device.

The paper's baselines are scikit-learn's ``KMeans`` and ``GaussianMixture`` (flowmix.paper.baselines runs
exactly those on the CPU). On raw pixels EM takes hours per run on a CPU, which would dominate
Table 1 on a GPU machine; these versions run there instead. They follow scikit-learn's algorithms
and defaults, and evaluate the ``n_init`` initialisations together, batched like the flows'
restarts:

- k-means: greedy k-means++ seeding with ``2 + int(log k)`` local trials, Lloyd iterations until
  the labels stop changing or the centres move less than ``tol`` times the mean feature variance,
  empty clusters re-seeded at the points farthest from their centres, lowest inertia kept;
- EM: responsibilities from one k-means run per initialisation, ``reg_covar`` added to every
  covariance's diagonal, stop when the mean log-likelihood changes by less than ``tol``, highest
  final mean log-likelihood kept, labels from a last E-step.

Random streams differ from scikit-learn's, so single runs differ; tests/test_paper_device_baselines.py
checks that objectives and clusterings agree with scikit-learn's on the same data. Everything is
computed in float64 (slow on GPUs without fast float64), in chunks of points, so that beyond
per-point vectors of size (runs, N) memory does not grow with N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmix._memory import reuse_freed_memory

# Elements of the largest temporary per chunk of points: bounds memory whatever N is.
_CHUNK_ELEMENTS = 2**26
# Elements of one (runs, K, D, D) covariance-sized tensor of a group of EM runs; EM holds about
# six of them at once (statistics, covariance, Cholesky factor, precision factor, temporaries),
# so 2**27 float64 elements mean about 6 GiB at the peak.
_COVARIANCE_ELEMENTS = 2**27


@dataclass(frozen=True)
class KMeansFit:
    """One row per initialisation.

    Attributes
    ----------
    labels : Tensor of int64, shape (I, N)
    inertia : Tensor of shape (I,)
    centres : Tensor of shape (I, K, D)
    """

    labels: Tensor
    inertia: Tensor
    centres: Tensor


@dataclass(frozen=True)
class GaussianMixtureFit:
    """The kept run's labels and mean log-likelihood; every run's lower bound and EM iterations.

    Attributes
    ----------
    labels : Tensor of int64, shape (N,)
        The kept run's labels.
    score : float
        The kept run's mean log-likelihood of X under its final parameters.
    best : int
        Index of the kept run.
    lower_bound : Tensor of shape (I,)
        Every run's last lower bound (the selection criterion).
    n_iter : Tensor of int64, shape (I,)
        Every run's number of EM iterations.
    """

    labels: Tensor
    score: float
    best: int
    lower_bound: Tensor
    n_iter: Tensor


def _chunks(n_points: int, per_point: int):
    step = max(1, _CHUNK_ELEMENTS // max(per_point, 1))
    for start in range(0, n_points, step):
        yield slice(start, min(start + step, n_points))


def _squared_distances(x: Tensor, x_sq: Tensor, centres: Tensor) -> Tensor:
    """||x_n - c_ik||^2 for points x (n, D) and centres (I, K, D): (I, n, K), clamped at 0."""
    n_init, k, dim = centres.shape
    cross = (x @ centres.reshape(n_init * k, dim).T).reshape(-1, n_init, k).transpose(0, 1)
    return (x_sq[None, :, None] - 2 * cross + centres.square().sum(-1)[:, None, :]).clamp_(min=0)


def _assign(X: Tensor, x_sq: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Closest centre of every point and its squared distance: (I, N) each."""
    n_init, k, _ = centres.shape
    labels = torch.empty(n_init, X.shape[0], dtype=torch.long, device=X.device)
    dist = torch.empty(n_init, X.shape[0], dtype=X.dtype, device=X.device)
    for part in _chunks(X.shape[0], n_init * k):
        best = _squared_distances(X[part], x_sq[part], centres).min(-1)
        dist[:, part], labels[:, part] = best.values, best.indices
    return labels, dist


def _kmeans_plus_plus(X: Tensor, x_sq: Tensor, k: int, n_init: int, gen: torch.Generator) -> Tensor:
    """Greedy k-means++ seeds for ``n_init`` runs at once: (I, K, D)."""
    n_points, device = X.shape[0], X.device
    trials = 2 + int(math.log(k))
    rows = torch.arange(n_init, device=device)
    first = torch.randint(n_points, (n_init,), generator=gen).to(device)
    centres = [X[first]]
    closest = _squared_distances(X, x_sq, centres[0][:, None, :])[..., 0]  # (I, N)
    potential = closest.sum(-1)
    for _ in range(1, k):
        targets = torch.rand(n_init, trials, generator=gen, dtype=X.dtype).to(device) * potential[:, None]
        ids = torch.searchsorted(closest.cumsum(-1), targets).clamp_(max=n_points - 1)  # (I, T)
        candidates = X[ids]  # (I, T, D)
        with_candidate = torch.minimum(
            closest[:, None, :], _squared_distances(X, x_sq, candidates).transpose(1, 2)
        )
        pick = with_candidate.sum(-1).argmin(-1)  # (I,)
        closest = with_candidate[rows, pick]
        potential = closest.sum(-1)
        centres.append(candidates[rows, pick])
    return torch.stack(centres, 1)


@reuse_freed_memory()
def kmeans(
    X: Tensor, k: int, n_init: int, generator: torch.Generator, max_iter: int = 300, tol: float = 1e-4
) -> KMeansFit:
    """Lloyd's k-means from ``n_init`` k-means++ seedings, all run together.

    Parameters
    ----------
    X : Tensor of float64, shape (N, D)
        Points on the device to compute on.
    k : int
        Number of clusters.
    n_init : int
        Number of independent runs.
    generator : torch.Generator
        A CPU generator for the seeding draws.

    Returns
    -------
    KMeansFit
        Every run's labels, inertia and centres.
    """
    x_sq = X.square().sum(-1)
    tol_scaled = tol * X.var(0, unbiased=False).mean()
    centres = _kmeans_plus_plus(X, x_sq, k, n_init, generator)
    labels, dist = _assign(X, x_sq, centres)
    done = torch.zeros(n_init, dtype=torch.bool, device=X.device)
    for _ in range(max_iter):
        # Points as rows, (run, cluster) pairs as columns: all runs' sums in one GEMM.
        one_hot = torch.nn.functional.one_hot(labels.T, k).to(X.dtype).reshape(X.shape[0], -1)  # (N, I*K)
        counts = one_hot.sum(0).reshape(n_init, k)
        sums = (one_hot.T @ X).reshape(n_init, k, -1)  # (I, K, D)
        if bool((counts == 0).any()):
            _reseed_empty(sums, counts, X, labels, dist)
        new = sums / counts.clamp(min=1)[..., None]
        new = torch.where(done[:, None, None], centres, new)
        shift = (new - centres).square().sum((1, 2))
        centres = new
        new_labels, dist = _assign(X, x_sq, centres)
        done |= (new_labels == labels).all(-1) | (shift <= tol_scaled)
        labels = new_labels
        if bool(done.all()):
            break
    return KMeansFit(labels=labels, inertia=dist.sum(-1), centres=centres)


def _reseed_empty(sums: Tensor, counts: Tensor, X: Tensor, labels: Tensor, dist: Tensor) -> None:
    """Give each empty cluster the point farthest from its centre, moved out of its old cluster.

    As scikit-learn: the cluster sums (I, K, D) and counts (I, K) are updated in place, so the
    old cluster's mean no longer includes the point.
    """
    for run, cluster in (counts == 0).nonzero().tolist():
        far = int(dist[run].argmax())
        old = int(labels[run, far])
        sums[run, old] -= X[far]
        counts[run, old] -= 1
        sums[run, cluster] = X[far]
        counts[run, cluster] = 1
        dist[run, far] = 0  # the next empty cluster takes the next farthest point


@reuse_freed_memory()
def gaussian_mixture(
    X: Tensor,
    k: int,
    n_init: int,
    generator: torch.Generator,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
) -> GaussianMixtureFit:
    """EM for a full-covariance Gaussian mixture from ``n_init`` k-means starts, run together.

    Runs are batched in groups small enough that their (runs, K, D, D) covariance tensors stay
    within ``_COVARIANCE_ELEMENTS`` (all 10 at once for MNIST, one at a time for raw CIFAR-10).
    The data are centred first, which changes neither labels nor likelihoods but keeps the
    uncentred second moments used for the covariances free of cancellation.

    Parameters
    ----------
    X : Tensor of float64, shape (N, D)
        Points on the device to compute on.
    k : int
        Number of components.
    n_init : int
        Number of EM runs; the one with the highest final mean log-likelihood is kept.
    generator : torch.Generator
        A CPU generator for the k-means seedings.

    Raises
    ------
    ValueError
        If a covariance is not positive definite even with ``reg_covar``.
    """
    start = kmeans(X, k, n_init, generator).labels
    X = X - X.mean(0)
    group = max(1, _COVARIANCE_ELEMENTS // (k * X.shape[1] ** 2))
    log_lik = torch.empty(n_init, dtype=X.dtype, device=X.device)
    n_iter = torch.empty(n_init, dtype=torch.long, device=X.device)
    best, best_params = -1, None
    for first in range(0, n_init, group):
        runs = slice(first, min(first + group, n_init))
        params, log_lik[runs], n_iter[runs] = _em(X, start[runs], k, max_iter, tol, reg_covar)
        # A NaN likelihood never wins (scikit-learn keeps the first run unless another is higher).
        ranked = log_lik[runs].nan_to_num(nan=-math.inf)
        top = int(ranked.argmax())
        if best < 0 or ranked[top] > log_lik[best]:
            # Copies, so that the group's tensors are freed before the next group runs.
            best, best_params = first + top, tuple(p[top : top + 1].clone() for p in params)
        del params
    # sklearn keeps the parameters of the last M-step and reports the last E-step's likelihood.
    labels, score = _final_e_step(X, *best_params)
    return GaussianMixtureFit(labels=labels, score=score, best=best, lower_bound=log_lik, n_iter=n_iter)


def _em(
    X: Tensor, start: Tensor, k: int, max_iter: int, tol: float, reg_covar: float
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, Tensor]:
    """EM from k-means labels ``start`` (I, N): final (weights, means, prec_chol), lower bounds (I,)
    and iterations (I,). A run stops when its mean log-likelihood changes by less than ``tol``."""
    n_init = start.shape[0]
    resp = torch.nn.functional.one_hot(start, k).to(X.dtype)  # (I, N, K)
    weights, means, prec_chol = _m_step(
        X, resp.sum(1), resp.transpose(1, 2) @ X, _scatter(X, resp), reg_covar
    )
    del resp
    log_lik = torch.full((n_init,), -math.inf, dtype=X.dtype, device=X.device)
    n_iter = torch.zeros(n_init, dtype=torch.long, device=X.device)
    active = torch.arange(n_init, device=X.device)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        new_log_lik, nk, sums, scatter = _e_step_sums(X, weights[active], means[active], prec_chol[active])
        change = new_log_lik - log_lik[active]
        log_lik[active] = new_log_lik
        n_iter[active] += 1
        weights[active], means[active], prec_chol[active] = _m_step(X, nk, sums, scatter, reg_covar)
        active = active[~(change.abs() < tol)]  # as scikit-learn, a NaN change does not stop a run
    return (weights, means, prec_chol), log_lik, n_iter


def _scatter(X: Tensor, resp: Tensor) -> Tensor:
    """sum_n resp_ink x_n x_n^T for every run and component: (I, K, D, D), in chunks."""
    n_init, _, k = resp.shape
    dim = X.shape[1]
    out = torch.zeros(n_init, k, dim, dim, dtype=X.dtype, device=X.device)
    for part in _chunks(X.shape[0], n_init * k * dim):
        _add_weighted_scatter(out, X[part], resp[:, part].permute(1, 0, 2))
    return out


def _add_weighted_scatter(out: Tensor, x: Tensor, resp: Tensor) -> None:
    """out[i, k] += sum_n resp[n, i, k] x_n x_n^T, as one (D, n) @ (n, I*K*D) product.

    Parameters
    ----------
    out : Tensor of shape (I, K, D, D)
    x : Tensor of shape (n, D)
    resp : Tensor of shape (n, I, K)
    """
    n_points, dim = x.shape
    weighted = (resp[..., None] * x[:, None, None, :]).reshape(n_points, -1)  # (n, I*K*D)
    product = (x.T @ weighted).reshape(dim, *out.shape[:2], dim)  # (D, I, K, D), symmetric per (i, k)
    out += product.permute(1, 2, 0, 3)


def _m_step(
    X: Tensor, nk: Tensor, sums: Tensor, scatter: Tensor, reg_covar: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Weights (I, K), means (I, K, D) and precision Cholesky factors (I, K, D, D)."""
    nk = nk + 10 * torch.finfo(X.dtype).eps
    means = sums / nk[..., None]
    cov = scatter / nk[..., None, None] - means[..., :, None] * means[..., None, :]
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info > 0).any()):
        raise ValueError(
            "EM failed: a component's covariance is not positive definite even with reg_covar; "
            "use fewer components, more data, or a larger reg_covar."
        )
    eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device).expand_as(chol)
    prec_chol = torch.linalg.solve_triangular(chol, eye, upper=False).transpose(-1, -2)
    return nk / X.shape[0], means, prec_chol


def _precision_products(means: Tensor, prec_chol: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """What every chunk of the E-step reuses: all precision factors side by side (D, I*K*D),
    the means through them (I, K, D), and log w-free constants log|P| - D/2 log(2 pi) (I, K)."""
    dim = means.shape[-1]
    side_by_side = prec_chol.permute(2, 0, 1, 3).reshape(dim, -1)
    means_through = (means[..., None, :] @ prec_chol)[..., 0, :]
    const = prec_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1) - 0.5 * dim * math.log(2 * math.pi)
    return side_by_side, means_through, const


def _weighted_log_prob(x: Tensor, log_weights: Tensor, products: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """log w_ik + log N(x_n; mu_ik, Sigma_ik) for points x (n, D): (n, I, K).

    The Mahalanobis terms of all runs and components come from one (n, D) @ (D, I*K*D) product.
    """
    side_by_side, means_through, const = products
    y = (x @ side_by_side).reshape(x.shape[0], *means_through.shape) - means_through  # (n, I, K, D)
    return -0.5 * y.square().sum(-1) + (const + log_weights)


def _e_step_sums(
    X: Tensor, weights: Tensor, means: Tensor, prec_chol: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One pass over X: mean log-likelihood (I,) and the sufficient statistics of the M-step."""
    n_init, k, dim = means.shape
    products, log_weights = _precision_products(means, prec_chol), weights.log()
    total = torch.zeros(n_init, dtype=X.dtype, device=X.device)
    nk = torch.zeros(n_init, k, dtype=X.dtype, device=X.device)
    sums = torch.zeros(n_init, k, dim, dtype=X.dtype, device=X.device)
    scatter = torch.zeros(n_init, k, dim, dim, dtype=X.dtype, device=X.device)
    for part in _chunks(X.shape[0], n_init * k * dim):
        x = X[part]
        weighted = _weighted_log_prob(x, log_weights, products)  # (n, I, K)
        norm = torch.logsumexp(weighted, -1)  # (n, I)
        total += norm.sum(0)
        resp = (weighted - norm[..., None]).exp_()  # (n, I, K)
        nk += resp.sum(0)
        sums += torch.einsum("nik,nd->ikd", resp, x)
        _add_weighted_scatter(scatter, x, resp)
    return total / X.shape[0], nk, sums, scatter


def _final_e_step(X: Tensor, weights: Tensor, means: Tensor, prec_chol: Tensor) -> tuple[Tensor, float]:
    """Most responsible component of every point (N,) and the mean log-likelihood, one mixture."""
    k, dim = means.shape[1:]
    products, log_weights = _precision_products(means, prec_chol), weights.log()
    labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device)
    total = 0.0
    for part in _chunks(X.shape[0], k * dim):
        weighted = _weighted_log_prob(X[part], log_weights, products)[:, 0]  # (n, K)
        labels[part] = weighted.argmax(-1)
        total += float(torch.logsumexp(weighted, -1).sum())
    return labels, total / X.shape[0]
