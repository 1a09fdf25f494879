"""Stacked masked autoregressive flows (Papamakarios et al., 2017).

One :class:`StackedMAF` holds ``S`` independent flows that share an architecture; the mixture
puts its components and restarts on the stack axis.

Convention (TensorFlow Probability's, as the paper): the flow maps latent z to data x with
``x_d = z_d * exp(log_scale_d(x_<d)) + shift_d(x_<d)``; densities use the inverse direction,
which needs a single network pass:
``log p(x) = log N(z; mu, sigma) - sum_d log_scale_d(x_<d)``.
With several layers the variable order is reversed between layers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowmix.fused import affine_normal_log_prob
from flowmix.nn import StackedMADE


class StackedMAF(nn.Module):
    """``S`` MAFs of ``n_layers`` MADE layers each, evaluated with one bmm per network layer."""

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden: Sequence[int] = (10,),
        n_layers: int = 1,
        activation: str = "tanh",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.n_stack, self.dim = n_stack, dim
        self.mades = nn.ModuleList(
            StackedMADE(n_stack, dim, hidden, 2, activation, generator) for _ in range(n_layers)
        )

    def to_latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent, points as rows.

        Args:
            x: (S, N, D), or (N, D) shared by every flow of the stack.

        Returns:
            z: (S, N, D) and log|det dz/dx|: (S, N).
        """
        z_cols, log_det = self.to_latent_columns(x.transpose(-1, -2))
        return z_cols.transpose(-1, -2), log_det

    def to_latent_columns(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent with points as columns (the layout used in training).

        Args:
            x: (S, D, N), or (D, N) shared by every flow of the stack.

        Returns:
            z: (S, D, N) and log|det dz/dx|: (S, N).
        """
        u, log_det = self._through_hidden_layers(x)
        shift, log_scale = self.mades[-1](u).unbind(1)
        z = (u - shift) * torch.exp(-log_scale)
        return z, log_det - log_scale.sum(1)

    def normal_log_prob_columns(self, x: Tensor, base_means: Tensor, base_std: float) -> Tensor:
        """log density of x under flows with diagonal normal bases, points as columns.

        Equal to ``log N(z; base_means, base_std^2 I) + log|det dz/dx|`` from
        :meth:`to_latent_columns`, with the last layer fused into the base density
        (flowmix.fused), which keeps the training step's element-wise work small.

        Args:
            x: (S, D, N), or (D, N) shared by every flow of the stack.
            base_means: (S, D).
            base_std: the bases' common standard deviation.

        Returns:
            (S, N)
        """
        u, log_det = self._through_hidden_layers(x)
        params = self.mades[-1](u)
        const = self.dim * (math.log(base_std) + 0.5 * math.log(2 * math.pi))
        return affine_normal_log_prob(u, params, base_means, base_std) + (log_det - const)

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
        """Latent to data (sampling direction): D network passes per layer.

        Args:
            z: (S, N, D)

        Returns:
            x: (S, N, D)
        """
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

    def take(self, index: Tensor) -> StackedMAF:
        """A new stack made of the flows at ``index`` (a 1-D index into the stack axis)."""
        new = copy.deepcopy(self)
        with torch.no_grad():
            for name, param in new.named_parameters():
                param.data = self.get_parameter(name).data[index].clone()
        new.n_stack = len(index)
        return new
