"""The contract every flow family keeps, run for each family x activation x kernel path.

The paths: the fused training step with a transformer's compiled kernel where it has one
("compiled"), the same step in torch alone ("torch"), and the plain autograd reference. A family
added to flowmix.flows.FLOW_FAMILIES is covered here without new tests.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from flowmix import FlowMixture
from flowmix.density import MixtureOfFlows
from flowmix.flows import FLOW_FAMILIES, make_flow, spline_native
from flowmix.flows.base_distributions import DiagonalNormal, FullNormal
from flowmix.nn import ACTIVATIONS, StackedMaskedLinear

FAMILIES = sorted(FLOW_FAMILIES)
ACTIVATION_NAMES = sorted(ACTIVATIONS)
# (8,) is the paper's network shape, which has a hand-written step for tanh; (8, 6) is generic.
HIDDEN = [(8,), (8, 6)]

family = pytest.mark.parametrize("name", FAMILIES)
activation = pytest.mark.parametrize("act", ACTIVATION_NAMES)
KERNEL_PATHS = ["compiled", "torch", "reference"]
path = pytest.mark.parametrize("fused", KERNEL_PATHS)


@pytest.fixture(autouse=True)
def _kernel_path(request, monkeypatch):
    """The "torch" path turns the compiled kernels off for the test; the others leave them on."""
    params = getattr(request.node, "callspec", None)
    chosen = params.params.get("fused", params.params.get("kernel")) if params is not None else None
    monkeypatch.setattr(spline_native, "ENABLED", spline_native.ENABLED and chosen != "torch")


hidden = pytest.mark.parametrize("hidden", HIDDEN, ids=["one-hidden", "two-hidden"])


def build(
    name,
    *,
    n_stack=3,
    dim=4,
    hidden=(8, 6),
    n_layers=2,
    act="tanh",
    fused="compiled",
    seed=0,
    dtype=torch.float64,
):
    """A flow away from its initial point (every parameter perturbed), prepared on data in [0, 1]^D."""
    flow = make_flow(
        name,
        n_stack,
        dim,
        hidden_units=hidden,
        n_layers=n_layers,
        activation=act,
        generator=torch.Generator().manual_seed(seed),
    )
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    for layer in flow.modules():
        if isinstance(layer, StackedMaskedLinear):
            layer.zero_masked_()
    flow.prepare(torch.rand(200, dim, generator=gen))
    return flow.set_fused(fused != "reference").to(dtype)


def points(dim=4, n=6, seed=2, dtype=torch.float64):
    # Mostly inside the data box, some outside it (the spline's identity tails).
    return torch.rand(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 1.6 - 0.3


@family
@activation
@path
@hidden
@pytest.mark.parametrize("n_layers", [1, 3])
def test_log_det_matches_the_autograd_jacobian(name, act, fused, hidden, n_layers):
    flow = build(name, act=act, fused=fused, hidden=hidden, n_layers=n_layers)
    x = points()
    _, log_det = flow.to_latent(x)
    for s in range(flow.n_stack):
        for n in range(x.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda v, s=s: flow.to_latent(v[None])[0][s, 0], x[n])
            expected = torch.linalg.slogdet(jac).logabsdet
            torch.testing.assert_close(log_det[s, n], expected, rtol=1e-8, atol=1e-8)


@family
@activation
@hidden
def test_one_layer_is_autoregressive(name, act, hidden):
    # z_d depends on x_<=d only: the Jacobian of a single layer is lower-triangular.
    flow = build(name, act=act, hidden=hidden, n_layers=1)
    for x in points(n=3):
        for s in range(flow.n_stack):
            jac = torch.autograd.functional.jacobian(lambda v, s=s: flow.to_latent(v[None])[0][s, 0], x)
            assert torch.all(jac.triu(1) == 0)
            assert torch.all(jac.diagonal() > 0)


@family
@path
@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_sampling_inverts_the_density_direction(name, fused, n_layers):
    flow = build(name, fused=fused, n_layers=n_layers)
    x = points(n=20).expand(flow.n_stack, 20, 4)
    z, _ = flow.to_latent(x)
    torch.testing.assert_close(flow.to_data(z), x, rtol=1e-7, atol=1e-7)


@family
def test_round_trip_holds_in_float32(name):
    flow = build(name, dtype=torch.float32, n_layers=3)
    x = points(n=50, dtype=torch.float32).expand(flow.n_stack, 50, 4)
    z, log_det = flow.to_latent(x)
    assert torch.isfinite(log_det).all()
    torch.testing.assert_close(flow.to_data(z), x, rtol=1e-3, atol=1e-3)


@family
@activation
@hidden
@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_fused_path_equals_reference_path(name, act, hidden, kernel):
    x = points(n=30).T
    loc, scale = torch.rand(3, 4, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64) + 0.5
    fast = build(name, act=act, hidden=hidden, fused=kernel)
    reference = build(name, act=act, hidden=hidden, fused="reference")
    tril = torch.linalg.cholesky(torch.eye(4, dtype=torch.float64) + 0.3).expand(3, 4, 4)
    for base in (DiagonalNormal(loc, 0.3), DiagonalNormal(loc, scale), FullNormal(loc, tril)):
        torch.testing.assert_close(fast.log_prob_columns(x, base), reference.log_prob_columns(x, base))
    # The same parameters' gradients, through a loss that weighs points unequally.
    for flow in (fast, reference):
        flow.log_prob_columns(x, DiagonalNormal(loc, scale)).square().sum().backward()
    for (key, got), expected in zip(fast.named_parameters(), reference.parameters(), strict=True):
        # The two paths round the spline's bin edges differently, in the last bits.
        tolerance = 1e-6 * float(expected.grad.abs().max())
        torch.testing.assert_close(got.grad, expected.grad, rtol=1e-6, atol=tolerance, msg=key)


@family
@path
def test_a_flow_in_the_stack_equals_the_same_flow_alone(name, fused):
    flow = build(name, fused=fused, n_stack=4)
    x = points(n=9)
    z_all, ld_all = flow.to_latent(x)
    for s in range(flow.n_stack):
        alone = flow.take(torch.tensor([s]))
        assert alone.n_stack == 1
        z, ld = alone.to_latent(x)
        torch.testing.assert_close(z[0], z_all[s], rtol=0, atol=1e-12)
        torch.testing.assert_close(ld[0], ld_all[s], rtol=0, atol=1e-12)
    # Shared points (D, N) and the same points given to every flow (S, D, N) agree.
    z_stacked, ld_stacked = flow.to_latent(x.expand(4, *x.shape))
    torch.testing.assert_close(z_stacked, z_all)
    torch.testing.assert_close(ld_stacked, ld_all)


@family
@activation
@path
@hidden
def test_gradients_reach_every_parameter(name, act, fused, hidden):
    flow = build(name, act=act, fused=fused, hidden=hidden, dtype=torch.float32)
    loc = torch.zeros(3, 4)
    flow.log_prob_columns(points(n=40, dtype=torch.float32).T, DiagonalNormal(loc, 0.5)).sum().backward()
    for key, param in flow.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
        assert param.grad.abs().sum() > 0, key


@family
@path
def test_two_dimensional_density_integrates_to_one(name, fused):
    flow = build(name, fused=fused, n_stack=2, dim=2, n_layers=2)
    density = MixtureOfFlows(flow, torch.full((1, 2, 2), 0.5, dtype=torch.float64), 0.3).double()
    with torch.no_grad():
        density.logits.copy_(torch.tensor([[0.3, -0.2]]))
    # The spline works in the box of its data ([0, 1]^2 widened); the grid covers far beyond.
    side = torch.linspace(-4, 5, 400, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        mass = density.log_prob(grid)[0].exp().sum() * (side[1] - side[0]) ** 2
    assert abs(float(mass) - 1) < 0.02


@family
def test_extreme_inputs_give_finite_densities(name):
    for dtype in (torch.float32, torch.float64):
        flow = build(name, dtype=dtype)
        x = torch.tensor([[-1e3, 0.0, 1.0, 1e3], [0.5, -0.1, 1.1, 0.0]], dtype=dtype).T.contiguous()
        log_prob = flow.log_prob_columns(x, DiagonalNormal(torch.zeros(3, 4, dtype=dtype), 1.0))
        assert torch.isfinite(log_prob).all()


@family
def test_free_parameter_count(name):
    flow = build(name)
    total = 0
    for module in flow.modules():
        if isinstance(module, StackedMaskedLinear):
            total += int(module.mask.sum()) + module.bias.shape[-1]
    assert flow.n_free_parameters() == total > 0


@family
def test_config_rebuilds_the_architecture(name):
    flow = build(name)
    again = FLOW_FAMILIES[name](
        flow.n_stack,
        flow.dim,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in flow.config().items()},
    )
    assert [p.shape for p in again.parameters()] == [p.shape for p in flow.parameters()]
    assert flow.floats_per_point() > 0


# ---------------------------------------------------------------- through the estimator


@pytest.fixture(scope="module", params=FAMILIES)
def fitted(request):
    X = np.random.RandomState(0).rand(150, 2)
    model = FlowMixture(
        2,
        flow=request.param,
        flow_params={"hidden_units": (8,), "n_layers": 2},
        n_epochs=15,
        batch_size=64,
        random_state=0,
    ).fit(X)
    return model, X


def test_save_and_load_give_identical_results(fitted, tmp_path):
    model, X = fitted
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    assert loaded.density_.flows.family == model.flow
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    sample, _ = loaded.sample(5)
    np.testing.assert_array_equal(sample, model.sample(5)[0])


def test_chunked_inference_equals_one_chunk(fitted, monkeypatch):
    from flowmix import density

    model, X = fitted
    # float64, whose products of other widths round differently in the last bits only (float32
    # chunks: tests/test_inference.py).
    model = copy.deepcopy(model).set_params(inference_dtype="float64")
    whole = model.score_samples(X)
    per_point = model.n_components * model.density_.flows.floats_per_point()
    monkeypatch.setattr(density, "INFERENCE_CHUNK_FLOATS", 7 * per_point)
    assert model.density_.points_per_chunk() == 7
    np.testing.assert_allclose(model.score_samples(X), whole, rtol=1e-12, atol=1e-12)


def test_samples_lie_where_the_density_is(fitted):
    model, X = fitted
    sample, labels = model.sample(400)
    assert sample.shape == (400, 2) and set(np.unique(labels)) <= {0, 1}
    # Samples are typical: their mean log density is close to that of fresh draws' expectation,
    # far above points spread uniformly over a larger box.
    spread = np.random.RandomState(1).uniform(-2, 3, size=(400, 2))
    assert model.score(sample) > model.score(spread) + 1
    assert math.isfinite(model.score(X))
