"""The MAF's float32 inference kernel: one-hidden-layer MADEs that skip their masked weights.

The affine transformer (flowmix.flows.maf) offers it to :class:`flowmix.inference.Inference`
through :meth:`~flowmix.flows.base.Transformer.float32_inference`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowmix.flows.base import AutoregressiveFlow
from flowmix.flows.base_distributions import DiagonalNormal
from flowmix.nn import REFERENCE_ACTIVATIONS

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
    log-scale rows is packed once into one matrix (one product instead of two on views, at the
    cost of a copy of 56% of those weights while the object lives). The last layer's
    affine map, its log-determinant and the base normal are applied block by block, so the
    (S, 2D, N) output of the last MADE never exists whole.

    Parameters
    ----------
    flows : StackedMAF
        The flows; see :meth:`supports` for which ones.

    Examples
    --------
    >>> from flowmix.flows.maf import StackedMAF
    >>> flows = StackedMAF(3, 4, hidden_units=(16,))
    >>> blocked = BlockedMAF(flows)
    >>> x, base = torch.randn(4, 5), DiagonalNormal(torch.zeros(3, 4), 0.5)
    >>> expected = flows.log_prob_columns(x, base)
    >>> bool(torch.allclose(blocked.log_prob_columns(x, base), expected, atol=1e-5))
    True
    """

    def __init__(self, flows: AutoregressiveFlow):
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
        """True for MAFs with one-hidden-layer MADEs of the standard masks (staircases, sorted degrees).

        MAFs here: affine layers working in data units, the latent in the last layer's order.
        """
        if not isinstance(flows, AutoregressiveFlow) or flows.transformer.name != "affine":
            return False
        if flows._flips_back() or not flows._flow_units_are_data_units():
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
    def log_prob_columns(self, x: Tensor, base: DiagonalNormal) -> Tensor:
        """As the flows' own ``log_prob_columns``: x (D, N) shared by the stack -> (S, N)."""
        loc, scale = base.loc, base.scale
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
        return total - base.log_normaliser()

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
