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
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import functional

from flowmix.flows import spline_native
from flowmix.flows.base import AutoregressiveFlow, Transformer

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(raw + _IDENTITY_OFFSET) + MIN_DERIVATIVE = 1 at raw = 0: a zero network output is the identity.
_IDENTITY_OFFSET = math.log(math.expm1(1 - MIN_DERIVATIVE))
# What the compiled step (flowmix.flows.spline_native) is told of the bins' smallest sizes.
_BIN_MINIMA = (MIN_BIN_WIDTH, MIN_BIN_HEIGHT)


def _knots(raw: Tensor, dim: int, minimum: float) -> Tensor:
    """Bin edges on [-1, 1] from unnormalised sizes (B along ``dim``): B + 1 edges, each bin >= ``minimum``.

    Edge j sits at 2 (minimum j + (1 - minimum B) sum_{i<j} softmax_i) - 1, the edges the fused
    step (:class:`_FusedSpline`) computes, up to rounding in the last bits.
    """
    n_bins = raw.shape[dim]
    shape = [1] * raw.dim()
    shape[dim] = n_bins - 1
    steps = torch.arange(1, n_bins, dtype=raw.dtype, device=raw.device).reshape(shape)
    cumulative = torch.cumsum(torch.softmax(raw, dim=dim), dim=dim).narrow(dim, 0, n_bins - 1)
    inner = 2 * (minimum * steps + (1 - minimum * n_bins) * cumulative) - 1
    ends = torch.ones_like(inner.narrow(dim, 0, 1))
    # The outer edges are exactly -1 and 1, whatever the rounding of the cumulative sum.
    return torch.cat([-ends, inner, ends], dim=dim)


def rational_quadratic_spline(
    x: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, inverse: bool = False, bin_dim: int = -1
) -> tuple[Tensor, Tensor]:
    """A monotonic rational-quadratic spline on [-1, 1] with identity tails, element-wise.

    Parameters
    ----------
    x : Tensor
        Inputs (outputs of the forward map when ``inverse``), the parameters' shape without
        the bin axis.
    widths, heights : Tensor
        Unnormalised bin widths and heights, B along ``bin_dim`` (softmax, then a minimum size).
    derivatives : Tensor
        Unconstrained derivatives at the B - 1 inner knots along ``bin_dim`` (softplus, then a
        minimum); the boundary knots have derivative 1, which makes the tails continuous.
    inverse : bool, default=False
        Apply the inverse map (the root of a quadratic in each bin).
    bin_dim : int, default=-1
        The parameters' bin axis. flowmix keeps bins off the last axis so that the element-wise
        work runs along the contiguous points axis.

    Returns
    -------
    y : Tensor of x's shape
    log_det : Tensor of x's shape
        log|dy/dx| of the forward map at the (input or recovered) point.

    Examples
    --------
    >>> x = torch.linspace(-2, 2, 5)
    >>> y, log_det = rational_quadratic_spline(x, torch.zeros(5, 4), torch.zeros(5, 4), torch.zeros(5, 3))
    >>> torch.allclose(y, x, atol=1e-6), torch.allclose(log_det, torch.zeros(5), atol=1e-6)
    (True, True)
    """
    dim = bin_dim % widths.dim()
    x_knots, y_knots = _knots(widths, dim, MIN_BIN_WIDTH), _knots(heights, dim, MIN_BIN_HEIGHT)
    inner = MIN_DERIVATIVE + functional.softplus(derivatives + _IDENTITY_OFFSET)
    ones = torch.ones_like(inner.narrow(dim, 0, 1))
    slopes = torch.cat([ones, inner, ones], dim=dim)

    inside = (x >= -1) & (x <= 1)
    t = x.clamp(-1, 1).unsqueeze(dim)
    n_bins = widths.shape[dim]
    search = (y_knots if inverse else x_knots).narrow(dim, 1, n_bins - 1)
    index = (t >= search).sum(dim, keepdim=True)

    def at(values: Tensor, shift: int = 0) -> Tensor:
        return torch.take_along_dim(values, index + shift, dim=dim).squeeze(dim)

    x_low, x_high, y_low, y_high = at(x_knots), at(x_knots, 1), at(y_knots), at(y_knots, 1)
    d_low, d_high = at(slopes), at(slopes, 1)
    t = t.squeeze(dim)
    bin_width, bin_height = x_high - x_low, y_high - y_low
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


