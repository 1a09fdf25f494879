"""The interface every flow family implements: ``S`` independent flows on one stack axis.

A mixture puts its restarts x components on the stack axis (see flowmix.density), so each network
layer of a family is one GEMM/bmm for all of them. Points travel as *columns*: x has shape
(S, D, N), or (D, N) when every flow of the stack sees the same points (the first layer of a
mixture), and the element-wise work runs along the contiguous N axis.

Direction: a flow maps data x to latent z; flow ``s`` has a base distribution on z
(flowmix.flows.base_distributions), and ``log p_s(x) = log base_s(z) + log|det dz/dx|``.

The autoregressive families are compositions (:class:`AutoregressiveFlow`): per layer, a
conditioner (a stacked MADE, flowmix.nn) computes every coordinate's parameters from the
coordinates before it, and a :class:`Transformer` maps each coordinate with them (affine for the
MAF, a rational-quadratic spline for the spline flow). A transformer carries its own fast kernels
(``Transformer.kernels``); a family whose transformer lacks one runs the generic path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flowmix.flows.base_distributions import BaseDistribution, DiagonalNormal
from flowmix.nn import StackedMADE, StackedMaskedLinear


class StackedFlow(nn.Module):
    """Base class of a flow family: ``n_stack`` flows of dimension ``dim`` sharing an architecture.

    A family implements :meth:`to_latent_columns` (density direction, log-det included),
    :meth:`to_data` (sampling direction), :meth:`floats_per_point` and :meth:`config`; it may
    override :meth:`log_prob_columns` with a faster fused path (used while ``fused`` is True) and
    :meth:`prepare` to set data-driven constants. :class:`AutoregressiveFlow` implements all of
    it from a conditioner and a :class:`Transformer`. Every parameter carries the stack axis first;
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

    def training_floats_per_point(self) -> int:
        """Activations per point and stacked flow that one training step keeps for its backward
        pass, an upper bound (flowmix.memory_budget); three inference passes' unless a family knows better."""
        return 3 * self.floats_per_point()

    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this family's architecture."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared behaviour

    def prepare(self, x: Tensor) -> None:
        """Set data-driven constants from the training points x (N, D), before training.

        The default does nothing; a family whose transform lives on a bounded interval (the
        spline flow) places that interval here.
        """

    def log_prob_columns(self, x: Tensor, base: BaseDistribution) -> Tensor:
        """log density of x under every flow with its base distribution.

        Parameters
        ----------
        x : Tensor of shape (S, D, N) or (D, N)
            The points; (D, N) when shared by every flow of the stack.
        base : DiagonalNormal or FullNormal
            The flows' base distributions (flowmix.flows.base_distributions).

        Returns
        -------
        Tensor of shape (S, N)
        """
        z, log_det = self.to_latent_columns(x)
        return base.log_prob_columns(z) + log_det

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

    def float32_inference(self) -> Any | None:
        """A faster float32 evaluator of these flows (``log_prob_columns(x, base)`` for shared
        points (D, N) and a diagonal normal base), or None where the family has none."""
        return None

    def set_fused(self, fused: bool) -> StackedFlow:
        """Select the fast path (True) or the plain autograd reference path (False)."""
        for module in self.modules():
            if hasattr(module, "fused"):
                module.fused = bool(fused)
        return self


class Transformer:
    """The element-wise map of an autoregressive layer: coordinate d through a monotonic function.

    The conditioner gives each coordinate ``n_params`` numbers, (S, n_params, D, N) with the
    parameter axis second, computed from the coordinates before it. A transformer turns them into
    the map (density direction, with its log-derivative) and its inverse (sampling direction), and
    offers the fast kernels it has. Each kernel is optional; without it the flow runs the generic
    path, which the contract suite checks the kernels against:

    - ``training``: :meth:`forward` with a hand-written backward (used while the flow's ``fused``
      is True);
    - ``last-layer-with-base``: :meth:`normal_log_prob`, the last layer and a diagonal normal base
      in one pass;
    - ``float32-inference``: :meth:`float32_inference`, a faster evaluator of whole flows for
      :class:`flowmix.inference.Inference`.
    """

    name: ClassVar[str] = ""
    #: The fast kernels this transformer has (see the class notes); the rest run generically.
    kernels: ClassVar[frozenset[str]] = frozenset()

    def n_params(self) -> int:
        """Parameters per coordinate the conditioner outputs."""
        raise NotImplementedError

    def forward(self, u: Tensor, params: Tensor, fused: bool) -> tuple[Tensor, Tensor]:
        """Density direction: u (S, D, N), params (S, P, D, N) -> z (S, D, N), log|dz/du| (S, D, N)."""
        raise NotImplementedError

    def inverse(self, z: Tensor, params: Tensor) -> Tensor:
        """Sampling direction: the u that :meth:`forward` maps to z, given the same params."""
        raise NotImplementedError

    def floats_per_layer(self, dim: int) -> int:
        """Activations per point and flow a layer holds beyond its conditioner's hidden units."""
        raise NotImplementedError

    def training_floats_per_layer(self, dim: int) -> int:
        """Activations per point and flow a training step keeps for its backward pass, beyond the conditioner's."""
        raise NotImplementedError

    def normal_log_prob(self, u: Tensor, params: Tensor, base: DiagonalNormal) -> Tensor:
        """log base(z) + log|dz/du| of the last layer in one pass, without the base's constant: (S, N)."""
        raise NotImplementedError(f"the {self.name} transformer has no last-layer-with-base kernel")

    def float32_inference(self, flows: AutoregressiveFlow) -> Any | None:
        """A float32 evaluator of ``flows`` with a ``log_prob_columns(x, base)`` method, or None."""
        return None


