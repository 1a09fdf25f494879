"""Base distributions of a stack of flows: the normal each flow maps its points onto.

A flow ``s`` of a stack maps data x to latent z; its density is ``log p_s(x) = log base_s(z) +
log|det dz/dx|``. The base is an object, so that a flow family, the mixture density and inference
never branch on which kind of normal a component has:

- :class:`DiagonalNormal`: N(loc_s, diag(scale_s^2)), the paper's choice (fixed locations, one
  scale or one per dimension);
- :class:`FullNormal`: N(loc_s, L_s L_s^T) from a lower-triangular Cholesky factor, which makes a
  component that starts as the identity flow its cluster's full-covariance Gaussian.

Both hold constants (no parameters): training moves the flows, not the bases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

Scale = float | Tensor
"""A base standard deviation: one float shared by every flow and dimension, or (S, D)."""


def diagonal_log_normaliser(scale: Scale, dim: int) -> Tensor | float:
    """log of N(.; loc, diag(scale^2))'s normalising constant in dimension ``dim``: (S, 1), or a float.

    Examples
    --------
    >>> round(diagonal_log_normaliser(1.0, 2), 4)
    1.8379
    """
    if isinstance(scale, Tensor):
        return scale.log().sum(-1, keepdim=True) + 0.5 * dim * math.log(2 * math.pi)
    return dim * (math.log(scale) + 0.5 * math.log(2 * math.pi))


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
    standard = (z - loc[:, :, None]) / (scale[:, :, None] if isinstance(scale, Tensor) else scale)
    return -0.5 * standard.square().sum(1) - diagonal_log_normaliser(scale, z.shape[1])


def full_normal_log_prob_columns(z: Tensor, loc: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(z; loc, L L^T) for points as columns: z (S, D, N), loc (S, D), L (S, D, D) -> (S, N).

    Examples
    --------
    >>> z = torch.zeros(1, 2, 3)
    >>> round(float(full_normal_log_prob_columns(z, torch.zeros(1, 2), torch.eye(2)[None])[0, 0]), 4)
    -1.8379
    """
    dim = z.shape[1]
    standard = torch.linalg.solve_triangular(scale_tril, z - loc[:, :, None], upper=False)
    log_det = torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1, keepdim=True)
    return -0.5 * standard.square().sum(1) - log_det - 0.5 * dim * math.log(2 * math.pi)


@dataclass(frozen=True)
class DiagonalNormal:
    """N(loc_s, diag(scale_s^2)) for every flow s of a stack.

    Parameters
    ----------
    loc : Tensor of shape (S, D)
        Means.
    scale : float or Tensor of shape (S, D)
        One standard deviation for every flow and dimension, or one per flow and dimension.

    Examples
    --------
    >>> base = DiagonalNormal(torch.zeros(2, 3), 0.5)
    >>> tuple(base.log_prob_columns(torch.zeros(2, 3, 4)).shape)
    (2, 4)
    """

    loc: Tensor
    scale: Scale

    def log_prob_columns(self, z: Tensor) -> Tensor:
        """log density of latent points as columns: z (S, D, N) -> (S, N)."""
        return normal_log_prob_columns(z, self.loc, self.scale)

    def log_normaliser(self) -> Tensor | float:
        """log of the normalising constant: (S, 1), or a float for one shared scale."""
        return diagonal_log_normaliser(self.scale, self.loc.shape[-1])

    def from_standard(self, noise: Tensor) -> Tensor:
        """Latent points as rows from standard normal noise (S, N, D): loc + scale * noise."""
        scale = self.scale[:, None, :] if isinstance(self.scale, Tensor) else self.scale
        return self.loc[:, None, :] + scale * noise


@dataclass(frozen=True)
class FullNormal:
    """N(loc_s, L_s L_s^T) for every flow s of a stack.

    Parameters
    ----------
    loc : Tensor of shape (S, D)
        Means.
    scale_tril : Tensor of shape (S, D, D)
        Lower-triangular Cholesky factors with positive diagonals.

    Examples
    --------
    >>> base = FullNormal(torch.zeros(2, 3), torch.eye(3).expand(2, 3, 3))
    >>> tuple(base.log_prob_columns(torch.zeros(2, 3, 4)).shape)
    (2, 4)
    """

    loc: Tensor
    scale_tril: Tensor

    def log_prob_columns(self, z: Tensor) -> Tensor:
        """log density of latent points as columns: z (S, D, N) -> (S, N)."""
        return full_normal_log_prob_columns(z, self.loc, self.scale_tril)

    def from_standard(self, noise: Tensor) -> Tensor:
        """Latent points as rows from standard normal noise (S, N, D): loc + L noise."""
        return self.loc[:, None, :] + noise.to(self.scale_tril.dtype) @ self.scale_tril.transpose(1, 2)


BaseDistribution = DiagonalNormal | FullNormal
"""The base distributions a flow family accepts."""
