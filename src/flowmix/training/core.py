"""What every part of training shares: its settings, its result, the objectives and chunked evaluation.

The other modules of :mod:`flowmix.training` import from here and from nothing above them; the
data-parallel group is handed in by the caller (:class:`~flowmix.training.DataParallelGroup`), so training never
imports :mod:`flowmix.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from flowmix.batch_order import BATCH_ORDERS
from flowmix.checkpoint import FitCheckpoint, Resumed
from flowmix.density import MixtureOfFlows


@dataclass
class TrainResult:
    """What training produced.

    Attributes
    ----------
    losses : ndarray of shape (R, E)
        Mean training objective per restart and epoch (for maximum likelihood the NLL); NaN
        after a restart stopped.
    stopped_epoch : ndarray of shape (R,)
        Epoch at which a restart's loss became non-finite, -1 if never.
    n_epochs_run : int
        Epochs run before the loop ended (all restarts stopped ends it early).
    validation_losses : ndarray of shape (R, E) or None
        With early stopping: the mixture's mean NLL on the validation points after every epoch.
    best_epoch : ndarray of shape (R,) or None
        With early stopping: the epoch whose parameters each restart kept (-1: none improved).
    epochs_trained : ndarray of shape (R,) or None
        With early stopping or hard EM's convergence rule: epochs each restart trained before it
        stopped (its parameters are those of that moment, or of its best epoch).
    batch_mean_losses : ndarray of shape (R, E) or None
        The epoch losses as the unweighted mean of the epoch's batch losses (the paper's reference
        code's epoch loss; ``losses`` weights each batch by its size).
    """

    losses: np.ndarray
    stopped_epoch: np.ndarray
    n_epochs_run: int
    validation_losses: np.ndarray | None = None
    best_epoch: np.ndarray | None = None
    epochs_trained: np.ndarray | None = None
    batch_mean_losses: np.ndarray | None = None


BatchObjective = Callable[[MixtureOfFlows, Tensor, Tensor | slice], Tensor]
"""(density, batch columns (D, n), the batch's indices into the data) -> (R,) losses to minimise."""


class DataParallelGroup(Protocol):
    """What training needs to share its mini-batches among the ranks of a process group.

    :class:`flowmix.distributed.DataParallel` is one; the caller hands it in as
    ``TrainConfig.data_parallel``.
    """

    def local(self, index: Tensor | slice, n_points: int) -> Tensor:
        """This rank's share of a global batch: positions into the points."""
        ...

    def weight(self, n_local: int, n_global: int) -> float:
        """Factor of the local batch mean so that the ranks' average is the global batch mean."""
        ...

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over the ranks (in place, returned)."""
        ...

    def gather_points(self, compute: Callable[[Tensor], Tensor], columns: Tensor) -> Tensor:
        """``compute`` on every point (columns), each rank taking a shard: (..., N)."""
        ...

    def wrap(self, density: nn.Module, objective: BatchObjective) -> Callable[..., Tensor]:
        """``objective`` on ``density`` as a callable ``(batch, index)`` whose gradients the ranks average."""
        ...


@dataclass(kw_only=True)
class TrainConfig:
    """Settings every training algorithm takes (the estimator's parameters of the same names).

    The estimator's parameters have no default here: the estimator holds them, and a caller of
    the training functions says every one.

    ``callback(epochs_done, density)`` is called before the first epoch (or, when resuming, the
    first epoch this process runs) and after every ``callback_every`` epochs.
    """

    n_epochs: int
    batch_size: int
    learning_rate: float
    shuffle: bool
    generator: torch.Generator | None = None
    # Mini-batch orders (flowmix.batch_order): one shared by all restarts or one per restart
    # (restart indices counted from restart_offset), from a full permutation or a shuffle buffer.
    batch_order: str
    shuffle_buffer: int | None
    restart_offset: int = 0
    verbose: bool = False
    callback: Callable[[int, MixtureOfFlows], None] | None = None
    callback_every: int
    # Early stopping: restarts stop once the mixture NLL of these points (D, M) stops improving, or,
    # with validation_responsibilities (R, K, M), their NLL under the components they are assigned to.
    validation: Tensor | None = None
    validation_responsibilities: Tensor | None = None
    n_iter_no_change: int
    tol: float
    # Hard EM's convergence: a restart stops once this many E-steps in a row have each moved at
    # most PARTITION_TOL of the points (None: every restart trains all n_epochs).
    stable_e_steps: int | None
    # Dequantisation (flowmix.dequantization): each feature's lattice step in the units of the
    # points (0: continuous); training steps see fresh uniform noise of that width every epoch.
    dequantization: np.ndarray | None = None
    # Checkpoints: where to write them, which phase of the fit this is, and one to continue from.
    checkpoint: FitCheckpoint | None = None
    phase: str = "train"
    resume: Resumed | None = None
    # Data parallel across the ranks of a process group (flowmix.distributed.DataParallel), or None.
    data_parallel: DataParallelGroup | None = None
    # Restart-parallel: the largest of an integer over the ranks (flowmix.distributed.group_max), so
    # that every rank pads its per-flow batches to the width one process would use.
    group_max: Callable[[int], int] | None = None

    def __post_init__(self) -> None:
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(f"batch_order must be one of {list(BATCH_ORDERS)}, got {self.batch_order!r}.")


def negative_log_likelihood(density: MixtureOfFlows, batch: Tensor, index: Tensor | slice) -> Tensor:
    """The mixture's mean NLL on the batch, per restart: the paper's objective."""
    return -density.log_prob_columns(batch).mean(dim=-1)


def m_step_objective(
    responsibilities: Callable[[], Tensor], group_max: Callable[[int], int] | None = None
) -> BatchObjective:
    """``-sum_k r_nk log flow_k(x_n)`` on a batch, averaged, per restart; r (R, K, N) read at each call."""

    def objective(density: MixtureOfFlows, batch: Tensor, index: Tensor | slice) -> Tensor:
        if isinstance(index, Tensor) and index.ndim != 1:
            raise ValueError(
                "the EM and pretraining objectives need one batch order for all restarts (batch_order='shared')."
            )
        weights = responsibilities()[:, :, index]
        n_restarts, n_components, n_batch = weights.shape
        flat = weights.reshape(n_restarts * n_components, n_batch)
        member = flat > 0
        counts = member.sum(1)
        # One host read per step. A multiple of 16: the CPU's vectorised kernels then round each
        # flow's sums alike whatever the other flows of the stack, so restart-parallel fits stay exact.
        width = -(-max(1, int(counts.max())) // 16) * 16
        if group_max is not None:
            width = group_max(width)
        if 4 * width > 3 * n_batch:
            # Most flows are responsible for most points (soft responsibilities): one shared pass.
            return -(weights * density.component_log_prob_columns(batch)).sum(1).mean(-1)
        # Each flow sees only the points it is responsible for, the others' weight being exactly 0:
        # the same objective at 1/K of the work when hard assignments split the batch K ways.
        position = torch.argsort((~member).to(torch.uint8), dim=1, stable=True)[:, :width]
        valid = torch.arange(width, device=batch.device)[None] < counts[:, None]
        own = batch[:, position].permute(1, 0, 2).contiguous()  # (S, D, width)
        log_prob = density.component_log_prob_columns(own).reshape(flat.shape[0], width)
        terms = torch.where(valid, flat.gather(1, position) * log_prob, torch.zeros_like(log_prob))
        return -terms.sum(1).view(n_restarts, n_components).sum(1) / n_batch

    return objective


# Posteriors below this are set to 0 in soft EM: a flow then trains only on the points it has a
# share of, instead of on every point (soft EM costs about what hard EM does on separated clusters).
POSTERIOR_FLOOR = 1e-3


def truncate_posteriors(responsibilities: Tensor) -> Tensor:
    """Responsibilities (R, K, N) with the shares below ``POSTERIOR_FLOOR`` set to 0, renormalised."""
    largest = responsibilities == responsibilities.amax(1, keepdim=True)  # never all of a point's shares
    kept = torch.where((responsibilities >= POSTERIOR_FLOOR) | largest, responsibilities, 0.0)
    return kept / kept.sum(1, keepdim=True)


@torch.no_grad()
def joint_log_prob_in_chunks(density: MixtureOfFlows, columns: Tensor) -> Tensor:
    """log pi_rk + log flow_rk(x_n) for every point: (R, K, N), in chunks that bound memory."""
    chunk = max(1, density.points_per_chunk() // density.n_restarts)
    parts = [
        density.joint_log_prob_columns(columns[:, s : s + chunk]) for s in range(0, columns.shape[1], chunk)
    ]
    return torch.cat(parts, dim=-1)


def restart_labels(density: MixtureOfFlows, columns: Tensor) -> np.ndarray:
    """Every restart's partition of the points (D, N): (R, N), the cluster argmax_k log pi_rk + log flow_rk(x).

    The one place a fit's restarts are turned into partitions (selection rules, the paper's
    runner); it computes in the density's own dtype, in chunks that bound memory.
    """
    with torch.no_grad():
        return joint_log_prob_in_chunks(density, columns).argmax(1).cpu().numpy()


def mean_nll(density: MixtureOfFlows, columns: Tensor) -> np.ndarray:
    """The mixture's mean negative log-likelihood of the points (D, N), per restart, in float64."""
    joint = joint_log_prob_in_chunks(density, columns)
    return (-torch.logsumexp(joint.double(), dim=1).mean(-1)).cpu().numpy()


def mean_assigned_nll(density: MixtureOfFlows, columns: Tensor, responsibilities: Tensor) -> np.ndarray:
    """``-sum_k r_nk log flow_k(x_n)`` averaged over the points (D, N), per restart, in float64.

    The M-step objective on held-out points: how well each component models the points assigned
    to it, whatever the others do (pretraining's early-stopping score).
    """
    joint = joint_log_prob_in_chunks(density, columns).double()
    component = joint - density.log_weights().detach().double()[:, :, None]
    return (-(responsibilities.double() * component).sum(1).mean(-1)).cpu().numpy()