class AutoregressiveFlow(StackedFlow):
    """A stack of autoregressive flows: per layer, a stacked MADE conditioner and a transformer.

    Holds the architecture every such family shares (``hidden_units``, ``n_layers``,
    ``activation``), one :class:`~flowmix.nn.StackedMADE` per layer in ``self.mades``, and the
    family's :class:`Transformer`. The order of the coordinates is reversed between layers. A
    family sets the transformer and may work in its own units (:meth:`to_flow_units`) and give
    the latent back in the data's order (``restores_order``); :meth:`config` returns the
    architecture, and a family with options of its own adds them by overriding :meth:`options`.
    """

    #: Whether the latent is given in the data's coordinate order (else in the last layer's).
    restores_order: ClassVar[bool] = False

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden_units: Sequence[int],
        n_layers: int,
        activation: str,
        generator: torch.Generator | None,
        transformer: Transformer,
    ):
        super().__init__(n_stack, dim)
        self.hidden_units, self.n_layers, self.activation = tuple(hidden_units), n_layers, activation
        self.transformer = transformer
        self.mades = nn.ModuleList(
            StackedMADE(n_stack, dim, hidden_units, transformer.n_params(), activation, generator)
            for _ in range(n_layers)
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

    # ------------------------------------------------------------------ the family's units

    def to_flow_units(self, x: Tensor) -> Tensor:
        """Data (D, N) or (S, D, N) to the units the layers work in; the identity unless a family says."""
        return x

    def from_flow_units(self, u: Tensor) -> Tensor:
        """The inverse of :meth:`to_flow_units`."""
        return u

    def _flow_units_are_data_units(self) -> bool:
        return type(self).to_flow_units is AutoregressiveFlow.to_flow_units

    def _flips_back(self) -> bool:
        """Whether the latent takes one more reversal to be in the data's order (an even layer count)."""
        return self.restores_order and self.n_layers % 2 == 0

    # ------------------------------------------------------------------ the composition

    def float32_inference(self) -> Any | None:
        return self.transformer.float32_inference(self)

    def floats_per_point(self) -> int:
        per_layer = sum(self.hidden_units) + self.transformer.floats_per_layer(self.dim)
        return per_layer * self.n_layers + 4 * self.dim

    def training_floats_per_point(self) -> int:
        # The MADE keeps each hidden layer's pre-activation and activation, and its gradient
        # passes through one more tensor of that size.
        per_layer = 3 * sum(self.hidden_units) + self.transformer.training_floats_per_layer(self.dim)
        return per_layer * self.n_layers + 4 * self.dim

    def _through_layers(self, u: Tensor, n_layers: int) -> tuple[Tensor, Tensor | float]:
        """The first ``n_layers`` layers on u in flow units: (u after them, their log-det; 0.0 for none)."""
        log_det: Tensor | float = 0.0
        for i, made in enumerate(self.mades[:n_layers]):
            params = made(u)  # shared points (D, N) go through the first MADE as one GEMM
            if u.dim() == 2:
                u = u.expand(self.n_stack, *u.shape)
            u, layer_log_det = self.transformer.forward(u, params, self.fused)
            log_det = log_det + layer_log_det.sum(1)
            if i < self.n_layers - 1:
                u = u.flip(1)
        return u, log_det

    def to_latent_columns(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = self._through_layers(self.to_flow_units(x), self.n_layers)
        if self._flips_back():
            u = u.flip(1)  # back to the data's order, where base locations live
        return self.from_flow_units(u), log_det

    def log_prob_columns(self, x: Tensor, base: BaseDistribution) -> Tensor:
        """log density with the last layer fused into a diagonal normal base, where the transformer can.

        The fused pass applies while ``fused`` is True, the base is a
        :class:`~flowmix.flows.base_distributions.DiagonalNormal` and the last layer's output is
        the latent itself (data units, last layer's order); otherwise the generic path of
        :class:`StackedFlow` runs.
        """
        fusable = (
            self.fused
            and "last-layer-with-base" in self.transformer.kernels
            and isinstance(base, DiagonalNormal)
            and self._flow_units_are_data_units()
            and not self._flips_back()
        )
        if not fusable:
            return super().log_prob_columns(x, base)
        u, log_det = self._through_layers(x, self.n_layers - 1)
        params = self.mades[-1](u)
        return self.transformer.normal_log_prob(u, params, base) + (log_det - base.log_normaliser())

    @torch.no_grad()
    def to_data(self, z: Tensor) -> Tensor:
        """Latent to data, points as rows: D conditioner passes per layer.

        After pass d, coordinates 0..d of a layer's input are exact: each depends only on
        earlier ones.
        """
        u = self.to_flow_units(z.transpose(1, 2))
        if self._flips_back():
            u = u.flip(1)
        for i in reversed(range(self.n_layers)):
            if i < self.n_layers - 1:
                u = u.flip(1)
            x = torch.zeros_like(u)
            for _ in range(self.dim):
                x = self.transformer.inverse(u, self.mades[i](x))
            u = x
        return self.from_flow_units(u).transpose(1, 2).contiguous()
