"""Stacked masked autoregressive flows (Papamakarios et al., 2017): the paper's flow family.

Convention (TensorFlow Probability's, as the paper): the flow maps latent z to data x with
``x_d = z_d * exp(log_scale_d(x_<d)) + shift_d(x_<d)``; densities use the inverse direction,
which needs a single network pass:
``log p(x) = log N(z; mu, sigma) - sum_d log_scale_d(x_<d)``.
With several layers the variable order is reversed between layers (and not restored: the base
lives in the last layer's order, as the reference implementation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from flowmix.flows.base import AutoregressiveFlow, Scale
from flowmix.fused import affine_normal_log_prob


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
        # Two outputs per dimension: shift and log-scale.
        super().__init__(n_stack, dim, hidden_units, n_layers, activation, generator, n_params=2)

    def floats_per_point(self) -> int:
        return sum(self.hidden_units) * self.n_layers + 4 * self.dim

    def to_latent_columns(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = self._through_hidden_layers(x)
        shift, log_scale = self.mades[-1](u).unbind(1)
        z = (u - shift) * torch.exp(-log_scale)
        return z, log_det - log_scale.sum(1)

    def log_prob_columns(self, x: Tensor, loc: Tensor, scale: Scale) -> Tensor:
        """log density with the last layer fused into the base density (flowmix.fused).

        The fused function keeps the training step's element-wise work small; with ``fused``
        False the generic path of :class:`~flowmix.flows.base.StackedFlow` runs instead.
        """
        if not self.fused:
            return super().log_prob_columns(x, loc, scale)
        u, log_det = self._through_hidden_layers(x)
        params = self.mades[-1](u)
        if isinstance(scale, Tensor):
            const = scale.log().sum(-1, keepdim=True) + 0.5 * self.dim * math.log(2 * math.pi)
        else:
            const = self.dim * (math.log(scale) + 0.5 * math.log(2 * math.pi))
        return affine_normal_log_prob(u, params, loc, scale) + (log_det - const)

    def _through_hidden_layers(self, x: Tensor) -> tuple[Tensor, Tensor | float]:
        """Apply every MAF layer but the last: (u, log-det so far), 0.0 for a one-layer flow."""
        log_det = 0.0
        u = x
        for made in self.mades[:-1]:
            shift, log_scale = made(u).unbind(1)
            u = ((u - shift) * torch.exp(-log_scale)).flip(1)
            log_det = log_det - log_scale.sum(1)
        return u, log_det

    @torch.no_grad()
    def to_data(self, z: Tensor) -> Tensor:
        """Latent to data: D network passes per layer."""
        u = z.transpose(1, 2)
        for i in reversed(range(len(self.mades))):
            if i < len(self.mades) - 1:
                u = u.flip(1)
            x = torch.zeros_like(u)
            # After pass d, coordinates 0..d are exact: each depends only on earlier ones.
            for _ in range(self.dim):
                params = self.mades[i](x)
                x = u * torch.exp(params[:, 1]) + params[:, 0]
            u = x
        return u.transpose(1, 2)
