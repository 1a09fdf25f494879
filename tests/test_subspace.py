"""Principal subspaces (flowmix.subspace): a proper density on R^D, exact against a reference, in the estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from flowmix import FlowMixture
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.flows.base_distributions import DiagonalNormal
from flowmix.nn import StackedMaskedLinear
from flowmix.recipes import Candidates
from flowmix.subspace import (
    AUTO_MAX_DIM,
    AUTO_MIN_FEATURES,
    explained_dim,
    fit_subspaces,
    from_subspace,
    largest_dim,
    leading_directions,
    to_subspace_columns,
    within_cluster_spectra,
)


def _curved_clusters(n_features: int, n_per: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three clusters, each a curved 2-D sheet in ``n_features`` dimensions with a little noise."""
    rng = np.random.RandomState(seed)
    X, y = [], []
    for k in range(3):
        t = rng.uniform(-1, 1, (n_per, 2))
        sheet = np.tanh(t) @ rng.randn(2, n_features) + (t[:, :1] ** 2) @ rng.randn(1, n_features)
        X.append(sheet + 4 * rng.randn(n_features) + 0.1 * rng.randn(n_per, n_features))
        y += [k] * n_per
    return np.vstack(X), np.array(y)


def _subspace_density(
    X: np.ndarray, labels: np.ndarray, dim: int, n_components: int, seed: int = 0
) -> MixtureOfFlows:
    responsibilities = np.eye(n_components)[labels][None]
    subspaces = fit_subspaces(X, responsibilities, dim)
    flows = make_flow(
        "spline", n_components, dim, hidden_units=(8,), generator=torch.Generator().manual_seed(seed)
    )
    noise = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a flow far from the identity (masks kept), so that the tests see its log-det
        for module in flows.modules():
            if isinstance(module, StackedMaskedLinear):
                module.weight.add_(0.3 * torch.randn(module.weight.shape, generator=noise) * module.mask)
                module.bias.add_(0.3 * torch.randn(module.bias.shape, generator=noise))
    shape = (1, n_components, dim)
    return MixtureOfFlows(flows, torch.zeros(shape), 1.0, torch.ones(shape), None, subspaces).double()


def test_spectra_of_hard_clusters_are_their_own_covariances():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3)) * [3.0, 1.0, 0.2]
    labels = (X[:, 0] > 0).astype(int)
    means, values, vectors, totals = within_cluster_spectra(X, np.eye(2)[labels][None], 3)
    for k in range(2):
        own = X[labels == k]
        assert np.allclose(means[0, k], own.mean(axis=0))
        covariance = vectors[0, k] @ np.diag(values[0, k]) @ vectors[0, k].T
        assert np.allclose(covariance, np.cov(own, rowvar=False, bias=True))
        assert np.all(np.diff(values[0, k]) <= 0)  # descending
        assert totals[0, k] == pytest.approx(np.trace(covariance))


def test_randomised_directions_match_the_exact_decomposition_on_wide_data():
    rng = np.random.RandomState(0)
    # 300 points in 400 dimensions: 5 strong directions over isotropic noise.
    centred = (
        rng.normal(size=(300, 5)) * [9.0, 7.0, 5.0, 4.0, 3.0] @ np.linalg.qr(rng.normal(size=(400, 5)))[0].T
    )
    centred += 0.1 * rng.normal(size=(300, 400))
    exact_values, exact_vectors = leading_directions(centred, 5)
    values, vectors = leading_directions(centred, 5, exact_max_features=100)
    np.testing.assert_allclose(values, exact_values, rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(vectors * exact_vectors, axis=0)), 1.0, atol=1e-6)  # same lines


def test_explained_dim_and_the_auto_rule():
    values, total = np.array([[5.0, 3.0, 1.0, 1.0]]), np.array([10.0])
    assert explained_dim(values, total, np.ones(1), 0.5) == 1
    assert explained_dim(values, total, np.ones(1), 0.8) == 2
    assert explained_dim(values, total, np.ones(1), 1.0) == 4
    assert explained_dim(values[:, :2], total, np.ones(1), 0.9) == 2  # not reached: all it was given
    rng = np.random.RandomState(0)
    even = rng.normal(size=(400, 200))  # 90% of an even spectrum takes some 170 directions: capped
    assert fit_subspaces(even, np.ones((1, 400, 1)), "auto").dim == AUTO_MAX_DIM
    sheet = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 200)) + 0.01 * even  # 3 directions hold it
    assert fit_subspaces(sheet, np.ones((1, 400, 1)), "auto").dim == 3
    assert fit_subspaces(even[:, : AUTO_MIN_FEATURES - 1], np.ones((1, 400, 1)), "auto") is None
    assert fit_subspaces(even, np.ones((1, 400, 1)), 7).dim == 7
    assert (
        largest_dim("auto", 784) == AUTO_MAX_DIM and largest_dim(5, 784) == 5 and largest_dim("auto", 3) == 3
    )


