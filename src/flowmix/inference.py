"""Inference of a fitted mixture: joint log densities chunk by chunk, in float32 or float64.

``FlowMixture.predict``, ``predict_proba``, ``score_samples`` and ``score`` all reduce
``log pi_k + log flow_k(x)`` (one restart, all K components), which :class:`Inference` computes in
chunks of points so that memory stays bounded whatever N is.

Two precisions, chosen by the estimator's ``inference_dtype``:

- ``float64``: a float64 copy of the density runs the same modules as training (the reference
  arithmetic; results for a point depend on the other points of its chunk only in the last bits,
  about 1e-14, and agree bit for bit with flowmix 0.1.0).
- ``float32``: the density's own float32 parameters (what training produced, so nothing is
  rounded). For MAFs whose MADEs have one hidden layer, the paper's model, :class:`BlockedMAF`
  also skips the masked half of every weight matrix; other flows run their modules in float32.
  float32 products round differently with the shape of the batch, so a point's score moves in
  its last float32 bits (relative 1e-7 to 1e-6) with the other points of its chunk.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowmix import density as density_module
from flowmix.density import MixtureOfFlows
from flowmix.flows.maf import StackedMAF
from flowmix.nn import REFERENCE_ACTIVATIONS

INFERENCE_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Hidden units per block of a blocked product: smaller blocks skip more masked weights but make
# smaller, less efficient matrix products (measured on the paper's 1024-unit image model).
_UNITS_PER_BLOCK = 128
_MAX_BLOCKS = 8

# In-place activations where torch has one: the hidden tensor is the largest of a chunk.
_IN_PLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "elu": nn.functional.elu_,
}


def torch_inference_dtype(name: object) -> torch.dtype:
    """The torch dtype named by an ``inference_dtype`` parameter, or a ValueError that lists the choices."""
    if not isinstance(name, str) or name not in INFERENCE_DTYPES:
        raise ValueError(
            f"inference_dtype must be 'float32' (fast) or 'float64' (reference precision), got {name!r}."
        )
    return INFERENCE_DTYPES[name]


def in_dtype(density: MixtureOfFlows, dtype: torch.dtype) -> MixtureOfFlows:
    """``density`` itself if it holds ``dtype`` numbers, else a copy converted to ``dtype``."""
    return density if density.logits.dtype == dtype else copy.deepcopy(density).to(dtype)


def _prefix_lengths(mask: Tensor) -> Tensor | None:
    """Per row of a 0/1 mask, the number of leading ones; None unless every row is ones then zeros."""
    counts = mask.sum(1).long()
    columns = torch.arange(mask.shape[1], device=mask.device)
    prefix_form = torch.equal(mask != 0, columns[None, :] < counts[:, None])
    return counts if prefix_form else None


def _split(n: int, n_blocks: int) -> list[tuple[int, int]]:
    bounds = [round(i * n / n_blocks) for i in range(n_blocks + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


class BlockedMAF:
    """log densities of a stack of MAFs with one-hidden-layer MADEs, skipping masked weights.

    A MADE's masks are staircases: hidden unit i sees the inputs before its degree, and the
    outputs of dimension d see the hidden units of degree at most d (flowmix.nn). Hidden units
    are sorted by degree, so a block of consecutive units needs only a prefix of the inputs, and
    a block of consecutive dimensions only a prefix of the hidden units. With B blocks the
    products cover (B + 1) / (2B) of the dense weights (56% at B = 8). The first layer reads
    strided views of the flow's own weights; each block of the output layer's shift and
    log-scale rows is packed once into one matrix (about 10% faster than two products on views,
    at the cost of a copy of 56% of those weights while the object lives). The last layer's
    affine map, its log-determinant and the base normal are applied block by block, so the
    (S, 2D, N) output of the last MADE never exists whole.

    Parameters
    ----------
    flows : StackedMAF
        The flows; see :meth:`supports` for which ones.

    Examples
    --------
    >>> flows = StackedMAF(3, 4, hidden_units=(16,))
    >>> blocked = BlockedMAF(flows)
    >>> x, means = torch.randn(4, 5), torch.zeros(3, 4)
    >>> expected = flows.log_prob_columns(x, means, 0.5)
    >>> bool(torch.allclose(blocked.log_prob_columns(x, means, 0.5), expected, atol=1e-5))
    True
    """

    def __init__(self, flows: StackedMAF):
        if not self.supports(flows):
            raise ValueError("BlockedMAF needs MAF flows whose MADEs have one hidden layer (see supports).")
        self.flows = flows
        first, last = flows.mades[0].layers
        hidden_prefix = _prefix_lengths(first.mask)
        output_prefix = _prefix_lengths(last.mask)[: flows.dim]
        n_hidden = first.mask.shape[0]
        n_blocks = max(1, min(_MAX_BLOCKS, n_hidden // _UNITS_PER_BLOCK, flows.dim))
        # (first unit, end unit, inputs used) and (first dimension, end dimension, hidden units used).
        self.hidden_blocks = [(a, b, int(hidden_prefix[a:b].max())) for a, b in _split(n_hidden, n_blocks)]
        self.output_blocks = [(a, b, int(output_prefix[a:b].max())) for a, b in _split(flows.dim, n_blocks)]
        self.n_hidden = n_hidden
        # Per MADE and output block: (shift and log-scale rows (S, 2 Db, used), their biases (S, 2 Db, 1)).
        self.packed = []
        with torch.no_grad():
            for made in flows.mades:
                last = made.layers[1]
                weight = last.weight.view(flows.n_stack, 2, flows.dim, n_hidden)
                bias = last.bias.view(flows.n_stack, 2, flows.dim)
                self.packed.append(
                    [
                        (
                            weight[:, :, a:b, :used].reshape(flows.n_stack, 2 * (b - a), used).contiguous(),
                            bias[:, :, a:b].reshape(flows.n_stack, 2 * (b - a), 1).contiguous(),
                        )
                        for a, b, used in self.output_blocks
                    ]
                )

    @staticmethod
    def supports(flows: nn.Module) -> bool:
        """True for MAFs with one-hidden-layer MADEs of the standard masks (staircases, sorted degrees)."""
        if type(flows) is not StackedMAF:
            return False
        for made in flows.mades:
            if len(made.layers) != 2 or made.n_params != 2:
                return False
            first, last = made.layers
            hidden_prefix, output_prefix = _prefix_lengths(first.mask), _prefix_lengths(last.mask)
            if hidden_prefix is None or output_prefix is None:
                return False
            per_param = output_prefix.reshape(2, flows.dim)
            if not (per_param[0] == per_param[1]).all():
                return False
            if (hidden_prefix.diff() < 0).any() or (per_param[0].diff() < 0).any():
                return False
        return True

    def floats_per_point(self) -> int:
        """Activations one point holds at the peak of a pass (hidden layer, one output block, inputs)."""
        widest = max(b - a for a, b, _ in self.output_blocks)
        dim, n_stack = self.flows.dim, self.flows.n_stack
        layers_after_first = 2 * n_stack * dim if len(self.flows.mades) > 1 else 0
        return n_stack * (self.n_hidden + 2 * widest) + dim + layers_after_first

    @torch.inference_mode()
    def log_prob_columns(self, x: Tensor, loc: Tensor, scale: float | Tensor) -> Tensor:
        """As :meth:`flowmix.flows.maf.StackedMAF.log_prob_columns`: x (D, N) shared by the stack -> (S, N)."""
        flows = self.flows
        n_stack, dim, n_points = flows.n_stack, flows.dim, x.shape[-1]
        total = torch.zeros(n_stack, n_points, dtype=x.dtype, device=x.device)
        u = x
        for index, made in enumerate(flows.mades):
            last = index == len(flows.mades) - 1
            hidden = self._hidden(made, u)
            following = None if last else torch.empty(n_stack, dim, n_points, dtype=x.dtype, device=x.device)
            for (a, b, used), (weight, bias) in zip(self.output_blocks, self.packed[index], strict=True):
                params = torch.baddbmm(bias, weight, hidden[:, :used]).view(n_stack, 2, b - a, n_points)
                shift, log_scale = params[:, 0], params[:, 1]
                total -= log_scale.sum(1)
                # z = (u - shift) exp(-log_scale), written over shift.
                z = shift.neg_().add_(u[..., a:b, :]).mul_(log_scale.neg_().exp_())
                if last:
                    z.sub_(loc[:, a:b, None])
                    if isinstance(scale, Tensor):
                        z.div_(scale[:, a:b, None])
                        total -= z.square_().sum(1).mul_(0.5)
                    else:
                        total -= z.square_().sum(1).mul_(0.5 / scale**2)
                else:
                    following[:, a:b] = z
            if not last:
                u = following.flip(1)
        if isinstance(scale, Tensor):
            const = scale.log().sum(-1, keepdim=True) + 0.5 * dim * math.log(2 * math.pi)
        else:
            const = dim * (math.log(scale) + 0.5 * math.log(2 * math.pi))
        return total - const

    def _hidden(self, made: nn.Module, u: Tensor) -> Tensor:
        """The MADE's hidden layer for points u, (D, N) shared or (S, D, N): (S, H, N)."""
        first = made.layers[0]
        n_stack, n_points = self.flows.n_stack, u.shape[-1]
        hidden = torch.empty(n_stack, self.n_hidden, n_points, dtype=u.dtype, device=u.device)
        for a, b, used in self.hidden_blocks:
            inputs = u[:used].expand(n_stack, used, n_points) if u.dim() == 2 else u[:, :used]
            torch.baddbmm(first.bias[:, a:b, None], first.weight[:, a:b, :used], inputs, out=hidden[:, a:b])
        name = made.activation_name
        return _IN_PLACE[name](hidden) if name in _IN_PLACE else REFERENCE_ACTIVATIONS[name](hidden)


