"""The batched MADE/MAF: Jacobians, autoregressive structure, batching equals computing alone."""

import pytest
import torch

from flowmix.flows import StackedMAF
from flowmix.nn import StackedMADE, made_masks


@pytest.fixture(autouse=True)
def float64():
    # Jacobian checks need double precision; restore the default for other modules.
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def make_flow(n_stack=3, dim=4, hidden=(8, 6), n_layers=2, seed=0):
    flow = StackedMAF(n_stack, dim, hidden, n_layers, "tanh", torch.Generator().manual_seed(seed))
    # Non-zero biases so that every code path carries a signal.
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)))
    return flow.double()


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_log_det_matches_autograd_jacobian_for_every_component(n_layers):
    flow = make_flow(n_layers=n_layers)
    x = torch.rand(5, 4)
    _, log_det = flow.to_latent(x)
    for s in range(flow.n_stack):
        for n in range(x.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda v, s=s: flow.to_latent(v[None])[0][s, 0], x[n])
            sign, expected = torch.linalg.slogdet(jac)
            assert sign != 0
            torch.testing.assert_close(log_det[s, n], expected, rtol=1e-10, atol=1e-10)


def test_single_layer_jacobian_is_lower_triangular():
    flow = make_flow(n_layers=1, dim=5)
    x = torch.rand(5)
    for s in range(flow.n_stack):
        jac = torch.autograd.functional.jacobian(lambda v, s=s: flow.to_latent(v[None])[0][s, 0], x)
        assert torch.all(jac.triu(diagonal=1) == 0)
        assert torch.all(jac.diagonal() != 0)


def test_made_outputs_depend_only_on_earlier_inputs():
    made = StackedMADE(2, 5, (7, 9), 2, "tanh", torch.Generator().manual_seed(3)).double()
    x = torch.rand(5)
    for s in range(2):
        jac = torch.autograd.functional.jacobian(lambda v, s=s: made(v[:, None])[s, :, :, 0], x)  # (2, D, D)
        for p in range(2):
            # d param_d / d x_j must vanish for j >= d: strictly lower triangular.
            assert torch.all(jac[p].triu() == 0)
            # ... and the network is not trivially zero below the diagonal.
            assert torch.any(jac[p].tril(diagonal=-1) != 0)


def test_masks_match_degrees():
    masks = made_masks(3, (4,), 2)
    assert [m.shape for m in masks] == [(4, 3), (6, 4)]
    # Input 3 (the last) must feed no hidden unit; the first output (dim 1) sees nothing.
    assert masks[0][:, 2].sum() == 0
    assert masks[1][0].sum() == 0 and masks[1][3].sum() == 0


def test_component_in_batch_equals_component_alone():
    flow = make_flow(n_stack=4, n_layers=2)
    x = torch.rand(7, 4)
    z_all, ld_all = flow.to_latent(x)
    for s in range(4):
        alone = flow.take(torch.tensor([s]))
        z, ld = alone.to_latent(x)
        torch.testing.assert_close(z[0], z_all[s], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ld[0], ld_all[s], rtol=1e-12, atol=1e-12)


def test_component_matches_explicit_unbatched_computation():
    flow = make_flow(n_stack=3, n_layers=1, hidden=(6,))
    x = torch.rand(5, 4)
    z_all, ld_all = flow.to_latent(x)
    layers = flow.mades[0].layers
    for s in range(3):
        h = torch.tanh(x @ (layers[0].weight[s] * layers[0].mask).T + layers[0].bias[s])
        out = h @ (layers[1].weight[s] * layers[1].mask).T + layers[1].bias[s]
        shift, log_scale = out[:, :4], out[:, 4:]
        torch.testing.assert_close(z_all[s], (x - shift) * torch.exp(-log_scale))
        torch.testing.assert_close(ld_all[s], -log_scale.sum(-1))


def test_shared_input_path_equals_stacked_input_path():
    flow = make_flow(n_stack=3)
    x = torch.rand(6, 4)
    z_shared, ld_shared = flow.to_latent(x)
    z_stacked, ld_stacked = flow.to_latent(x.expand(3, 6, 4))
    torch.testing.assert_close(z_shared, z_stacked)
    torch.testing.assert_close(ld_shared, ld_stacked)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_to_data_inverts_to_latent(n_layers):
    flow = make_flow(n_layers=n_layers)
    x = torch.rand(3, 8, 4)
    z, _ = flow.to_latent(x)
    torch.testing.assert_close(flow.to_data(z), x, rtol=1e-9, atol=1e-9)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        StackedMADE(1, 2, (3,), 2, "swish")
