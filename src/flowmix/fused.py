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


class _TanhMADE(torch.autograd.Function):
    """A one-hidden-layer tanh MADE: out = W2 tanh(W1 x + b1) + b2, with masked W1, W2 given.

    The hidden layer is kept as s = sigmoid(2 (W1 x + b1)), so tanh = 2 s - 1 never has to be
    formed: the factor 2 goes into the first product (alpha, beta), the -1 into the second
    layer's bias (b2 - W2 1), and the backward uses sigmoid's fused gradient kernel. The
    (S, H, N) hidden tensor is then written once and read by the products only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        n_stack, n_hidden, dim = w1.shape
        if x.dim() == 2:
            pre = torch.addmm(b1.reshape(-1, 1), w1.reshape(n_stack * n_hidden, dim), x, beta=2, alpha=2)
            pre = pre.reshape(n_stack, n_hidden, x.shape[1])
        else:
            pre = torch.baddbmm(b1[:, :, None], w1, x, beta=2, alpha=2)
        s = pre.sigmoid_()
        out = torch.baddbmm((b2 - w2.sum(-1))[:, :, None], w2, s, alpha=2)
        ctx.save_for_backward(x, w1, w2, s)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w1, w2, s = ctx.saved_tensors
        n_stack, n_hidden, dim = w1.shape
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        grad_b2 = grad.sum(-1)
        grad_w2 = None
        if need_w2:
            # d/dW2 of W2 (2 s - 1) = 2 grad s^T - (grad 1) 1^T
            grad_w2 = torch.baddbmm(-grad_b2[:, :, None], grad, s.transpose(1, 2), alpha=2)
        # Gradient at the tanh's input: W2^T grad * (1 - tanh^2) = W2^T grad * 4 s (1 - s);
        # the factor 4 is applied to the (small) results below.
        grad_pre = torch.bmm(w2.transpose(1, 2), grad)
        torch.ops.aten.sigmoid_backward.grad_input(grad_pre, s, grad_input=grad_pre)
        grad_b1 = grad_pre.sum(-1).mul_(4) if need_b1 else None
        grad_x = grad_w1 = None
        if x.dim() == 2:
            flat = grad_pre.reshape(n_stack * n_hidden, -1)
            if need_w1:
                grad_w1 = torch.mm(flat, x.T).mul_(4).reshape(n_stack, n_hidden, dim)
            if need_x:
                grad_x = torch.mm(w1.reshape(n_stack * n_hidden, dim).T, flat).mul_(4)
        else:
            if need_w1:
                grad_w1 = torch.bmm(grad_pre, x.transpose(1, 2)).mul_(4)
            if need_x:
                grad_x = torch.bmm(w1.transpose(1, 2), grad_pre).mul_(4)
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2 if need_b2 else None


def tanh_made(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """``W2 tanh(W1 x + b1) + b2`` for a stack of one-hidden-layer networks (see :class:`_TanhMADE`).

    Parameters
    ----------
    x : Tensor of shape (S, D, N) or (D, N)
        The points; (D, N) when shared by the stack.
    w1 : Tensor of shape (S, H, D)
        With ``b1``, the hidden layer (masks already applied).
    b1 : Tensor of shape (S, H)
    w2 : Tensor of shape (S, O, H)
        With ``b2``, the output layer (masks already applied).
    b2 : Tensor of shape (S, O)

    Returns
    -------
    Tensor of shape (S, O, N)

    Examples
    --------
    >>> tanh_made(torch.randn(3, 5), torch.randn(2, 4, 3), torch.zeros(2, 4),
    ...           torch.randn(2, 6, 4), torch.zeros(2, 6)).shape
    torch.Size([2, 6, 5])
    """
    return _TanhMADE.apply(x, w1, b1, w2, b2)


class _AffineNormalLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, params: Tensor, mean: Tensor, std: float | Tensor) -> Tensor:
        shift, log_scale = params[:, 0], params[:, 1]
        inv_scale = torch.exp(log_scale.neg())
        centred = (u - shift).mul_(inv_scale).sub_(mean[:, :, None])
        if isinstance(std, Tensor):
            var = std.square()[:, :, None]
            out = (centred.square() / var).sum(1).mul_(-0.5)
        else:
            var = std**2
            out = centred.square().sum(1).mul_(-0.5 / var)
        out -= log_scale.sum(1)
        ctx.save_for_backward(centred, inv_scale, mean)
        ctx.var = var
        ctx.u_needs_grad = ctx.needs_input_grad[0]
        ctx.u_shared = u.dim() == 2
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, None, None]:
        centred, inv_scale, mean = ctx.saved_tensors
        n_stack, dim, n_points = centred.shape
        g = grad[:, None, :]
        g_over_var = g / ctx.var  # a float, or (S, D, 1) per-dimension variances
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


def affine_normal_log_prob(u: Tensor, params: Tensor, mean: Tensor, std: float | Tensor) -> Tensor:
    """log N(z; mean, std^2 I) - sum_d log_scale_d, with z = (u - shift) * exp(-log_scale).

    The last step of a MAF density: the inverse affine map of its final layer, its log-det and the
    diagonal normal base, in one function. The normal's constant -D (log std + log(2 pi) / 2) is
    left to the caller.

    Parameters
    ----------
    u : Tensor of shape (S, D, N) or (D, N)
        Points entering the final layer, or (D, N) shared by the stack.
    params : Tensor of shape (S, 2, D, N)
        The layer's shift (index 0) and log-scale (index 1).
    mean : Tensor of shape (S, D)
        Base means, constants.
    std : float or Tensor of shape (S, D)
        Base standard deviation: a float, or (S, D) per flow and dimension (constants).

    Returns
    -------
    Tensor of shape (S, N)

    Examples
    --------
    >>> u, params = torch.randn(3, 2, 5), torch.randn(3, 2, 2, 5)
    >>> affine_normal_log_prob(u, params, torch.zeros(3, 2), 1.0).shape
    torch.Size([3, 5])
    """
    return _AffineNormalLogProb.apply(u, params, mean, std)