def test_fit_subspaces_refuses_a_dimension_that_is_not_a_subspace():
    X = np.random.RandomState(0).normal(size=(20, 4))
    assert fit_subspaces(X, np.ones((1, 20, 1)), None) is None
    assert fit_subspaces(X, np.ones((1, 20, 1)), 4) is None
    subspaces = fit_subspaces(X, np.ones((1, 20, 1)), 2)
    assert subspaces.dim == 2 and tuple(subspaces.basis.shape) == (1, 1, 4, 2)
    basis = subspaces.basis[0, 0].double()
    assert torch.allclose(basis.T @ basis, torch.eye(2, dtype=torch.float64), atol=1e-6)


def test_constant_and_duplicated_features_keep_a_finite_positive_density():
    rng = np.random.RandomState(0)
    X = np.zeros((30, 10))
    X[:, :3] = rng.normal(size=(30, 3))
    X[:, 3] = X[:, 0]  # duplicated column; the rest are constant (pixels that never vary)
    subspaces = fit_subspaces(X, np.ones((1, 30, 1)), 2)
    assert torch.all(subspaces.scale > 0) and torch.all(subspaces.residual_scale > 0)
    density = _subspace_density(X, np.zeros(30, dtype=int), 2, 1)
    assert torch.isfinite(density.log_prob(torch.as_tensor(X))).all()


def test_identity_flows_give_the_probabilistic_pca_gaussian():
    """With identity flows and standard normal bases a component is exactly N(m, W A^2 W^T + s^2 (I - W W^T))."""
    X, y = _curved_clusters(6)
    subspaces = fit_subspaces(X, np.eye(3)[y][None], 2)
    flows = make_flow("maf", 3, 2, hidden_units=(4,))
    with torch.no_grad():
        for param in flows.parameters():
            param.zero_()  # an affine MAF with zero parameters is the identity
    density = MixtureOfFlows(flows, torch.zeros(1, 3, 2), 1.0, torch.ones(1, 3, 2), None, subspaces).double()
    points = X[::7]
    got = density.component_log_prob(torch.as_tensor(points))[0].detach().numpy()
    for k in range(3):
        mean = subspaces.mean[0, k].double().numpy()
        basis = subspaces.basis[0, k].double().numpy()
        scale = subspaces.scale[0, k].double().numpy()
        residual = float(subspaces.residual_scale[0, k])
        covariance = basis @ np.diag(scale**2) @ basis.T + residual**2 * (np.eye(6) - basis @ basis.T)
        expected = multivariate_normal(mean, covariance).logpdf(points)
        np.testing.assert_allclose(got[k], expected, rtol=1e-5, atol=1e-5)


