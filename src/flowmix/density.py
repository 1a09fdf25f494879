"""The mixture density as a torch module: R restarts x K components of flows, all batched.

``p_r(x) = sum_k pi_rk * flow_rk(x)`` with ``pi_r = softmax(logits_r)``. The flows of all R*K
(restart, component) pairs sit on one stack axis (flowmix.flows.base), so a forward pass is one
bmm per network layer whatever the family. Base distributions are diagonal normals with fixed
locations and scales (the paper's choice: the flow does the moving); the scale is one float
``base_std`` unless an initialisation set per-component, per-dimension ``base_scales``.
:meth:`MixtureOfFlows.base` gives them as objects (flowmix.flows.base_distributions).

A cluster start may instead give every component a full-covariance normal base (its Cholesky
factor ``base_scale_tril``): with flows that start as the identity, each component then starts as
its cluster's Gaussian, the mixture as the GMM of the start, and training only has to learn how
the clusters differ from Gaussians.

On wide data each component may live on a principal subspace of its cluster
(flowmix.subspace): its flow then models d whitened coordinates and a normal the D - d others,
a proper density on R^D at a cost about linear in D. The flows and bases then have dimension d.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowmix.flows.base import StackedFlow
from flowmix.flows.base_distributions import BaseDistribution, DiagonalNormal, FullNormal
from flowmix.subspace import Subspaces, from_subspace, to_subspace_columns
from flowmix.subspace import floats_per_point as subspace_floats_per_point

# Activations held per inference chunk; bounds prediction memory whatever N is.
INFERENCE_CHUNK_FLOATS = 2**24


class MixtureOfFlows(nn.Module):
    """Batched mixture of flows.

    Parameters
    ----------
    flows : StackedFlow
        A stack of R * K flows, restart-major (stack index r * K + k).
    base_means : Tensor of shape (R, K, d)
        Fixed locations of the components' base normals (d = D without subspaces).
    base_std : float
        Fixed standard deviation of every base normal, used when ``base_scales`` is None.
    base_scales : Tensor of shape (R, K, D) or None, default=None
        Fixed standard deviations per component and dimension, or None.
    base_scale_tril : Tensor of shape (R, K, D, D) or None, default=None
        Lower-triangular Cholesky factors (positive diagonal) of full base covariances; when
        given, they replace ``base_std`` and ``base_scales`` in the density.
    subspaces : flowmix.subspace.Subspaces or None, default=None
        Each component's principal subspace (leading axes (R, K)); the flows and bases then
        have the subspaces' dimension d. None: the flows model all D features.

    Examples
    --------
    >>> from flowmix.flows import make_flow
    >>> density = MixtureOfFlows(make_flow("maf", 2 * 3, 4), torch.zeros(2, 3, 4), 0.5)
    >>> tuple(density.log_prob(torch.randn(10, 4)).shape)
    (2, 10)
    """

    def __init__(
        self,
        flows: StackedFlow,
        base_means: Tensor,
        base_std: float,
        base_scales: Tensor | None = None,
        base_scale_tril: Tensor | None = None,
        subspaces: Subspaces | None = None,
    ):
        super().__init__()
        n_restarts, n_components, flow_dim = base_means.shape
        if flows.n_stack != n_restarts * n_components or flows.dim != flow_dim:
            raise ValueError(
                f"flows hold {flows.n_stack} flows of dimension {flows.dim}; the base means ask for "
                f"{n_restarts} x {n_components} of dimension {flow_dim}."
            )
        if subspaces is not None and (
            subspaces.dim != flow_dim or tuple(subspaces.mean.shape[:2]) != (n_restarts, n_components)
        ):
            raise ValueError(
                f"the subspaces are {tuple(subspaces.mean.shape[:2])} of dimension {subspaces.dim}; the "
                f"flows ask for {n_restarts} x {n_components} of dimension {flow_dim}."
            )
        self.n_restarts, self.n_components, self.flow_dim = n_restarts, n_components, flow_dim
        # The data's dimension; the flows' is flow_dim (smaller on principal subspaces).
        self.dim = flow_dim if subspaces is None else subspaces.mean.shape[-1]
        self.base_std = float(base_std)
        self.flows = flows
        # Equal logits: uniform initial weights, as the paper.
        self.logits = nn.Parameter(torch.zeros(n_restarts, n_components))
        self.register_buffer("base_means", base_means.clone().float())
        self.register_buffer("base_scales", None if base_scales is None else base_scales.clone().float())
        tril = None if base_scale_tril is None else torch.tril(base_scale_tril).clone().float()
        self.register_buffer("base_scale_tril", tril)
        for name in ("mean", "basis", "scale", "residual_scale"):
            value = None if subspaces is None else getattr(subspaces, name).clone().float()
            self.register_buffer(f"subspace_{name}", value)

    @property
    def subspaces(self) -> Subspaces | None:
        """The components' principal subspaces (leading axes (R, K)), or None."""
        if self.subspace_mean is None:
            return None
        return Subspaces(
            self.subspace_mean, self.subspace_basis, self.subspace_scale, self.subspace_residual_scale
        )

    def base(self, restart: int | None = None) -> BaseDistribution:
        """The base distributions of every flow of the stack (restart-major), or of one restart's K.

        A :class:`~flowmix.flows.base_distributions.FullNormal` where the components have
        full-covariance bases, else a :class:`~flowmix.flows.base_distributions.DiagonalNormal`.
        """
        rows = slice(None) if restart is None else slice(restart, restart + 1)
        dim = self.flow_dim
        loc = self.base_means[rows].reshape(-1, dim)
        if self.base_scale_tril is not None:
            return FullNormal(loc, self.base_scale_tril[rows].reshape(-1, dim, dim))
        scale = self.base_std if self.base_scales is None else self.base_scales[rows].reshape(-1, dim)
        return DiagonalNormal(loc, scale)

    def log_weights(self) -> Tensor:
        """(R, K) log mixture weights."""
        return torch.log_softmax(self.logits, dim=-1)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log flow_rk(x) for every restart and component: x (N, D) -> (R, K, N)."""
        return self.component_log_prob_columns(x.T)

    def component_log_prob_columns(self, x: Tensor) -> Tensor:
        """As :meth:`component_log_prob` with points as columns: x (D, N) -> (R, K, N).

        x may also be (R * K, D, N): each stacked flow then has its own N points.
        """
        if self.subspace_mean is None:
            log_prob = self.flows.log_prob_columns(x, self.base())
        else:
            coordinates, log_rest = to_subspace_columns(x, *self.subspaces.stacked())
            log_prob = self.flows.log_prob_columns(coordinates, self.base()) + log_rest
        return log_prob.reshape(self.n_restarts, self.n_components, -1)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_rk + log flow_rk(x): x (N, D) -> (R, K, N)."""
        return self.log_weights()[:, :, None] + self.component_log_prob(x)

    def joint_log_prob_columns(self, x: Tensor) -> Tensor:
        """As :meth:`joint_log_prob` with points as columns: x (D, N) -> (R, K, N)."""
        return self.log_weights()[:, :, None] + self.component_log_prob_columns(x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Mixture log density per restart: x (N, D) -> (R, N)."""
        return self.log_prob_columns(x.T)

    def log_prob_columns(self, x: Tensor) -> Tensor:
        """Mixture log density per restart, points as columns: x (D, N) -> (R, N)."""
        return torch.logsumexp(self.joint_log_prob_columns(x), dim=1)

    def take_restart(self, restart: int) -> MixtureOfFlows:
        """A mixture holding restart ``restart`` only (R = 1)."""
        return self.take_restarts([restart])

    def take_restarts(self, restarts: Sequence[int]) -> MixtureOfFlows:
        """A mixture holding the given restarts, in that order (R = len(restarts))."""
        k = self.n_components
        chosen = torch.as_tensor(list(restarts), dtype=torch.long)
        stack_index = (chosen[:, None] * k + torch.arange(k)).reshape(-1)
        scales = None if self.base_scales is None else self.base_scales[chosen]
        tril = None if self.base_scale_tril is None else self.base_scale_tril[chosen]
        subspaces = None if self.subspaces is None else self.subspaces.take(chosen)
        new = MixtureOfFlows(
            self.flows.take(stack_index), self.base_means[chosen], self.base_std, scales, tril, subspaces
        )
        new.logits.data = self.logits.data[chosen].clone()
        return new.to(self.logits.device)

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
        noise = torch.randn(self.n_components, width, self.flow_dim, generator=generator).to(device)
        z = self.base(restart=0).from_standard(noise)
        x = self.flows.to_data(z.to(self.base_means.dtype))
        if self.subspace_mean is not None:
            across = torch.randn(self.n_components, width, self.dim, generator=generator).to(device, x.dtype)
            x = from_subspace(x, across, *self.subspaces.take(slice(0, 1)).stacked())
        keep = torch.arange(width)[None, :] < counts[:, None]
        order = torch.argsort(labels, stable=True)
        out = torch.empty(n_samples, self.dim, dtype=x.dtype, device=device)
        out[order.to(device)] = x[keep.to(device)]
        return out, labels.to(device)

    def points_per_chunk(self) -> int:
        """Points per inference chunk of one restart, so that a chunk's activations fit the budget."""
        return max(1, INFERENCE_CHUNK_FLOATS // (self.n_components * self.floats_per_point()))

    def floats_per_point(self) -> int:
        """Activations one inference pass holds per point and stacked flow, the subspace projection included."""
        extra = 0 if self.subspace_mean is None else subspace_floats_per_point(self.dim, self.flow_dim)
        return self.flows.floats_per_point() + extra

    def n_free_parameters(self) -> int:
        """Free parameters of one restart: the K flows' and K - 1 weights."""
        return self.flows.n_free_parameters() * self.n_components + self.n_components - 1
