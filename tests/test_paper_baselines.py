"""Baselines of the paper: seeded, correct on easy data, with a usable objective."""

from __future__ import annotations

import numpy as np
import pytest

from flowmix.metrics import adjusted_rand
from flowmix.paper.baselines import BASELINES, BaselineResult, gmm, kmeans, random_labels, run_baseline


def blobs(seed: int = 0, n_per: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Three tight, far-apart Gaussian blobs in 2-D."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + 0.3 * rng.standard_normal((n_per, 2)) for c in centres])
    y = np.repeat(np.arange(3), n_per)
    return X, y


def test_registry_names():
    assert set(BASELINES) == {"random", "kmeans", "gmm"}


@pytest.mark.parametrize("name", ["random", "kmeans", "gmm"])
def test_same_seed_same_labels(name):
    X, _ = blobs()
    a = run_baseline(name, X, 3, seed=7, **({} if name == "random" else {"n_init": 2}))
    b = run_baseline(name, X, 3, seed=7, **({} if name == "random" else {"n_init": 2}))
    assert isinstance(a, BaselineResult)
    assert a.name == name
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.objective == b.objective
    assert a.labels.shape == (X.shape[0],)
    assert a.labels.dtype == np.int64
    assert a.labels.min() >= 0 and a.labels.max() < 3
    assert a.seconds >= 0


def test_random_labels_uniform_and_seed_dependent():
    X = np.zeros((3000, 1))
    result = random_labels(X, 4, seed=0)
    assert result.objective is None
    counts = np.bincount(result.labels, minlength=4)
    # Each of the 4 labels should get about 750; 5 standard deviations is about 120.
    assert counts.shape == (4,) and np.all(np.abs(counts - 750) < 120)
    assert not np.array_equal(result.labels, random_labels(X, 4, seed=1).labels)


@pytest.mark.parametrize("fn", [kmeans, gmm])
def test_separated_blobs_recovered_exactly(fn):
    X, y = blobs()
    result = fn(X, 3, seed=0)
    assert adjusted_rand(y, result.labels) == 1.0
    assert np.isfinite(result.objective)


def test_kmeans_objective_is_inertia():
    X, _ = blobs()
    result = kmeans(X, 3, seed=0)
    centres = np.stack([X[result.labels == j].mean(axis=0) for j in range(3)])
    inertia = ((X - centres[result.labels]) ** 2).sum()
    assert result.objective == pytest.approx(inertia, rel=1e-6)


def test_gmm_objective_is_negative_mean_log_likelihood():
    # With one component the maximum-likelihood fit is the sample mean and (biased) covariance.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 2)) @ np.array([[2.0, 0.0], [0.5, 1.0]])
    result = gmm(X, 1, seed=0, n_init=1)
    cov = np.cov(X.T, bias=True)
    diff = X - X.mean(axis=0)
    quad = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    loglik = -0.5 * (quad + np.log(np.linalg.det(cov)) + 2 * np.log(2 * np.pi))
    assert result.objective == pytest.approx(-loglik.mean(), rel=1e-4)


def test_objective_lower_for_better_fit():
    # The objective is for best-of-runs selection: the true number of blobs fits better than one.
    X, _ = blobs()
    assert gmm(X, 3, seed=0, n_init=1).objective < gmm(X, 1, seed=0, n_init=1).objective
    assert kmeans(X, 3, seed=0, n_init=1).objective < kmeans(X, 1, seed=0, n_init=1).objective


def test_unknown_name_lists_the_known_ones():
    X, _ = blobs()
    with pytest.raises(ValueError, match=r"unknown baseline 'dbscan'; choose one of: gmm, kmeans, random"):
        run_baseline("dbscan", X, 3, seed=0)


@pytest.mark.parametrize("name", ["random", "kmeans", "gmm"])
def test_bad_inputs(name):
    X, _ = blobs(n_per=3)
    with pytest.raises(ValueError, match="2-D array"):
        run_baseline(name, X[:, 0], 3, seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        run_baseline(name, X, 0, seed=0)
    with pytest.raises(ValueError, match="more than the 9 samples"):
        run_baseline(name, X, 10, seed=0)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_baseline(name, bad, 3, seed=0)
    with pytest.raises(ValueError, match="seed"):
        run_baseline(name, X, 3, seed=-1)
