"""Stacked masked autoregressive flows (Papamakarios et al., 2017): the paper's flow family.

Convention (TensorFlow Probability's, as the paper): the flow maps latent z to data x with
``x_d = z_d * exp(log_scale_d(x_<d)) + shift_d(x_<d)``; densities use the inverse direction,
which needs a single network pass:
``log p(x) = log N(z; mu, sigma) - sum_d log_scale_d(x_<d)``.
With several layers the variable order is reversed between layers (and not restored: the base
lives in the last layer's order, as the reference implementation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from flowmix.flows.base import AutoregressiveFlow, Transformer
from flowmix.flows.base_distributions import DiagonalNormal
from flowmix.flows.maf_inference import BlockedMAF
from flowmix.fused import affine_normal_log_prob


class Affine(Transformer):
    """z = (u - shift) exp(-log_scale), from the conditioner's (shift, log_scale) per coordinate.

    Its kernel fuses the last layer with a diagonal normal base
    (``flowmix.fused.affine_normal_log_prob``); float32 inference of one-hidden-layer MAFs
    skips the masked half of every weight matrix (:class:`flowmix.flows.maf_inference.BlockedMAF`).
    """

    name = "affine"
    kernels = frozenset({"last-layer-with-base", "float32-inference"})

    def n_params(self) -> int:
        return 2  # shift and log-scale

    def forward(self, u: Tensor, params: Tensor, fused: bool) -> tuple[Tensor, Tensor]:
        shift, log_scale = params.unbind(1)
        return (u - shift) * torch.exp(-log_scale), -log_scale

    def inverse(self, z: Tensor, params: Tensor) -> Tensor:
        return z * torch.exp(params[:, 1]) + params[:, 0]

    def floats_per_layer(self, dim: int) -> int:
        # Not counted since flowmix 0.1.0 sized its chunks, and the presets' float64 results
        # depend on the chunks in their last bits.
        return 0

    def training_floats_per_layer(self, dim: int) -> int:
        return 4 * dim  # the conditioner's shift and log-scale, the output and exp(-log_scale)

    def normal_log_prob(self, u: Tensor, params: Tensor, base: DiagonalNormal) -> Tensor:
        return affine_normal_log_prob(u, params, base.loc, base.scale)

    def float32_inference(self, flows: AutoregressiveFlow) -> BlockedMAF | None:
        return BlockedMAF(flows) if BlockedMAF.supports(flows) else None


class StackedMAF(AutoregressiveFlow):
    """``S`` MAFs of ``n_layers`` MADE layers each, evaluated with one bmm per network layer.

    Parameters
    ----------
    n_stack : int
        Flows on the stack axis.
    dim : int
        Dimension D of the data.
    hidden_units : sequence of int, default=(10,)
        Hidden layer widths of each MADE.
    n_layers : int, default=1
        MADE layers per flow.
    activation : str, default="tanh"
        Hidden units' activation (flowmix.nn.ACTIVATIONS).
    generator : torch.Generator or None, default=None
        Seeds the initial weights (Glorot-uniform, as Keras).

    Examples
    --------
    >>> flow = StackedMAF(4, 3, hidden_units=(8,))
    >>> z, log_det = flow.to_latent_columns(torch.randn(3, 5))
    >>> tuple(z.shape), tuple(log_det.shape)
    ((4, 3, 5), (4, 5))
    """

    family = "maf"

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden_units: Sequence[int] = (10,),
        n_layers: int = 1,
        activation: str = "tanh",
        generator: torch.Generator | None = None,
    ):
        super().__init__(n_stack, dim, hidden_units, n_layers, activation, generator, Affine())
