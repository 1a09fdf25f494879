"""The mixture density as a torch module: R restarts x K components of MAFs, all batched.

``p_r(x) = sum_k pi_rk * MAF_rk(x)`` with ``pi_r = softmax(logits_r)``. The flows of all R*K
(restart, component) pairs sit on one stack axis, so a forward pass is one bmm per network layer.
Base distributions are diagonal normals with fixed means and a fixed standard deviation (the
paper's choice: the flow's shift and scale do the moving).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowmix.flows.maf import StackedMAF


class MixtureOfFlows(nn.Module):
    """Batched mixture of MAFs.

    Args:
        base_means: (R, K, D) fixed means of the components' base normals.
        base_std: fixed standard deviation of every base normal.
        hidden, n_layers, activation: MADE architecture shared by all flows.
        generator: seeds the flows' initial weights.
    """

    def __init__(
        self,
        base_means: Tensor,
        base_std: float,
        hidden: Sequence[int] = (10,),
        n_layers: int = 1,
        activation: str = "tanh",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        n_restarts, n_components, dim = base_means.shape
        self.n_restarts, self.n_components, self.dim = n_restarts, n_components, dim
        self.base_std = float(base_std)
        self.flows = StackedMAF(n_restarts * n_components, dim, hidden, n_layers, activation, generator)
        # Equal logits: uniform initial weights, as the paper.
        self.logits = nn.Parameter(torch.zeros(n_restarts, n_components))
        self.register_buffer("base_means", base_means.clone().float())

    def log_weights(self) -> Tensor:
        """(R, K) log mixture weights."""
        return torch.log_softmax(self.logits, dim=-1)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log MAF_rk(x) for every restart and component: x (N, D) -> (R, K, N)."""
        return self.component_log_prob_columns(x.T)

    def component_log_prob_columns(self, x: Tensor) -> Tensor:
        """As :meth:`component_log_prob` with points as columns: x (D, N) -> (R, K, N)."""
        means = self.base_means.reshape(-1, self.dim)
        log_prob = self.flows.normal_log_prob_columns(x, means, self.base_std)
        return log_prob.reshape(self.n_restarts, self.n_components, -1)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_rk + log MAF_rk(x): x (N, D) -> (R, K, N)."""
        return self.log_weights()[:, :, None] + self.component_log_prob(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Mixture log density per restart: x (N, D) -> (R, N)."""
        return self.log_prob_columns(x.T)

    def log_prob_columns(self, x: Tensor) -> Tensor:
        """Mixture log density per restart, points as columns: x (D, N) -> (R, N)."""
        joint = self.log_weights()[:, :, None] + self.component_log_prob_columns(x)
        return torch.logsumexp(joint, dim=1)

    def take_restart(self, restart: int) -> MixtureOfFlows:
        """A mixture holding restart ``restart`` only (R = 1)."""
        new = MixtureOfFlows.__new__(MixtureOfFlows)
        nn.Module.__init__(new)
        new.n_restarts, new.n_components, new.dim = 1, self.n_components, self.dim
        new.base_std = self.base_std
        stack_index = torch.arange(restart * self.n_components, (restart + 1) * self.n_components)
        new.flows = self.flows.take(stack_index)
        new.logits = nn.Parameter(self.logits.data[restart : restart + 1].clone())
        new.register_buffer("base_means", self.base_means[restart : restart + 1].clone())
        return new

    @torch.no_grad()
    def sample(self, n_samples: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw from restart 0. Returns x (n, D) and component labels (n,).

        Points are grouped by component and padded to the largest group, so all components are
        inverted in one batched pass.
        """
        device = self.logits.device
        weights = self.log_weights()[0].exp().cpu()
        labels = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
        counts = torch.bincount(labels, minlength=self.n_components)
        width = int(counts.max())
        noise = torch.randn(self.n_components, width, self.dim, generator=generator)
        z = self.base_means[0][:, None, :] + self.base_std * noise.to(device)
        x = self.flows.to_data(z)
        keep = torch.arange(width)[None, :] < counts[:, None]
        order = torch.argsort(labels, stable=True)
        out = torch.empty(n_samples, self.dim, dtype=x.dtype, device=device)
        out[order.to(device)] = x[keep.to(device)]
        return out, labels.to(device)

    def n_free_parameters(self) -> int:
        """Free parameters of one restart: unmasked weights, biases and K-1 weights."""
        count = 0
        for made in self.flows.mades:
            for layer in made.layers:
                count += int(layer.mask.sum()) + layer.bias.shape[-1]
        return count * self.n_components + self.n_components - 1
