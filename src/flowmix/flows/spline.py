"""Autoregressive rational-quadratic spline flows (Durkan et al., 2019, "Neural Spline Flows").

Each layer maps every coordinate through a monotonic rational-quadratic spline of ``n_bins`` bins
whose widths, heights and inner knot derivatives (3B - 1 numbers per coordinate) come from a
stacked MADE of the earlier coordinates; the order is reversed between layers. Outside the
spline's interval the map is the identity (linear tails, derivative 1 at the boundary knots).

Bounds are data-driven: :meth:`StackedSplineFlow.prepare` places the interval on the training
data's bounding box, widened by ``bound_margin`` of its half-width on each side, per dimension.
flowmix sees min-max scaled tables, standard-scaled tables and PCA scores whose ranges differ by
orders of magnitude between data sets and between dimensions (PCA's first score spreads far more
than its hundredth), so any fixed interval would leave some data in the identity tails where the
flow has no capacity, or spend its bins on empty space. Inside, the flow works in box coordinates
((x - centre) / half_width, in [-1, 1]), which also keeps the MADE's inputs of order one; the
latent z is mapped back to data units so that base locations and scales (set by initialisations)
mean the same thing as for the MAF. The two affine maps cancel in the log-determinant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from flowmix.flows.base import StackedFlow
from flowmix.nn import StackedMADE

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(raw + _IDENTITY_OFFSET) + MIN_DERIVATIVE = 1 at raw = 0: a zero network output is the identity.
_IDENTITY_OFFSET = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _knots(raw: Tensor) -> Tensor:
    """Bin edges on [-1, 1] from unnormalised sizes (..., B): (..., B + 1), each bin >= the minimum."""
    n_bins = raw.shape[-1]
    sizes = MIN_BIN_WIDTH + (1 - MIN_BIN_WIDTH * n_bins) * torch.softmax(raw, dim=-1)
    inner = 2 * torch.cumsum(sizes[..., :-1], dim=-1) - 1
    ends = torch.ones_like(inner[..., :1])
    # The outer edges are exactly -1 and 1, whatever the rounding of the cumulative sum.
    return torch.cat([-ends, inner, ends], dim=-1)


def rational_quadratic_spline(
    x: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """A monotonic rational-quadratic spline on [-1, 1] with identity tails, element-wise.

    Args:
        x: (...) inputs (outputs of the forward map when ``inverse``).
        widths, heights: (..., B) unnormalised bin widths and heights (softmax, then a minimum).
        derivatives: (..., B - 1) unconstrained derivatives at the inner knots (softplus, then a
            minimum); the boundary knots have derivative 1, which makes the tails continuous.
        inverse: apply the inverse map (the root of a quadratic in each bin).

    Returns:
        y: (...) and log|dy/dx| of the forward map at the (input or recovered) point, (...).

    Example:
        >>> x = torch.linspace(-2, 2, 5)
        >>> y, log_det = rational_quadratic_spline(x, torch.zeros(5, 4), torch.zeros(5, 4), torch.zeros(5, 3))
        >>> torch.allclose(y, x, atol=1e-6), torch.allclose(log_det, torch.zeros(5), atol=1e-6)
        (True, True)
    """
    x_knots, y_knots = _knots(widths), _knots(heights)
    inner = MIN_DERIVATIVE + functional.softplus(derivatives + _IDENTITY_OFFSET)
    ones = torch.ones_like(inner[..., :1])
    slopes = torch.cat([ones, inner, ones], dim=-1)

    inside = (x >= -1) & (x <= 1)
    t = x.clamp(-1, 1)
    search = y_knots if inverse else x_knots
    index = (t[..., None] >= search[..., 1:-1]).sum(-1, keepdim=True)

    def at(values: Tensor, shift: int = 0) -> Tensor:
        return torch.take_along_dim(values, index + shift, dim=-1)[..., 0]

    x_low, bin_width = at(x_knots), at(x_knots, 1) - at(x_knots)
    y_low, bin_height = at(y_knots), at(y_knots, 1) - at(y_knots)
    d_low, d_high = at(slopes), at(slopes, 1)
    slope = bin_height / bin_width
    curvature = d_high + d_low - 2 * slope

    if inverse:
        offset = t - y_low
        a = bin_height * (slope - d_low) + offset * curvature
        b = bin_height * d_low - offset * curvature
        c = -slope * offset
        root = torch.sqrt((b.square() - 4 * a * c).clamp_min(0))
        xi = (2 * c / (-b - root)).clamp(0, 1)
        out = x_low + xi * bin_width
    else:
        xi = (t - x_low) / bin_width
    between = xi * (1 - xi)
    denominator = slope + curvature * between
    if not inverse:
        out = y_low + bin_height * (slope * xi.square() + d_low * between) / denominator
    numerator = slope.square() * (d_high * xi.square() + 2 * slope * between + d_low * (1 - xi).square())
    log_det = torch.log(numerator) - 2 * torch.log(denominator)
    return torch.where(inside, out, x), torch.where(inside, log_det, torch.zeros_like(log_det))


class StackedSplineFlow(StackedFlow):
    """``S`` autoregressive rational-quadratic spline flows of ``n_layers`` layers each.

    Args:
        n_stack: flows on the stack axis.
        dim: dimension D of the data.
        hidden_units: hidden layer widths of each layer's MADE.
        n_layers: spline layers per flow (order reversed between layers).
        activation: hidden units' activation (flowmix.nn.ACTIVATIONS).
        generator: seeds the initial weights.
        n_bins: bins of every spline.
        bound_margin: the interval reaches this fraction of the data's half-range beyond the data's
            bounding box on each side (see the module notes).

    The MADEs' output layers start at zero, so every flow starts as the identity map and every
    component's initial density is its base normal.

    Example:
        >>> flow = StackedSplineFlow(4, 2, n_bins=6)
        >>> flow.prepare(torch.rand(100, 2))
        >>> x = torch.rand(2, 7)
        >>> z, log_det = flow.to_latent_columns(x)
        >>> torch.allclose(flow.to_data(z.transpose(1, 2)).transpose(1, 2), x.expand(4, 2, 7), atol=1e-5)
        True
    """

    family = "spline"

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden_units: Sequence[int] = (64,),
        n_layers: int = 3,
        activation: str = "tanh",
        generator: torch.Generator | None = None,
        *,
        n_bins: int = 8,
        bound_margin: float = 0.1,
    ):
        super().__init__(n_stack, dim)
        if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
        if not isinstance(bound_margin, (int, float)) or not 0 <= bound_margin < math.inf:
            raise ValueError(f"bound_margin must be a finite number >= 0, got {bound_margin!r}.")
        self.hidden_units, self.n_layers, self.activation = tuple(hidden_units), n_layers, activation
        self.n_bins, self.bound_margin = n_bins, float(bound_margin)
        self.mades = nn.ModuleList(
            StackedMADE(n_stack, dim, hidden_units, 3 * n_bins - 1, activation, generator)
            for _ in range(n_layers)
        )
        with torch.no_grad():
            for made in self.mades:
                made.layers[-1].weight.zero_()
        # Standard-scaled data fit inside until prepare() sees the training data.
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("half_width", torch.full((dim,), 3.0))

    def config(self) -> dict[str, Any]:
        return {
            "hidden_units": list(self.hidden_units),
            "n_layers": self.n_layers,
            "activation": self.activation,
            "n_bins": self.n_bins,
            "bound_margin": self.bound_margin,
        }

    def floats_per_point(self) -> int:
        # The MADE's hidden units and outputs, then about a dozen (D, B) tensors per layer.
        per_layer = sum(self.hidden_units) + (3 * self.n_bins - 1) * self.dim + 12 * self.n_bins * self.dim
        return per_layer * self.n_layers + 4 * self.dim

    @torch.no_grad()
    def prepare(self, x: Tensor) -> None:
        low, high = x.min(dim=0).values, x.max(dim=0).values
        half = (high - low) / 2
        # A constant feature still gets an interval around its value.
        half = torch.where(half > 0, half, torch.ones_like(half)) * (1 + self.bound_margin)
        self.centre.copy_((low + high) / 2)
        self.half_width.copy_(half)

    def _layer(self, made: StackedMADE, u: Tensor, inverse: bool, condition: Tensor) -> tuple[Tensor, Tensor]:
        """One spline layer on u (S, D, N) with parameters from ``condition`` (S, D, N) or (D, N)."""
        params = made(condition).permute(0, 2, 3, 1)
        bins = self.n_bins
        return rational_quadratic_spline(
            u, params[..., :bins], params[..., bins : 2 * bins], params[..., 2 * bins :], inverse
        )

    def _n_flips(self) -> int:
        return self.n_layers - 1

    def to_latent_columns(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = (x - self.centre[:, None]) / self.half_width[:, None]
        log_det: Tensor | float = 0.0
        for i, made in enumerate(self.mades):
            # Shared points (D, N) go through the first MADE as one GEMM; the spline needs the stack.
            condition = u
            if u.dim() == 2:
                u = u.expand(self.n_stack, *u.shape)
            u, layer_log_det = self._layer(made, u, False, condition)
            log_det = log_det + layer_log_det.sum(1)
            if i < self.n_layers - 1:
                u = u.flip(1)
        if self._n_flips() % 2:
            u = u.flip(1)  # back to the data's order, where base locations live
        return self.centre[:, None] + self.half_width[:, None] * u, log_det

    @torch.no_grad()
    def to_data(self, z: Tensor) -> Tensor:
        """Latent to data: D network passes per layer, each spline inverted in closed form."""
        u = ((z - self.centre) / self.half_width).transpose(1, 2)
        if self._n_flips() % 2:
            u = u.flip(1)
        for i in reversed(range(self.n_layers)):
            if i < self.n_layers - 1:
                u = u.flip(1)
            x = torch.zeros_like(u)
            # After pass d, coordinates 0..d are exact: each depends only on earlier ones.
            for _ in range(self.dim):
                x, _ = self._layer(self.mades[i], u, True, x)
            u = x
        return (self.centre + self.half_width * u.transpose(1, 2)).contiguous()
