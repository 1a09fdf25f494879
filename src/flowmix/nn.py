"""Masked linear layers with a leading *stack* axis, and the MADE network built from them.

Every parameter tensor carries a leading axis of size ``S`` (the stack): one slice per
independent network. flowmix stacks the ``K`` components of a mixture and the ``R`` restarts of
``n_init`` on this axis (``S = R * K``), so one ``bmm`` per layer evaluates all of them at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowmix import fused

ACTIVATIONS = {
    "tanh": fused.tanh,
    "relu": torch.relu,
    "elu": nn.functional.elu,
    "gelu": nn.functional.gelu,
    "sigmoid": torch.sigmoid,
}
# The same functions as plain torch operations: the reference path that the fast one is tested against.
REFERENCE_ACTIVATIONS = {**ACTIVATIONS, "tanh": torch.tanh}


def input_degrees(dim: int) -> Tensor:
    """Degrees 1..D of the inputs in natural order, shape (D,)."""
    return torch.arange(1, dim + 1)


def hidden_degrees(dim: int, n_hidden: int) -> Tensor:
    """Degrees of hidden units spread evenly over 1..max(D-1, 1), shape (n_hidden,).

    A hidden unit of degree ``m`` may see inputs 1..m, so no unit needs degree D (it could
    feed no output).
    """
    top = max(dim - 1, 1)
    return (torch.arange(n_hidden) * top // n_hidden + 1).clamp(max=top)


def made_masks(dim: int, hidden: Sequence[int], n_params: int) -> list[Tensor]:
    """Connectivity masks of a MADE, one (out, in) float tensor per layer.

    Output unit ``j`` belongs to dimension ``j % D`` (layout ``[param_0(D), param_1(D), ...]``)
    and may only depend on inputs of strictly lower degree: this makes the network's Jacobian
    strictly lower-triangular.
    """
    degrees = [input_degrees(dim)]
    for width in hidden:
        degrees.append(hidden_degrees(dim, width))
    masks = [(deg_out[:, None] >= deg_in[None, :]).float() for deg_in, deg_out in itertools.pairwise(degrees)]
    out_degrees = input_degrees(dim).repeat(n_params)
    masks.append((out_degrees[:, None] > degrees[-1][None, :]).float())
    return masks


class StackedMaskedLinear(nn.Module):
    """``S`` independent masked linear maps ``y_s = (W_s * M) x_s + b_s`` on column batches.

    Points are *columns* (layout (S, features, N)): the per-layer products are then plain
    (out, in) @ (in, N) matrix products with no transposes, and element-wise work runs along
    the contiguous N axis. Weights are Glorot-uniform over the full matrix and biases start at
    zero, as Keras initialises the paper's MADE.

    Masked entries of ``weight`` are held at zero (at construction and after loading a state
    dict) and their gradient is masked, so they stay zero under any gradient optimiser without
    weight decay toward non-zero values; the forward pass then needs no mask product, which
    saves a copy of every weight tensor per step and per prediction chunk. Code that writes
    weights directly must call :meth:`zero_masked_` afterwards.

    Attributes
    ----------
    weight : nn.Parameter of shape (S, out, in)
    bias : nn.Parameter of shape (S, out)
    mask : Tensor of shape (out, in)
        Shared by the stack.
    """

    def __init__(self, n_stack: int, mask: Tensor, generator: torch.Generator | None = None):
        super().__init__()
        n_out, n_in = mask.shape
        limit = math.sqrt(6.0 / (n_in + n_out))
        weight = (torch.rand(n_stack, n_out, n_in, generator=generator) * 2 - 1) * limit
        self.weight = nn.Parameter(weight * mask)
        self.bias = nn.Parameter(torch.zeros(n_stack, n_out))
        self.register_buffer("mask", mask.clone())
        # Model files written before masked entries were zeroed hold their initial values.
        self.register_load_state_dict_post_hook(_zero_masked_after_load)

    @torch.no_grad()
    def zero_masked_(self) -> StackedMaskedLinear:
        """Set the masked entries of ``weight`` to zero (in place)."""
        self.weight.mul_(self.mask)
        return self

    def masked_weight(self) -> Tensor:
        """The weight (masked entries are zero), with its gradient masked on the way back."""
        return _MaskGradient.apply(self.weight, self.mask)

    def forward(self, x: Tensor) -> Tensor:
        """Apply every map of the stack.

        Parameters
        ----------
        x : Tensor of shape (S, in, N) or (in, N)
            The points; (in, N) when every stack member sees the same points.

        Returns
        -------
        Tensor of shape (S, out, N)
        """
        weight = self.masked_weight()
        if x.dim() == 2:
            n_stack, n_out, n_in = weight.shape
            # One (S*out, in) @ (in, N) GEMM instead of S small ones: the first layer of a
            # mixture sees the same data in every component.
            y = torch.addmm(self.bias.reshape(-1, 1), weight.reshape(n_stack * n_out, n_in), x)
            return y.reshape(n_stack, n_out, x.shape[1])
        return torch.baddbmm(self.bias[:, :, None], weight, x)


def _zero_masked_after_load(layer: StackedMaskedLinear, _incompatible_keys) -> None:
    # A module-level function, not a lambda: fitted estimators are pickled (joblib).
    layer.zero_masked_()


class _MaskGradient(torch.autograd.Function):
    """Identity on the weight; the mask is applied to its gradient only."""

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class StackedMADE(nn.Module):
    """``S`` masked autoencoders (Germain et al., 2015) evaluated together.

    Maps points x of shape (S, D, N) (or shared (D, N)) to ``n_params`` autoregressive
    parameters per dimension, shape (S, n_params, D, N): parameter ``p`` of dimension ``d``
    depends on x_<d only.

    Attributes
    ----------
    fused : bool
        Use the hand-written step for the paper's network (one tanh hidden layer) and the
        logistic-based tanh; False runs plain autograd operations (the reference path).
    """

    def __init__(
        self,
        n_stack: int,
        dim: int,
        hidden: Sequence[int] = (10,),
        n_params: int = 2,
        activation: str = "tanh",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.dim, self.n_params = dim, n_params
        self.activation_name = activation
        masks = made_masks(dim, hidden, n_params)
        self.layers = nn.ModuleList(StackedMaskedLinear(n_stack, m, generator) for m in masks)
        self.fused = True

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and self.activation_name == "tanh" and len(self.layers) == 2:
            first, second = self.layers
            out = fused.tanh_made(x, first.masked_weight(), first.bias, second.masked_weight(), second.bias)
            return out.reshape(out.shape[0], self.n_params, self.dim, out.shape[-1])
        activation = (ACTIVATIONS if self.fused else REFERENCE_ACTIVATIONS)[self.activation_name]
        h = x
        for layer in self.layers[:-1]:
            h = activation(layer(h))
        out = self.layers[-1](h)
        return out.reshape(out.shape[0], self.n_params, self.dim, out.shape[-1])