class Inference:
    """Joint log densities of a fitted mixture, evaluated in chunks in one precision.

    Parameters
    ----------
    density : MixtureOfFlows
        The fitted mixture (any number of restarts; the estimator keeps one). It is not changed;
        a float64 copy is made for float64 inference of a float32 density (and the reverse).
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``.

    Attributes
    ----------
    points_per_chunk : int
        Points per chunk: the activations of one chunk take at most the bytes of
        ``flowmix.density.INFERENCE_CHUNK_FLOATS`` float64 numbers (128 MiB), whatever the dtype.

    Examples
    --------
    >>> from flowmix.flows import make_flow
    >>> density = MixtureOfFlows(make_flow("maf", 3, 2), torch.zeros(1, 3, 2), 0.5)
    >>> fast = Inference(density, torch.float32)
    >>> tuple(fast.joint_log_prob(torch.randn(7, 2)).shape)
    (1, 3, 7)
    """

    def __init__(self, density: MixtureOfFlows, dtype: torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
        self.dtype = dtype
        self.density = in_dtype(density, dtype)
        self.blocked = None
        if (
            dtype == torch.float32
            and density.base_scale_tril is None
            and BlockedMAF.supports(self.density.flows)
        ):
            self.blocked = BlockedMAF(self.density.flows)
        if dtype == torch.float64:
            # The reference path's chunks, unchanged (its results depend on them in the last bits).
            self.points_per_chunk = self.density.points_per_chunk()
        else:
            # The float64 path's bytes, in float32 numbers.
            per_point = (
                self.blocked.floats_per_point()
                if self.blocked is not None
                else density.n_restarts * density.n_components * density.flows.floats_per_point()
            )
            self.points_per_chunk = max(1, 2 * density_module.INFERENCE_CHUNK_FLOATS // per_point)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_rk + log flow_rk(x) for one chunk: x (n, D) -> (R, K, n) in ``dtype``."""
        density = self.density
        x = x.to(self.dtype)
        with torch.inference_mode():
            if self.blocked is None:
                return density.joint_log_prob(x)
            means = density.base_means.reshape(-1, density.dim)
            component = self.blocked.log_prob_columns(x.T.contiguous(), means, density._stacked_scale())
            # The weights in float64 first: their log-softmax then costs no float32 rounding.
            log_weights = torch.log_softmax(density.logits.double(), dim=-1).to(self.dtype)
            return log_weights[:, :, None] + component.reshape(density.n_restarts, density.n_components, -1)