def test_projection_agrees_with_a_full_rotation_reference():
    """log p(x) from the projection equals the change of variables through a complete orthonormal basis."""
    X, y = _curved_clusters(7)
    density = _subspace_density(X, y, 3, 3)
    density.flows.set_fused(False)  # the plain autograd path: the reference arithmetic
    points = torch.as_tensor(X[::5])
    got = density.component_log_prob(points)[0]
    subspaces = density.subspaces
    mean, basis, scale = subspaces.mean[0], subspaces.basis[0], subspaces.scale[0]
    residual = subspaces.residual_scale[0]
    standard = DiagonalNormal(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
    for k in range(3):
        # Complete the basis: Q = [W, W_perp], orthonormal, det +-1.
        q, _ = torch.linalg.qr(torch.cat([basis[k], torch.randn(7, 4, dtype=torch.float64)], dim=1))
        q = torch.cat([basis[k], q[:, 3:]], dim=1)
        rotated = (points - mean[k]) @ q  # (n, 7): subspace coordinates then the complement's
        y_k = rotated[:, :3] / scale[k]
        flow_log_prob = density.flows.take(torch.tensor([k])).log_prob_columns(y_k.T[None], standard)[0]
        rest = torch.distributions.Normal(0.0, residual[k]).log_prob(rotated[:, 3:]).sum(1)
        expected = flow_log_prob - scale[k].log().sum() + rest
        torch.testing.assert_close(got[k], expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("n_features", [2, 3])
def test_a_one_dimensional_subspace_density_integrates_to_one(n_features):
    rng = np.random.RandomState(1)
    t = rng.uniform(-1, 1, 400)
    X = np.stack([t, 0.5 * t**2] + [0.3 * rng.normal(size=400)] * (n_features - 2), axis=1)
    X[:, 1] += 0.2 * rng.normal(size=400)
    density = _subspace_density(X, np.zeros(400, dtype=int), 1, 1)
    n = 260 if n_features == 2 else 90
    axes = [np.linspace(X[:, j].min() - 3, X[:, j].max() + 3, n) for j in range(n_features)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, n_features)
    cell = math.prod(float(a[1] - a[0]) for a in axes)
    with torch.no_grad():
        log_p = torch.cat([density.log_prob(torch.as_tensor(part))[0] for part in np.array_split(grid, 20)])
    total = float(log_p.exp().sum()) * cell
    assert abs(total - 1) < 0.02, total


def test_samples_follow_the_subspace_model():
    """from_subspace puts whitened coordinates back on the subspace and the noise across it."""
    mean, basis = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[[1.0], [0.0], [0.0]]])
    scale, residual = torch.tensor([[2.0]]), torch.tensor([0.5])
    y, noise = torch.randn(1, 20000, 1), torch.randn(1, 20000, 3)
    x = from_subspace(y, noise, mean, basis, scale, residual)[0]
    assert torch.allclose(x.mean(0), mean[0], atol=0.05)
    assert torch.allclose(x.std(0), torch.tensor([2.0, 0.5, 0.5]), atol=0.03)
    coordinates, _ = to_subspace_columns(x.T, mean, basis, scale, residual)
    torch.testing.assert_close(coordinates[0, 0], y[0, :, 0], rtol=1e-5, atol=1e-5)


def test_the_estimator_fits_wide_data_on_subspaces_and_round_trips(tmp_path):
    X, y = _curved_clusters(60)  # wide: subspaces, and candidates on 50 principal components
    model = FlowMixture(
        3, n_epochs=10, recipe=Candidates().with_settings(pretrain_epochs=5), random_state=0
    ).fit(X)
    assert 1 <= model.subspace_dim_ <= AUTO_MAX_DIM
    assert model.density_.flows.dim == model.subspace_dim_
    assert "subspaces" in model.recipe_trace_ and "candidate features" in model.recipe_trace_
    assert [step["step"] for step in model.recipe_trace_.steps].count("subspaces") == 1
    assert model.base_means_.shape == (3, X.shape[1]) and np.all(model.base_scales_ > 0)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, model.labels_) > 0.95
    sample, _ = model.sample(5)
    assert sample.shape == (5, X.shape[1]) and np.isfinite(sample).all()
    scores = model.score_samples(X[:20])
    assert np.isfinite(scores).all()
    model.save(tmp_path / "wide")
    loaded = FlowMixture.load(tmp_path / "wide")
    assert loaded.subspace_dim_ == model.subspace_dim_
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.score_samples(X[:20]), scores)
    exact = model.set_params(inference_dtype="float64").score_samples(X[:20])
    np.testing.assert_allclose(exact, scores, rtol=1e-4)


def test_narrow_data_keeps_flows_on_every_feature():
    X, _ = _curved_clusters(4)
    model = FlowMixture(
        3, n_epochs=2, recipe=Candidates().with_settings(pretrain_epochs=1), random_state=0
    ).fit(X)
    assert model.subspace_dim_ is None and model.density_.flows.dim == 4
    assert "subspaces" not in model.recipe_trace_


def test_an_explicit_subspace_dim_and_bad_values():
    X, _ = _curved_clusters(6)
    recipe = Candidates().with_settings(pretrain_epochs=1)
    model = FlowMixture(3, flow_params={"subspace_dim": 2}, n_epochs=2, recipe=recipe, random_state=0).fit(X)
    assert model.subspace_dim_ == 2
    for bad in (0, -1, 2.5, "two"):
        with pytest.raises(ValueError, match="subspace_dim must be a positive integer or 'auto'"):
            FlowMixture(3, flow_params={"subspace_dim": bad}).fit(X)
