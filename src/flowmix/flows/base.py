"""The interface every flow family implements: ``S`` independent flows on one stack axis.

A mixture puts its restarts x components on the stack axis (see flowmix.density), so each network
layer of a family is one GEMM/bmm for all of them. Points travel as *columns*: x has shape
(S, D, N), or (D, N) when every flow of the stack sees the same points (the first layer of a
mixture), and the element-wise work runs along the contiguous N axis.

Direction: a flow maps data x to latent z; the base distribution of flow ``s`` is a diagonal
normal N(loc_s, diag(scale_s^2)) on z, and ``log p_s(x) = log N(z; loc_s, scale_s) + log|det dz/dx|``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flowmix.nn import StackedMADE, StackedMaskedLinear

Scale = float | Tensor
"""A base standard deviation: one float shared by every flow and dimension, or (S, D)."""


def normal_log_prob_columns(z: Tensor, loc: Tensor, scale: Scale) -> Tensor:
    """log N(z; loc, diag(scale^2)) for points as columns: z (S, D, N) -> (S, N).

    Parameters
    ----------
    z : Tensor of shape (S, D, N)
        Latent points.
    loc : Tensor of shape (S, D)
        Means.
    scale : float or Tensor of shape (S, D)
        A float, or (S, D) standard deviations.

    Examples
    --------
    >>> z = torch.zeros(1, 2, 3)
    >>> round(float(normal_log_prob_columns(z, torch.zeros(1, 2), 1.0)[0, 0]), 4)
    -1.8379
    """
    dim = z.shape[1]
    if isinstance(scale, Tensor):
        standard = (z - loc[:, :, None]) / scale[:, :, None]
        const = scale.log().sum(-1, keepdim=True) + 0.5 * dim * math.log(2 * math.pi)
    else:
        standard = (z - loc[:, :, None]) / scale
        const = dim * (math.log(scale) + 0.5 * math.log(2 * math.pi))
    return -0.5 * standard.square().sum(1) - const


class StackedFlow(nn.Module):
    """Base class of a flow family: ``n_stack`` flows of dimension ``dim`` sharing an architecture.

    A family implements :meth:`to_latent_columns` (density direction, log-det included),
    :meth:`to_data` (sampling direction), :meth:`floats_per_point` and :meth:`config`; it may
    override :meth:`log_prob_columns` with a faster fused path (used while ``fused`` is True) and
    :meth:`prepare` to set data-driven constants. Every parameter carries the stack axis first;
    buffers are shared by the whole stack.

    Attributes
    ----------
    family : str
        The registry name (flowmix.flows.FLOW_FAMILIES).
    fused : bool
        Use the family's fast path where it has one; False selects the plain autograd
        reference path (tests compare the two).
    """

    family: ClassVar[str] = ""

    def __init__(self, n_stack: int, dim: int):
        super().__init__()
        self.n_stack, self.dim = n_stack, dim
        self.fused = True

    # ------------------------------------------------------------------ to implement

    def to_latent_columns(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent, points as columns: x (S, D, N) or (D, N) -> z (S, D, N), log|det dz/dx| (S, N)."""
        raise NotImplementedError

    def to_data(self, z: Tensor) -> Tensor:
        """Latent to data (sampling direction), points as rows: z (S, N, D) -> x (S, N, D)."""
        raise NotImplementedError

    def floats_per_point(self) -> int:
        """Activations held per point and stacked flow by one inference pass (sizes chunks)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this family's architecture."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared behaviour

    def prepare(self, x: Tensor) -> None:
        """Set data-driven constants from the training points x (N, D), before training.

        The default does nothing; a family whose transform lives on a bounded interval (the
        spline flow) places that interval here.
        """

    def log_prob_columns(self, x: Tensor, loc: Tensor, scale: Scale) -> Tensor:
        """log density of x under every flow with its diagonal normal base.

        Parameters
        ----------
        x : Tensor of shape (S, D, N) or (D, N)
            The points; (D, N) when shared by every flow of the stack.
        loc : Tensor of shape (S, D)
            Base means.
        scale : float or Tensor of shape (S, D)
            Base standard deviation, a float or (S, D).

        Returns
        -------
        Tensor of shape (S, N)
        """
        z, log_det = self.to_latent_columns(x)
        return normal_log_prob_columns(z, loc, scale) + log_det

    def to_latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`to_latent_columns` with points as rows: x (S, N, D) or (N, D) -> (S, N, D), (S, N)."""
        z, log_det = self.to_latent_columns(x.transpose(-1, -2))
        return z.transpose(-1, -2), log_det

    def take(self, index: Tensor) -> StackedFlow:
        """A new stack made of the flows at ``index`` (a 1-D index into the stack axis)."""
        new = copy.deepcopy(self)
        with torch.no_grad():
            for name, param in new.named_parameters():
                param.data = self.get_parameter(name).data[index].clone()
        new.n_stack = len(index)
        return new

    def n_free_parameters(self) -> int:
        """Free parameters of one flow of the stack (masked-out weights excluded)."""
        count = 0
        counted: set[int] = set()
        for module in self.modules():
            if isinstance(module, StackedMaskedLinear):
                count += int(module.mask.sum()) + module.bias.shape[-1]
                counted.update((id(module.weight), id(module.bias)))
        for param in self.parameters():
            if id(param) not in counted:
                count += param[0].numel()
        return count

    def set_fused(self, fused: bool) -> StackedFlow:
        """Select the fast path (True) or the plain autograd reference path (False)."""
        for module in self.modules():
            if hasattr(module, "fused"):
                module.fused = bool(fused)
        return self


class AutoregressiveFlow(StackedFlow):
    """Base of the families whose layers take their parameters from a stacked MADE.

    Holds the architecture every such family shares (``hidden_units``, ``n_layers``,
    ``activation``) and one :class:`~flowmix.nn.StackedMADE` per layer with ``n_params``
    outputs per dimension, in ``self.mades``. :meth:`config` returns the architecture; a family
    with options of its own adds them by overriding :meth:`options`.
    """

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden_units: Sequence[int],
        n_layers: int,
        activation: str,
        generator: torch.Generator | None,
        n_params: int,
    ):
        super().__init__(n_stack, dim)
        self.hidden_units, self.n_layers, self.activation = tuple(hidden_units), n_layers, activation
        self.mades = nn.ModuleList(
            StackedMADE(n_stack, dim, hidden_units, n_params, activation, generator) for _ in range(n_layers)
        )

    def options(self) -> dict[str, Any]:
        """The family's own keyword arguments (its ``flow_params``), JSON-serialisable."""
        return {}

    def config(self) -> dict[str, Any]:
        architecture = {
            "hidden_units": list(self.hidden_units),
            "n_layers": self.n_layers,
            "activation": self.activation,
        }
        return {**architecture, **self.options()}
