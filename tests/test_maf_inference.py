"""The MAF's float32 inference kernel (flowmix.flows.maf_inference) against the flows' own modules."""

from __future__ import annotations

import pytest
import torch
from test_inference import trained_like

from flowmix.flows import make_flow
from flowmix.flows.base_distributions import DiagonalNormal
from flowmix.flows.maf_inference import BlockedMAF


@pytest.mark.parametrize(
    ("hidden", "n_layers", "activation"),
    [(256, 1, "tanh"), (300, 2, "tanh"), (20, 3, "relu"), (130, 1, "gelu"), (140, 2, "elu")],
)
@pytest.mark.parametrize("per_dimension_scales", [False, True])
def test_blocked_maf_equals_the_module_path(hidden, n_layers, activation, per_dimension_scales):
    dim, n_stack = 9, 4
    flows = make_flow(
        "maf",
        n_stack,
        dim,
        hidden_units=(hidden,),
        n_layers=n_layers,
        activation=activation,
        generator=torch.Generator().manual_seed(1),
    )
    flows = trained_like(flows, 2).double().set_fused(False)
    blocked = BlockedMAF(flows)
    assert len(blocked.hidden_blocks) == max(1, min(8, hidden // 128))
    x = torch.rand(dim, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    means = torch.rand(n_stack, dim, dtype=torch.float64)
    scale = torch.rand(n_stack, dim, dtype=torch.float64) + 0.2 if per_dimension_scales else 0.3
    base = DiagonalNormal(means, scale)
    expected = flows.log_prob_columns(x, base)
    # In float64 the blocks are the same sums, taken in another order: equal to ~1e-12.
    torch.testing.assert_close(blocked.log_prob_columns(x, base), expected, rtol=1e-12, atol=1e-9)


def test_blocked_maf_needs_the_staircase_masks_of_a_one_hidden_layer_made():
    assert BlockedMAF.supports(make_flow("maf", 2, 3, hidden_units=(8,)))
    assert not BlockedMAF.supports(make_flow("maf", 2, 3, hidden_units=(8, 8)))
    assert not BlockedMAF.supports(make_flow("spline", 2, 3, hidden_units=(8,)))
    flows = make_flow("maf", 2, 3, hidden_units=(8,))
    flows.mades[0].layers[0].mask[0, :] = torch.tensor([1.0, 0.0, 1.0])  # not ones then zeros
    assert not BlockedMAF.supports(flows)
    with pytest.raises(ValueError, match="one hidden layer"):
        BlockedMAF(make_flow("maf", 2, 3, hidden_units=(8, 8)))


@pytest.mark.parametrize(("name", "hidden_units", "kernel"), [("maf", (8,), BlockedMAF), ("maf", (8, 8), None),
                                                              ("spline", (8,), None)])  # fmt: skip
def test_the_flows_offer_their_transformers_kernel_or_none(name, hidden_units, kernel):
    flows = make_flow(name, 2, 3, hidden_units=hidden_units)
    found = flows.float32_inference()
    assert (found is None) if kernel is None else isinstance(found, kernel)
    has_kernel = "float32-inference" in flows.transformer.kernels
    assert has_kernel == (name == "maf")  # a MAF with deeper MADEs falls back to its modules
