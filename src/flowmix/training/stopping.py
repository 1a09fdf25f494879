"""The rules that stop restarts before ``n_epochs``, each keeping the parameters a stopped restart ends with.

:class:`~flowmix.training.HeldOutStopping` watches held-out points (scikit-learn's rule);
:class:`~flowmix.training.StablePartition` is hard EM's convergence. A rule takes a restart out
of the objective once it stops (``training``), reports when (``finished``) and puts the kept
parameters back at the end (``restore_kept``), so that a restart ends the same whichever
restarts train beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from flowmix.density import MixtureOfFlows
from flowmix.training.core import TrainConfig, mean_assigned_nll, mean_nll

# The share of the points an E-step may move while the partition still counts as unchanged
# (hard EM's convergence, ``TrainConfig.stable_e_steps``): one point in a thousand.
PARTITION_TOL = 1e-3
# Hard EM's other convergence: E-steps in a row whose share of moved points has not fallen below
# CHURN_DROP times the lowest share so far. On heavily overlapping clusters (10 digits) the
# boundary points flicker for good: 0.1-0.4% of them moved at every E-step for 40 epochs while
# the partition's ARI stayed within 0.001 (benchmarks/RESULTS.md).
CHURN_PATIENCE = 10
CHURN_DROP = 0.9


class StoppingRule(Protocol):
    """What the training loop asks of a rule that stops restarts early."""

    @property
    def finished(self) -> np.ndarray:
        """(R,) epochs each restart trained before it stopped; -1 while it trains."""
        ...

    def training(self, device: torch.device) -> Tensor:
        """(R,) bool: restarts still training."""
        ...

    def restore_kept(self) -> None:
        """Put each stopped restart's kept parameters back."""
        ...


def restart_views(model: MixtureOfFlows) -> dict[str, Tensor]:
    """Views of every stacked tensor of ``model`` with the restart as leading axis."""
    r, k = model.n_restarts, model.n_components
    views = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor is None or tensor.dim() == 0:
            continue
        if tensor.shape[0] == r * k:
            views[name] = tensor.data.view(r, k, *tensor.shape[1:])
        elif tensor.shape[0] == r and name == "logits":
            views[name] = tensor.data
    return views


class HeldOutStopping:
    """Per-restart early stopping on the validation points' mixture NLL, keeping each best epoch.

    A restart stops training once its validation NLL has not improved by ``tol`` for
    ``n_iter_no_change`` epochs (scikit-learn's rule); its parameters of the best epoch are copied
    aside whenever it improves and put back at the end.
    """

    def __init__(self, model: MixtureOfFlows, config: TrainConfig):
        self.model, self.validation = model, config.validation
        self.responsibilities = config.validation_responsibilities
        self.patience, self.tol = config.n_iter_no_change, config.tol
        n_restarts = model.n_restarts
        self.scores = np.full((n_restarts, config.n_epochs), np.nan)
        self.best_score = np.full(n_restarts, np.inf)
        self.best_epoch = np.full(n_restarts, -1)
        self.wait = np.zeros(n_restarts, dtype=np.int64)
        self.finished = np.full(n_restarts, -1)  # epochs a restart trained before it stopped, -1 if not
        self.best = {name: t.detach().clone() for name, t in restart_views(model).items()}

    def training(self, device: torch.device) -> Tensor:
        """(R,) bool: restarts still training."""
        return torch.as_tensor(self.finished < 0, device=device)

    @torch.no_grad()
    def after_epoch(self, epoch: int, alive: np.ndarray) -> None:
        """Score the validation points after ``epoch``: keep the improved restarts' parameters, stop the stale."""
        if self.responsibilities is None:
            score = mean_nll(self.model, self.validation)
        else:
            score = mean_assigned_nll(self.model, self.validation, self.responsibilities)
        self.scores[:, epoch] = score
        improved = (score < self.best_score - self.tol) & alive & (self.finished < 0)
        self.best_score = np.where(improved, score, self.best_score)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self.wait = np.where(improved, 0, self.wait + 1)
        if improved.any():
            keep = torch.as_tensor(improved, device=self.validation.device)
            for name, view in restart_views(self.model).items():
                self.best[name][keep] = view[keep]
        out_of_patience = (self.wait >= self.patience) & (self.finished < 0)
        self.finished = np.where(out_of_patience, epoch + 1, self.finished)

    def restore_kept(self) -> None:
        """Put each restart's best-epoch parameters back (restarts that never improved keep theirs)."""
        keep = torch.as_tensor(self.best_epoch >= 0, device=self.validation.device)
        for name, view in restart_views(self.model).items():
            view[keep] = self.best[name][keep]

    def tensors(self) -> dict[str, Tensor]:
        """The rule's state, as checkpoint tensors."""
        out = {f"best.{name}": t for name, t in self.best.items()}
        for name in ("scores", "best_score", "best_epoch", "wait", "finished"):
            out[f"stop.{name}"] = torch.from_numpy(np.asarray(getattr(self, name)))
        return out

    def restore(self, tensors: dict[str, Tensor]) -> None:
        """Take the state ``tensors()`` wrote."""
        for name in self.best:
            self.best[name].copy_(tensors[f"best.{name}"])
        for name in ("scores", "best_score", "best_epoch", "wait", "finished"):
            setattr(self, name, tensors[f"stop.{name}"].numpy().copy())


