"""The hand-written gradients of flowmix.fused against plain autograd on the same formulas."""

from __future__ import annotations

import math

import pytest
import torch

from flowmix.fused import affine_normal_log_prob, tanh, tanh_made


def _reference(u, params, mean, std):
    shift, log_scale = params[:, 0], params[:, 1]
    z = (u - shift) * torch.exp(-log_scale)
    standard = (z - mean[:, :, None]) / std
    return (-0.5 * standard**2 - log_scale).sum(1)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_affine_normal_log_prob_matches_autograd(shared, dtype):
    gen = torch.Generator().manual_seed(0)
    n_stack, dim, n_points, std = 4, 5, 7, 0.3
    u_shape = (dim, n_points) if shared else (n_stack, dim, n_points)
    u = torch.randn(*u_shape, generator=gen, dtype=dtype, requires_grad=True)
    params = (0.5 * torch.randn(n_stack, 2, dim, n_points, generator=gen, dtype=dtype)).requires_grad_()
    mean = torch.randn(n_stack, dim, generator=gen, dtype=dtype)
    weights = torch.randn(n_stack, n_points, generator=gen, dtype=dtype)

    fused_out = affine_normal_log_prob(u, params, mean, std)
    fused_grads = torch.autograd.grad((fused_out * weights).sum(), (u, params))
    plain_out = _reference(u, params, mean, std)
    plain_grads = torch.autograd.grad((plain_out * weights).sum(), (u, params))

    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fused_out, plain_out, rtol=tol, atol=tol)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_affine_normal_log_prob_without_input_gradient():
    params = torch.randn(2, 2, 3, 4, requires_grad=True)
    out = affine_normal_log_prob(torch.randn(3, 4), params, torch.zeros(2, 3), 1.0)
    (grad,) = torch.autograd.grad(out.sum(), params)
    assert grad.shape == params.shape and torch.isfinite(grad).all()


def test_standard_normal_case_is_the_textbook_density():
    # Zero shift and log-scale: the identity map, so the result is log N(u; 0, I) minus its constant.
    u = torch.tensor([[0.0, 1.0, -2.0]])
    out = affine_normal_log_prob(u, torch.zeros(1, 2, 1, 3), torch.zeros(1, 1), 1.0)
    torch.testing.assert_close(out, -0.5 * u**2)
    assert math.isclose(float(out[0, 2]), -2.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_matches_torch(dtype):
    x = torch.linspace(-12, 12, 20001, dtype=dtype).requires_grad_()
    ours, theirs = tanh(x), torch.tanh(x)
    atol = 2.5e-7 if dtype == torch.float32 else 1e-15
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=5 * atol)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_made_matches_autograd(shared, dtype):
    gen = torch.Generator().manual_seed(1)
    n_stack, dim, hidden, n_out, n_points = 3, 4, 6, 8, 5

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_()

    x = rand(dim, n_points) if shared else rand(n_stack, dim, n_points)
    w1, b1, w2, b2 = (
        rand(n_stack, hidden, dim),
        rand(n_stack, hidden),
        rand(n_stack, n_out, hidden),
        rand(n_stack, n_out),
    )
    weights = torch.randn(n_stack, n_out, n_points, generator=gen, dtype=dtype)
    inputs = (x, w1, b1, w2, b2)

    ours = tanh_made(*inputs)
    ours_grads = torch.autograd.grad((ours * weights).sum(), inputs)
    plain = torch.tanh(w1 @ x + b1[:, :, None])
    plain = w2 @ plain + b2[:, :, None]
    plain_grads = torch.autograd.grad((plain * weights).sum(), inputs)

    tol = 2e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, plain, rtol=tol, atol=tol)
    for got, want in zip(ours_grads, plain_grads, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
