"""The torch k-means and EM (flowmix.paper.device_baselines) against scikit-learn's on the same data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from flowmix.paper import device_baselines
from flowmix.paper.baselines import gmm, kmeans
from flowmix.paper.runner import GridSpec, run_grid


@pytest.fixture(scope="module")
def digits():
    """1797 handwritten digits (bundled with scikit-learn), reduced to 20 PCA dimensions."""
    X, y = load_digits(return_X_y=True)
    return PCA(20, random_state=0).fit_transform(X), y


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    y = np.repeat(np.arange(4), 50)
    return centres[y] + rng.normal(size=(200, 3)), y


@pytest.mark.parametrize("method", [kmeans, gmm])
def test_separated_blobs_are_recovered_exactly(method):
    X, y = _blobs()
    result = method(X, 4, seed=0, device="cpu")
    assert adjusted_rand_score(y, result.labels) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_reaches_scikit_learns_inertia(digits, seed):
    X, y = digits
    ours, theirs = kmeans(X, 10, seed, device="cpu"), kmeans(X, 10, seed)
    # Best of 10 seedings each: the same optimum up to which local optimum the draws find.
    assert ours.objective <= theirs.objective * 1.005
    assert adjusted_rand_score(theirs.labels, ours.labels) > 0.7
    assert abs(adjusted_rand_score(y, ours.labels) - adjusted_rand_score(y, theirs.labels)) < 0.05


def test_gmm_reaches_scikit_learns_likelihood(digits):
    X, _ = digits
    ours, theirs = gmm(X, 10, 1, device="cpu"), gmm(X, 10, 1)
    # objective = negative mean log-likelihood per sample (about 55 nats here).
    assert ours.objective <= theirs.objective + 0.25
    assert adjusted_rand_score(theirs.labels, ours.labels) > 0.7


def test_gmm_likelihood_matches_scikit_learn_for_the_same_parameters(digits):
    # One EM run from the same start (k-means labels) must follow scikit-learn's updates exactly.
    from sklearn.mixture import GaussianMixture

    X, _ = digits
    Xt = torch.as_tensor(X, dtype=torch.float64)
    start = device_baselines.kmeans(Xt, 10, 1, torch.Generator().manual_seed(0)).labels[0].numpy()
    theirs = GaussianMixture(10, covariance_type="full", max_iter=5, tol=0.0, init_params="random_from_data")
    resp = np.eye(10)[start]
    theirs._initialize(X, resp)  # the parameters of the M-step from the k-means responsibilities
    theirs.converged_ = False
    lower_bounds = []
    for _ in range(5):
        log_norm, log_resp = theirs._e_step(X)
        theirs._m_step(X, log_resp)
        lower_bounds.append(log_norm)
    ours = device_baselines.gaussian_mixture(Xt, 10, 1, torch.Generator().manual_seed(0), max_iter=5, tol=0.0)
    assert int(ours.n_iter[0]) == 5
    np.testing.assert_allclose(float(ours.lower_bound[0]), lower_bounds[-1], rtol=1e-10)
    np.testing.assert_allclose(ours.score, theirs.score(X), rtol=1e-10)


def test_chunking_does_not_change_results(digits, monkeypatch):
    X = torch.as_tensor(digits[0], dtype=torch.float64)
    whole = device_baselines.gaussian_mixture(X, 5, 3, torch.Generator().manual_seed(0), max_iter=10)
    monkeypatch.setattr(device_baselines, "_CHUNK_ELEMENTS", 5000)  # about 50 points per chunk
    chunked = device_baselines.gaussian_mixture(X, 5, 3, torch.Generator().manual_seed(0), max_iter=10)
    torch.testing.assert_close(chunked.labels, whole.labels)
    torch.testing.assert_close(chunked.lower_bound, whole.lower_bound, rtol=1e-10, atol=1e-10)


def test_empty_cluster_takes_the_farthest_point_from_its_old_cluster():
    X = torch.tensor([[0.0], [0.1], [5.0], [9.0]], dtype=torch.float64)
    labels = torch.tensor([[0, 0, 1, 1]])
    dist = torch.tensor([[0.0025, 0.0025, 4.0, 5.0]], dtype=torch.float64)  # point 3 is the farthest
    sums = torch.tensor([[[0.1], [14.0], [0.0]]], dtype=torch.float64)
    counts = torch.tensor([[2.0, 2.0, 0.0]], dtype=torch.float64)
    device_baselines._reseed_empty(sums, counts, X, labels, dist)
    torch.testing.assert_close(
        sums / counts[..., None], torch.tensor([[[0.05], [5.0], [9.0]]], dtype=torch.float64)
    )


def test_degenerate_covariance_gives_an_actionable_error():
    X = torch.tensor([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite even with reg_covar"):
        device_baselines.gaussian_mixture(X, 2, 1, torch.Generator().manual_seed(0), reg_covar=0.0)


def test_runner_records_the_torch_implementation_separately(tmp_path):
    spec = GridSpec(datasets=["smile"], methods=["kmeans"], runs=2, quick=True)
    run_grid(spec, tmp_path, progress=False)
    on_device = GridSpec(datasets=["smile"], methods=["kmeans"], runs=2, quick=True, baselines_on_device=True)
    summary = run_grid(on_device, tmp_path, progress=False)
    assert summary.new_records == 2  # not mistaken for the scikit-learn runs already there
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    implementations = [r["config"].get("implementation", "sklearn") for r in records]
    assert implementations == ["sklearn", "sklearn", "torch", "torch"]
    assert all(r["device"] == "cpu" for r in records)


def test_runs_in_groups_equal_runs_all_at_once(digits, monkeypatch):
    X = torch.as_tensor(digits[0], dtype=torch.float64)
    together = device_baselines.gaussian_mixture(X, 5, 4, torch.Generator().manual_seed(0), max_iter=10)
    monkeypatch.setattr(device_baselines, "_COVARIANCE_ELEMENTS", 5 * 20 * 20)  # one run per group
    grouped = device_baselines.gaussian_mixture(X, 5, 4, torch.Generator().manual_seed(0), max_iter=10)
    assert grouped.best == together.best
    torch.testing.assert_close(grouped.labels, together.labels)
    torch.testing.assert_close(grouped.lower_bound, together.lower_bound, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grouped.n_iter, together.n_iter)


@pytest.mark.parametrize(
    ("device", "message"),
    [("tpu:9", "is not a torch device; use 'cpu' or 'cuda'"), ("cuda", "torch sees no CUDA GPU")],
)
def test_bad_baseline_device_gets_the_estimators_message(device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    X, _ = _blobs()
    with pytest.raises(ValueError, match=message):
        kmeans(X, 4, seed=0, device=device)
