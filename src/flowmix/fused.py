"""Hand-written gradients for the memory-bound parts of a training step.

Between the matrix products, a step of a mixture of MAFs runs element-wise work over tensors as
large as (S, 2D, N). Left to autograd, each small operation reads and writes the whole tensor
again, and selecting shift and log-scale from the network output zero-fills a full-size gradient
per selection. The functions here do the same mathematics in a few passes. They are checked
against the plain autograd versions in tests/test_fused.py.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _Tanh(torch.autograd.Function):
    """tanh through the logistic function, tanh(x) = 2 sigmoid(2x) - 1.

    torch's CPU tanh is about twice as slow as its sigmoid; the identity costs an absolute error
    of about one float32 ulp of 1 (1e-7), far below what training can notice.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    """Element-wise hyperbolic tangent with a cheaper CPU kernel (see :class:`_Tanh`)."""
    return _Tanh.apply(x)


class _AffineNormalLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, params: Tensor, mean: Tensor, std: float) -> Tensor:
        shift, log_scale = params[:, 0], params[:, 1]
        inv_scale = torch.exp(log_scale.neg())
        centred = (u - shift).mul_(inv_scale).sub_(mean[:, :, None])
        out = centred.square().sum(1).mul_(-0.5 / std**2)
        out -= log_scale.sum(1)
        ctx.save_for_backward(centred, inv_scale, mean)
        ctx.std = std
        ctx.u_needs_grad = ctx.needs_input_grad[0]
        ctx.u_shared = u.dim() == 2
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, None, None]:
        centred, inv_scale, mean = ctx.saved_tensors
        n_stack, dim, n_points = centred.shape
        g = grad[:, None, :]
        g_over_var = g / ctx.std**2
        grad_params = torch.empty(n_stack, 2, dim, n_points, dtype=centred.dtype, device=centred.device)
        # d out / d shift = g (z - mean) exp(-log_scale) / std^2
        grad_shift = torch.mul(centred, inv_scale, out=grad_params[:, 0]).mul_(g_over_var)
        # d out / d log_scale = g ((z - mean) z / std^2 - 1), with z = centred + mean
        grad_log_scale = torch.add(centred, mean[:, :, None], out=grad_params[:, 1]).mul_(centred)
        torch.addcmul(g.neg().expand_as(grad_log_scale), grad_log_scale, g_over_var, out=grad_log_scale)
        grad_u = None
        if ctx.u_needs_grad:
            grad_u = grad_shift.neg()
            if ctx.u_shared:
                grad_u = grad_u.sum(0)
        return grad_u, grad_params, None, None


def affine_normal_log_prob(u: Tensor, params: Tensor, mean: Tensor, std: float) -> Tensor:
    """log N(z; mean, std^2 I) - sum_d log_scale_d, with z = (u - shift) * exp(-log_scale).

    The last step of a MAF density: the inverse affine map of its final layer, its log-det and the
    diagonal normal base, in one function. The normal's constant -D (log std + log(2 pi) / 2) is
    left to the caller.

    Args:
        u: (S, D, N) points entering the final layer, or (D, N) shared by the stack.
        params: (S, 2, D, N) the layer's shift (index 0) and log-scale (index 1).
        mean: (S, D) base means, constants.
        std: base standard deviation.

    Returns:
        (S, N)

    Example:
        >>> u, params = torch.randn(3, 2, 5), torch.randn(3, 2, 2, 5)
        >>> affine_normal_log_prob(u, params, torch.zeros(3, 2), 1.0).shape
        torch.Size([3, 5])
    """
    return _AffineNormalLogProb.apply(u, params, mean, std)