class StablePartition:
    """Hard EM's convergence, per restart: the partition has held for ``patience`` E-steps in a row.

    Classification EM has converged when an E-step moves no point; with flows the M-step is a
    few Adam steps, so boundary points may still flicker, and an E-step that moves at most
    ``PARTITION_TOL`` of the points counts as unchanged. Where more points than that flicker
    for good (clusters that overlap), the partition has converged once ``CHURN_PATIENCE``
    E-steps in a row have not brought the share of moved points below ``CHURN_DROP`` times its
    lowest so far. A converged restart leaves the objective;
    its parameters of that moment (those its last E-step assessed) are put back at the end, so a
    restart ends the same whichever restarts train beside it. All of it lives in the E-step's
    ``state``, which is checkpointed with the loop.
    """

    def __init__(self, model: MixtureOfFlows, patience: int, state: dict[str, Tensor]):
        self.model, self.patience, self.state = model, patience, state
        device = model.logits.device
        state["partition.stable"] = torch.zeros(model.n_restarts, dtype=torch.int64, device=device)
        state["partition.finished"] = torch.full((model.n_restarts,), -1, dtype=torch.int64, device=device)
        state["partition.lowest"] = torch.ones(model.n_restarts, dtype=torch.float64, device=device)
        state["partition.without_drop"] = torch.zeros(model.n_restarts, dtype=torch.int64, device=device)

    @property
    def finished(self) -> np.ndarray:
        """(R,) epochs each restart trained before its partition held; -1 while it has not."""
        return self.state["partition.finished"].cpu().numpy()

    def training(self, device: torch.device) -> Tensor:
        """(R,) bool: restarts still training."""
        return (self.state["partition.finished"] < 0).to(device)

    @torch.no_grad()
    def update(self, epoch: int, labels: Tensor) -> None:
        """Count the E-step's (R, N) ``labels`` against the previous E-step's, before ``epoch`` trains."""
        previous = self.state.get("partition.labels")
        self.state["partition.labels"] = labels
        if previous is None:
            return
        moved = (labels != previous).double().mean(-1)
        stable = torch.where(moved <= PARTITION_TOL, self.state["partition.stable"] + 1, 0)
        dropped = moved < CHURN_DROP * self.state["partition.lowest"]
        without_drop = torch.where(dropped, 0, self.state["partition.without_drop"] + 1)
        self.state["partition.lowest"] = torch.minimum(self.state["partition.lowest"], moved)
        finished = self.state["partition.finished"]
        newly = ((stable >= self.patience) | (without_drop >= CHURN_PATIENCE)) & (finished < 0)
        self.state["partition.stable"] = stable
        self.state["partition.without_drop"] = without_drop
        if bool(newly.any()):
            self.state["partition.finished"] = torch.where(newly, epoch, finished)
            for name, view in restart_views(self.model).items():
                kept = self.state.setdefault(f"partition.kept.{name}", view.clone())
                kept[newly] = view[newly]

    def restore_kept(self) -> None:
        """Put each converged restart's parameters of its convergence back."""
        converged = self.state["partition.finished"] >= 0
        for name, view in restart_views(self.model).items():
            if f"partition.kept.{name}" in self.state:
                view[converged] = self.state[f"partition.kept.{name}"][converged]


def all_converged(finished: np.ndarray, stopped: np.ndarray, group_max: Callable[[int], int] | None) -> bool:
    """Whether every restart has converged or failed; in a restart-parallel group, on every rank."""
    done = bool(((finished >= 0) | (stopped >= 0)).all())
    if group_max is not None:  # the ranks' steps meet in collectives: they stop together
        done = group_max(0 if done else 1) == 0
    return done


def epochs_trained(rules: Sequence[StoppingRule], epochs_run: int, n_restarts: int) -> np.ndarray:
    """(R,) epochs each restart trained: ``epochs_run``, or fewer where a rule stopped it."""
    trained = np.full(n_restarts, epochs_run)
    for rule in rules:
        trained = np.where(rule.finished >= 0, np.minimum(trained, rule.finished), trained)
    return trained
