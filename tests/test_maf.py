"""MAF- and MADE-specific checks; what every flow family must do is in test_flow_contract.py."""

import pytest
import torch

from flowmix.flows.maf import StackedMAF
from flowmix.nn import StackedMADE, StackedMaskedLinear, made_masks


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
    for layer in flow.modules():
        if isinstance(layer, StackedMaskedLinear):
            layer.zero_masked_()
    return flow.double()


# (8,) is the paper's network, which has its own hand-written step (flowmix.fused); (8, 6) runs
# the generic layer-by-layer path.
HIDDEN = [(8,), (8, 6)]


@pytest.mark.parametrize("hidden", [(7,), (7, 9)])
def test_made_outputs_depend_only_on_earlier_inputs(hidden):
    made = StackedMADE(2, 5, hidden, 2, "tanh", torch.Generator().manual_seed(3)).double()
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


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of"):
        StackedMADE(1, 2, (3,), 2, "swish")


def test_masked_entries_stay_zero_through_training_and_loading():
    layer = StackedMaskedLinear(3, made_masks(4, (6,), 2)[0], torch.Generator().manual_seed(0))
    masked_out = layer.mask == 0
    assert (layer.weight[:, masked_out] == 0).all()
    assert (layer.weight[:, ~masked_out] != 0).any()
    opt = torch.optim.Adam(layer.parameters(), lr=0.1, eps=1e-7, fused=True)
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(4, 10)).square().sum().backward()
        assert (layer.weight.grad[:, masked_out] == 0).all()
        opt.step()
    assert (layer.weight[:, masked_out] == 0).all()
    # A state dict with values at masked entries (as files from before this rule) is masked on load.
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["weight"] += 1.0
    layer.load_state_dict(state)
    assert (layer.weight[:, masked_out] == 0).all()
    torch.testing.assert_close(layer.weight[:, ~masked_out], state["weight"][:, ~masked_out])