def _rq_scalars(
    t: Tensor,
    p_k: Tensor,
    p_below: Tensor,
    q_k: Tensor,
    q_below: Tensor,
    d_low: Tensor,
    d_high: Tensor,
    k: Tensor,
    n_bins: int,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The spline's value and log-slope at t from its bin's quantities (all (S, D, N)).

    ``p_k``/``q_k`` are the softmax shares of bin k's width/height and ``p_below``/``q_below`` the
    shares of the bins below it; the minimum sizes are applied here. The third result holds the
    intermediates :func:`_rq_scalars_backward` needs.
    """
    share = 1 - MIN_BIN_WIDTH * n_bins
    x_low = 2 * (MIN_BIN_WIDTH * k + share * p_below) - 1
    width = 2 * (MIN_BIN_WIDTH + share * p_k)
    share = 1 - MIN_BIN_HEIGHT * n_bins
    y_low = 2 * (MIN_BIN_HEIGHT * k + share * q_below) - 1
    height = 2 * (MIN_BIN_HEIGHT + share * q_k)
    slope = height / width
    curvature = d_high + d_low - 2 * slope
    xi = ((t - x_low) / width).clamp(0, 1)
    between = xi * (1 - xi)
    denominator = slope + curvature * between
    rise = (slope * xi.square() + d_low * between) / denominator
    y = y_low + height * rise
    bracket = d_high * xi.square() + 2 * slope * between + d_low * (1 - xi).square()
    log_det = torch.log(slope.square() * bracket) - 2 * torch.log(denominator)
    return y, log_det, (width, height, slope, curvature, xi, between, denominator, rise, bracket)


def _rq_scalars_backward(
    grad_y: Tensor,
    grad_log_det: Tensor,
    d_low: Tensor,
    d_high: Tensor,
    saved: tuple[Tensor, ...],
    n_bins: int,
) -> tuple[Tensor, ...]:
    """Gradients of :func:`_rq_scalars` with respect to (t, p_k, p_below, q_k, q_below, d_low, d_high).

    Written out rather than left to autograd: at the sizes of a 2-D fit each of autograd's
    hundred-odd small operations costs more in dispatch than in arithmetic. With
    y = y_low + h r, r = (s xi^2 + d_l b) / den, den = s + (d_h + d_l - 2 s) b, b = xi (1 - xi)
    and log_det = 2 log s + log(d_h xi^2 + 2 s b + d_l (1 - xi)^2) - 2 log den, the partial
    derivatives in s, xi, d_l and d_h are gathered first, then carried through s = h / w and
    xi = (t - x_low) / w to the softmax shares.
    """
    width, height, slope, curvature, xi, between, denominator, rise, bracket = saved
    over_den = grad_y * height / denominator  # dy/d(numerator of r), times grad_y
    per_bracket = grad_log_det / bracket
    per_den = 2 * grad_log_det / denominator
    tilt = 1 - 2 * xi  # d between / d xi
    g_slope = (
        over_den * (xi.square() - rise * (1 - 2 * between))
        + 2 * grad_log_det / slope
        + 2 * per_bracket * between
        - per_den * (1 - 2 * between)
    )
    g_d_low = (over_den * (1 - rise) - per_den) * between + per_bracket * (1 - xi).square()
    g_d_high = -(over_den * rise + per_den) * between + per_bracket * xi.square()
    g_xi = (
        over_den * (2 * slope * xi + (d_low - rise * curvature) * tilt)
        + 2 * per_bracket * (d_high * xi + slope * tilt - d_low * (1 - xi))
        - per_den * curvature * tilt
    )
    g_t = g_xi / width
    g_width = -(g_slope * slope + g_xi * xi) / width
    g_height = grad_y * rise + g_slope / width
    width_share, height_share = 2 * (1 - MIN_BIN_WIDTH * n_bins), 2 * (1 - MIN_BIN_HEIGHT * n_bins)
    return (
        g_t,
        width_share * g_width,
        -width_share * g_t,
        height_share * g_height,
        height_share * grad_y,
        g_d_low,
        g_d_high,
    )


class _FusedSpline(torch.autograd.Function):
    """The forward spline (density direction) with bins on axis 1 and a hand-written backward.

    Autograd through :func:`rational_quadratic_spline` runs some seventy passes over the
    (S, B, D, N) bin tensors per layer; here the forward makes about a dozen and the backward
    about fifteen: the gradients of the bin's own quantities are written out
    (:func:`_rq_scalars_backward`) on (S, D, N) tensors, and their spread over the bins
    (through the cumulative sums, softmaxes and softplus) likewise.
    """

    @staticmethod
    def forward(ctx, x: Tensor, params: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
        # The whole (S, 3B - 1, D, N) output of the MADE comes in, so that its gradient leaves as
        # one tensor: three slices would each cost autograd a zero-filled full-size gradient.
        widths, heights, derivatives = (
            params[:, :n_bins],
            params[:, n_bins : 2 * n_bins],
            params[:, 2 * n_bins :],
        )
        p, q = torch.softmax(widths, dim=1), torch.softmax(heights, dim=1)
        cum_p = torch.cumsum(p, dim=1)
        inside = (x >= -1) & (x <= 1)
        t = x.clamp(-1, 1)
        # Inner knots j = 1..B-1 at 2 (MIN j + share * sum_{i<j} p_i) - 1; k counts those <= t.
        steps = torch.arange(1, n_bins, dtype=x.dtype, device=x.device)[None, :, None, None]
        knots = (
            cum_p[:, : n_bins - 1].mul(2 * (1 - MIN_BIN_WIDTH * n_bins)).add_(2 * MIN_BIN_WIDTH * steps - 1)
        )
        k = (t[:, None] >= knots).sum(1, keepdim=True)
        del knots
        p_k = p.gather(1, k)
        p_below = cum_p.gather(1, k).sub_(p_k)
        q_k = q.gather(1, k)
        q_below = torch.cumsum(q, dim=1).gather(1, k).sub_(q_k)
        # Knot derivatives with the boundary knots' 1 at both ends: bin k runs from knot k to k + 1.
        slopes = functional.softplus(derivatives + _IDENTITY_OFFSET).add_(MIN_DERIVATIVE)
        slopes = functional.pad(slopes, (0, 0, 0, 0, 1, 1), value=1.0)
        d_low, d_high = slopes.gather(1, k), slopes.gather(1, k + 1)
        bin_terms = [v[:, 0] for v in (p_k, p_below, q_k, q_below, d_low, d_high)]
        k = k[:, 0]
        # k as a float of x's dtype: an integer tensor times a Python float would be float32,
        # and float64 models would see their bin edges rounded to float32.
        y, log_det, saved = _rq_scalars(t, *bin_terms, k.to(t.dtype), n_bins)
        ctx.save_for_backward(k, inside, p, q, derivatives, *bin_terms, *saved)
        return torch.where(inside, y, x), torch.where(inside, log_det, 0.0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor, grad_log_det: Tensor) -> tuple[Tensor, Tensor, None]:
        k, inside, p, q, derivatives, p_k, p_below, q_k, q_below, d_low, d_high, *saved = ctx.saved_tensors
        n_bins = p.shape[1]
        # Outside the interval the map is the identity: only x's gradient, grad_y, passes.
        grad_y_inside = torch.where(inside, grad_y, 0.0)
        grads = _rq_scalars_backward(
            grad_y_inside, torch.where(inside, grad_log_det, 0.0), d_low, d_high, tuple(saved), n_bins
        )
        g_t, g_pk, g_pbelow, g_qk, g_qbelow, g_dlow, g_dhigh = grads
        grad_x = torch.where(inside, g_t, grad_y)

        # Where bin i lies from the point's bin k: 0 below it, 1 at it, 2 above it.
        bins = torch.arange(n_bins, device=k.device)[None, :, None, None]
        side = (bins - k[:, None]).sign_().add_(1)
        grad = p.new_empty((p.shape[0], 3 * n_bins - 1, *p.shape[2:]))  # the MADE output's gradient

        def spread(
            share: Tensor, g_k: Tensor, g_below: Tensor, s_k: Tensor, s_below: Tensor, out: Tensor
        ) -> None:
            # d/d raw_i of a softmax share: share_i (g_i - sum_j share_j g_j), g_i the gradient
            # reaching share i: g_below for the bins below k (their sum), g_k for bin k, 0 above.
            mean = g_below * s_below + g_k * s_k
            torch.mul(torch.stack([g_below - mean, g_k - mean, -mean], dim=1).gather(1, side), share, out=out)

        spread(p, g_pk, g_pbelow, p_k, p_below, grad[:, :n_bins])
        spread(q, g_qk, g_qbelow, q_k, q_below, grad[:, n_bins : 2 * n_bins])
        # Knot j carries d_low of bin j and d_high of bin j - 1; the boundary knots' are dropped.
        g_slopes = g_dlow.new_zeros((k.shape[0], n_bins + 1, *k.shape[1:]))
        g_slopes.scatter_add_(1, k[:, None], g_dlow[:, None]).scatter_add_(
            1, k[:, None] + 1, g_dhigh[:, None]
        )
        torch.mul(
            g_slopes[:, 1:n_bins], torch.sigmoid(derivatives + _IDENTITY_OFFSET), out=grad[:, 2 * n_bins :]
        )
        return grad_x, grad, None


class _NativeSpline(torch.autograd.Function):
    """:class:`_FusedSpline`'s mathematics with the per-point work in compiled C (flowmix.flows.spline_native).

    torch computes the bins' softmax shares and knot derivatives (a few vectorised calls); one C
    call per direction does the rest.
    """

    @staticmethod
    def forward(ctx, x: Tensor, params: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
        shares = torch.softmax(params[:, : 2 * n_bins].unflatten(1, (2, n_bins)), dim=2).flatten(1, 2)
        slopes = functional.softplus(params[:, 2 * n_bins :] + _IDENTITY_OFFSET).add_(MIN_DERIVATIVE)
        shares, slopes = shares.contiguous(), slopes.contiguous()
        ctx.save_for_backward(x, params, shares, slopes)
        ctx.n_bins = n_bins
        return spline_native.forward(x, shares, slopes, n_bins, _BIN_MINIMA)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor, grad_log_det: Tensor) -> tuple[Tensor, Tensor, None]:
        x, params, shares, slopes = ctx.saved_tensors
        grad_x, grad_params = spline_native.backward(
            x, shares, slopes, params, grad_y, grad_log_det, ctx.n_bins, _BIN_MINIMA, _IDENTITY_OFFSET
        )
        return grad_x, grad_params, None


class RationalQuadratic(Transformer):
    """A monotonic rational-quadratic spline of ``n_bins`` bins on [-1, 1], identity outside.

    Its parameters per coordinate are B widths, B heights and B - 1 inner knot derivatives. Its
    kernel is the training step's forward with a hand-written backward: compiled from C for the
    small steps where dispatch dominates (:mod:`flowmix.flows.spline_native`), torch's
    :class:`_FusedSpline` otherwise.
    """

    name = "rational-quadratic"
    kernels = frozenset({"training"})

    def __init__(self, n_bins: int):
        self.n_bins = n_bins

    def n_params(self) -> int:
        return 3 * self.n_bins - 1

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bins = self.n_bins
        return params[:, :bins], params[:, bins : 2 * bins], params[:, 2 * bins :]

    def forward(self, u: Tensor, params: Tensor, fused: bool) -> tuple[Tensor, Tensor]:
        if fused and spline_native.usable(u, params):
            return _NativeSpline.apply(u, params, self.n_bins)
        if fused:
            return _FusedSpline.apply(u, params, self.n_bins)
        return rational_quadratic_spline(u, *self._split(params), inverse=False, bin_dim=1)

    def inverse(self, z: Tensor, params: Tensor) -> Tensor:
        return rational_quadratic_spline(z, *self._split(params), inverse=True, bin_dim=1)[0]

    def floats_per_layer(self, dim: int) -> int:
        # The MADE's outputs, then about a dozen (D, B) tensors.
        return (3 * self.n_bins - 1) * dim + 12 * self.n_bins * dim

    def training_floats_per_layer(self, dim: int) -> int:
        # The conditioner's 3B - 1 outputs, the training kernel's bin shares (2B) and inner
        # derivatives (B - 1) and about sixteen per-coordinate intermediates it saves.
        return (6 * self.n_bins + 16) * dim


class StackedSplineFlow(AutoregressiveFlow):
    """``S`` autoregressive rational-quadratic spline flows of ``n_layers`` layers each.

    The MADEs' output layers start at zero, so every flow starts as the identity map and every
    component's initial density is its base normal.

    Parameters
    ----------
    n_stack : int
        Flows on the stack axis.
    dim : int
        Dimension D of the data.
    hidden_units : sequence of int, default=(64,)
        Hidden layer widths of each layer's MADE.
    n_layers : int, default=3
        Spline layers per flow (order reversed between layers).
    activation : str, default="tanh"
        Hidden units' activation (flowmix.nn.ACTIVATIONS).
    generator : torch.Generator or None, default=None
        Seeds the initial weights.
    n_bins : int, default=8
        Bins of every spline.
    bound_margin : float, default=0.1
        The interval reaches this fraction of the data's half-range beyond the data's bounding
        box on each side (see the module notes).

    Examples
    --------
    >>> flow = StackedSplineFlow(4, 2, n_bins=6)
    >>> flow.prepare(torch.rand(100, 2))
    >>> x = torch.rand(2, 7)
    >>> z, log_det = flow.to_latent_columns(x)
    >>> torch.allclose(flow.to_data(z.transpose(1, 2)).transpose(1, 2), x.expand(4, 2, 7), atol=1e-5)
    True
    """

    family = "spline"
    restores_order = True

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
        if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
        if not isinstance(bound_margin, (int, float)) or not 0 <= bound_margin < math.inf:
            raise ValueError(f"bound_margin must be a finite number >= 0, got {bound_margin!r}.")
        super().__init__(
            n_stack, dim, hidden_units, n_layers, activation, generator, RationalQuadratic(n_bins)
        )
        self.n_bins, self.bound_margin = n_bins, float(bound_margin)
        with torch.no_grad():
            for made in self.mades:
                made.layers[-1].weight.zero_()
        # Standard-scaled data fit inside until prepare() sees the training data.
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("half_width", torch.full((dim,), 3.0))

    def options(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "bound_margin": self.bound_margin}

    @torch.no_grad()
    def prepare(self, x: Tensor) -> None:
        low, high = x.min(dim=0).values, x.max(dim=0).values
        half = (high - low) / 2
        # A constant feature still gets an interval around its value.
        half = torch.where(half > 0, half, torch.ones_like(half)) * (1 + self.bound_margin)
        self.centre.copy_((low + high) / 2)
        self.half_width.copy_(half)

    def to_flow_units(self, x: Tensor) -> Tensor:
        """Box coordinates: (x - centre) / half_width, in [-1, 1] on the (widened) data box."""
        return (x - self.centre[:, None]) / self.half_width[:, None]

    def from_flow_units(self, u: Tensor) -> Tensor:
        return self.centre[:, None] + self.half_width[:, None] * u
