"""A fitted mixture as one value: what a training returns, what a model file holds, what the estimator stores.

:class:`FittedMixture` is made by :class:`flowmix.fitting.Trainer` (a fit) or by
:mod:`flowmix.persistence` (a model read from disk); :meth:`FittedMixture.attributes` gives the
estimator's fitted attributes from it, the same way for both.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from flowmix.density import MixtureOfFlows
from flowmix.memory_budget import FitPlan
from flowmix.training import TrainResult


@dataclasses.dataclass
class FittedMixture:
    """The kept restart of a training and what training recorded about every restart.

    Attributes
    ----------
    density : MixtureOfFlows
        The kept restart (one restart, R = 1), float32 as trained (float64 in old model files).
    result : TrainResult
        Every restart's losses and stopping epochs.
    best_restart : int
        Which restart was kept.
    selection_scores : ndarray of shape (n_init,) or None
        Every restart's score under the selection rule (None for a model read from a file).
    algorithm : str or None
        The training algorithm (None where a model file does not say).
    memory_plan : FitPlan or None
        The plan the training ran under (None for a model read from a file).
    labels : ndarray of shape (n_samples,) or None
        Each training point's component (None for a model read from a file).
    """

    density: MixtureOfFlows
    result: TrainResult
    best_restart: int
    selection_scores: np.ndarray | None = None
    algorithm: str | None = None
    memory_plan: FitPlan | None = None
    labels: np.ndarray | None = None

    def attributes(self) -> dict[str, Any]:
        """The estimator's fitted attributes (names without the trailing underscore) from this value."""
        result, best = self.result, self.best_restart
        n_iter = result.n_epochs_run if result.epochs_trained is None else int(result.epochs_trained[best])
        out: dict[str, Any] = {
            "density": self.density,
            "losses": result.losses,
            "batch_mean_losses": result.batch_mean_losses,
            "best_restart": best,
            "n_iter": n_iter,
            "best_epoch": None,
            "validation_loss_curve": None,
            "loss_curve": result.losses[best, :n_iter].copy(),
            "selection_scores": self.selection_scores,
            "algorithm": self.algorithm,
            "memory_plan": self.memory_plan,
        }
        if result.best_epoch is not None:
            out["best_epoch"] = int(result.best_epoch[best])
            out["validation_loss_curve"] = result.validation_losses[best, :n_iter].copy()
        if self.labels is not None:
            out["labels"] = self.labels
            k = self.density.logits.shape[-1]
            out["empty_components"] = np.setdiff1d(np.arange(k), self.labels)
        out.update(base_attributes(self.density))
        return out


def base_attributes(density: MixtureOfFlows) -> dict[str, Any]:
    """Weights and base normals of a one-restart density, in the preprocessed data's coordinates."""
    # From the logits in float64, whatever the density's dtype: the same weights either way.
    log_weights = torch.log_softmax(density.logits.detach()[0].double(), dim=-1)
    means = density.base_means[0].cpu().numpy().astype(np.float64)
    if density.base_scales is None:
        scales = np.full_like(means, density.base_std)
    else:
        scales = density.base_scales[0].cpu().numpy().astype(np.float64)
    covariances = None
    if density.subspaces is not None:
        # The standard normal base in whitened subspace coordinates, mapped back to the data's.
        subspaces = density.subspaces
        means = subspaces.mean[0].cpu().numpy().astype(np.float64)
        basis = subspaces.basis[0].cpu().double()
        along = (basis.square() * subspaces.scale[0].cpu().double()[:, None, :].square()).sum(-1)
        residual = subspaces.residual_scale[0].cpu().double()[:, None].square()
        scales = (along + (1 - basis.square().sum(-1)) * residual).sqrt().numpy()
    if density.base_scale_tril is not None:
        tril = density.base_scale_tril[0].cpu().double()
        covariances = (tril @ tril.transpose(1, 2)).numpy()
        scales = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2)).copy()
    return {
        "weights": log_weights.exp().cpu().numpy(),
        "base_means": means,
        "base_scales": scales,
        "base_covariances": covariances,
        "covariance_type": "diag" if density.base_scale_tril is None else "full",
        "subspace_dim": None if density.subspaces is None else density.flow_dim,
    }
