"""The one mini-batch loop every training algorithm runs: :func:`minimise`.

It owns the optimiser, the NaN handling, the progress, the callback, the stopping rules and the
checkpoints; an algorithm is a per-batch objective (plus whatever it updates between epochs).

Restarts have disjoint parameters, so minimising the *sum* of their objectives with one Adam gives
each restart exactly the updates it would get alone (Adam is element-wise). All restarts see the
same mini-batch order, which lets the first network layer be one GEMM over all flows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from flowmix._denormals import flush_denormals
from flowmix._memory import reuse_freed_memory
from flowmix.batch_order import epoch_order, per_restart_batch, per_restart_orders
from flowmix.density import MixtureOfFlows
from flowmix.dequantization import Jitter
from flowmix.progress import Progress
from flowmix.training.core import BatchObjective, DataParallelGroup, TrainConfig, TrainResult
from flowmix.training.state import LoopState, resume, write_checkpoint
from flowmix.training.stopping import (
    HeldOutStopping,
    StablePartition,
    StoppingRule,
    all_converged,
    epochs_trained,
)

StepLosses = tuple[Tensor, Tensor, int]
"""One step's (R,) mean losses, the weighted sum to backpropagate, and the points it saw here."""


def make_optimizer(model: MixtureOfFlows, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with TensorFlow's defaults (epsilon 1e-7), as the paper.

    torch's fused kernel (one pass per parameter) on CPU and CUDA, the default implementation
    elsewhere; the two take the same steps up to rounding.
    """
    devices = {p.device.type for p in model.parameters()}
    fused = devices <= {"cpu", "cuda"}
    return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-7, fused=fused)


@reuse_freed_memory()
@flush_denormals()
def minimise(
    model: MixtureOfFlows,
    columns: Tensor,
    objective: BatchObjective,
    config: TrainConfig,
    sync_every: int = 25,
    epoch_start: Callable[[int], None] | None = None,
    extra_state: dict[str, Tensor] | None = None,
    partition: StablePartition | None = None,
) -> TrainResult:
    """Minimise ``objective`` over mini-batches of the points ``columns`` (D, N) with Adam.

    Points are columns, the layout of every layer (see flowmix.nn), so the data are held once.
    ``epoch_start(epoch)``, if given, runs before each epoch (an EM algorithm's E-step); the
    tensors it keeps in ``extra_state`` are checkpointed with the loop and restored on resume.

    Losses stay on the device and are read back every ``sync_every`` steps (and at the end),
    so the hot loop never waits on the host; a restart whose loss turned NaN/inf is then masked
    out of the objective and reported in ``stopped_epoch``. With ``config.validation``, restarts
    stop early (see :class:`~flowmix.training.HeldOutStopping`); with ``partition``
    (updated by ``epoch_start``), once their partition holds (see
    :class:`~flowmix.training.StablePartition`). With ``config.checkpoint``, the whole
    loop state is written after every due epoch and at the end, and ``config.resume`` continues
    from it exactly.
    """
    run = _Minimiser(model, columns, objective, config, sync_every, epoch_start, partition, extra_state)
    try:
        for epoch in range(run.loop.epochs_run, config.n_epochs):
            if not run.begin_epoch(epoch):
                break
            run.train_epoch(epoch)
            run.end_epoch(epoch)
    finally:
        run.progress.close()
    return run.result()


class _Minimiser:
    """One run of :func:`minimise`: its optimiser, bookkeeping, stopping rules, progress and batches."""

    def __init__(
        self,
        model: MixtureOfFlows,
        columns: Tensor,
        objective: BatchObjective,
        config: TrainConfig,
        sync_every: int,
        epoch_start: Callable[[int], None] | None,
        partition: StablePartition | None,
        extra_state: dict[str, Tensor] | None,
    ):
        self.model, self.columns, self.config = model, columns, config
        self.sync_every, self.epoch_start, self.partition = sync_every, epoch_start, partition
        self.optimizer = make_optimizer(model, config.learning_rate)
        self.loop = LoopState.fresh(config.n_epochs, model.n_restarts, columns.device)
        self.stopper = HeldOutStopping(model, config) if config.validation is not None else None
        # The rules that stop restarts early, each keeping the parameters a stopped restart ends with.
        self.rules: list[StoppingRule] = [rule for rule in (self.stopper, partition) if rule is not None]
        self.extra_state = {} if extra_state is None else extra_state
        resume(config, model, self.optimizer, self.loop, self.stopper, self.extra_state)
        self.progress = Progress(
            config.n_epochs, config.phase, unit="epoch", verbose=config.verbose, initial=self.loop.epochs_run,
            leave=False,
        )  # fmt: skip
        if config.callback is not None:
            config.callback(self.loop.epochs_run, model)
        self.batches = _Batches(columns, model.n_restarts, config)
        # After the callback: wrapping for data parallel copies rank 0's parameters to every rank.
        self.steps = _steps(model, objective, config.data_parallel, self.batches.per_restart)

    def begin_epoch(self, epoch: int) -> bool:
        """Run the epoch's E-step, if any; False when the loop ends before ``epoch`` trains."""
        if self.loop.done:
            return False
        if self.epoch_start is not None:
            self.epoch_start(epoch)
        partition, loop = self.partition, self.loop
        if partition is not None and all_converged(partition.finished, loop.stopped, self.config.group_max):
            loop.done = True
            if loop.synced_upto < loop.epochs_run:  # the losses still on the device
                self.sync()
            return False
        return True

    def train_epoch(self, epoch: int) -> None:
        """One Adam step per mini-batch; the epoch's mean losses (both weightings) stay on the device."""
        loop, n_restarts, device = self.loop, self.model.n_restarts, self.columns.device
        order, points = self.batches.epoch()
        mask = loop.alive
        for rule in self.rules:
            mask = mask & rule.training(device)
        total = torch.zeros(n_restarts, device=device)
        batch_total = torch.zeros(n_restarts, device=device)
        n_batches = 0
        for start in self.batches.starts:
            loss, summed, n_batch = self.steps.losses(points, self.batches.index(order, start), mask)
            self.optimizer.zero_grad(set_to_none=True)
            summed.backward()
            self.optimizer.step()
            total += loss.detach() * n_batch
            batch_total += loss.detach() * (n_batch / self.batches.size_at(start))
            n_batches += 1
            loop.steps_since_sync += 1
        self.steps.reduce(total)
        self.steps.reduce(batch_total)  # the ranks' shares of each global batch mean
        loop.epoch_losses[epoch] = total / self.batches.n_samples
        loop.batch_mean_losses[epoch] = batch_total / n_batches
        loop.epochs_run = epoch + 1

    def end_epoch(self, epoch: int) -> None:
        """The callback, the host copy of the losses, early stopping and the checkpoint, when due."""
        loop, config, stopper = self.loop, self.config, self.stopper
        n_epochs, callback, epochs_run = config.n_epochs, config.callback, loop.epochs_run
        if callback is not None and (epochs_run % config.callback_every == 0 or epochs_run == n_epochs):
            callback(epochs_run, self.model)
        if loop.steps_since_sync >= self.sync_every or epoch == n_epochs - 1 or stopper is not None:
            loop.done = not self.sync() or loop.done
        if stopper is not None:
            stopper.after_epoch(epoch, loop.stopped < 0)
            loop.done = loop.done or bool(((stopper.finished >= 0) | (loop.stopped >= 0)).all())
        checkpoint = config.checkpoint
        if checkpoint is not None and (loop.done or epochs_run == n_epochs or checkpoint.due(epochs_run)):
            write_checkpoint(config, self.model, self.optimizer, loop, stopper, self.extra_state)

    def sync(self) -> bool:
        """Read the losses back (``LoopState.sync``) and show them; False if no restart is left."""
        finite = self.loop.sync()
        self.progress.update(self.loop.epochs_run - self.progress.n)
        if finite.size:
            self.progress.set_postfix(loss=f"{finite.min():.4f}", alive=int(finite.size))
        return bool(finite.size)

    def result(self) -> TrainResult:
        """The loop's record, each stopped restart's kept parameters put back."""
        return _result(self.loop, self.stopper, self.rules, self.model)


class _Batches:
    """The mini-batches of every epoch: their order (shared, per restart or none) and their points."""

    def __init__(self, columns: Tensor, n_restarts: int, config: TrainConfig):
        self.columns, self.n_restarts, self.config = columns, n_restarts, config
        self.n_samples, self.batch_size = columns.shape[1], config.batch_size
        # A full batch is permutation invariant: shuffling it would only cost a copy.
        self.reorder = config.shuffle and config.batch_size < self.n_samples
        self.per_restart = self.reorder and config.batch_order == "per-restart"
        widths = config.dequantization
        self.jitter = None if widths is None else Jitter(columns, widths, config.generator)
        self.starts = range(0, self.n_samples, self.batch_size)

    def epoch(self) -> tuple[Tensor | None, Tensor]:
        """This epoch's order of the points (None: in place), and the points its steps train on.

        The order is drawn before the dequantisation noise: a checkpointed generator replays both.
        """
        config, n, order = self.config, self.n_samples, None
        if self.per_restart:
            order = per_restart_orders(
                n, self.n_restarts, config.generator, config.shuffle_buffer, config.restart_offset
            ).to(self.columns.device)
        elif self.reorder:
            order = epoch_order(n, config.generator, config.shuffle_buffer).to(self.columns.device)
        points = self.columns if self.jitter is None else self.jitter.draw()
        return order, points

    def index(self, order: Tensor | None, start: int) -> Tensor | slice:
        """The batch at ``start``: positions in ``order``, or a slice of the points in place."""
        if order is None:
            return slice(start, start + self.batch_size)
        return order[..., start : start + self.batch_size]

    def size_at(self, start: int) -> int:
        """The number of points of the global batch at ``start`` (the last one may be short)."""
        return min(self.batch_size, self.n_samples - start)


class _OneProcess:
    """Every batch's step on this process."""

    def __init__(self, model: MixtureOfFlows, objective: BatchObjective, per_restart: bool):
        self.model, self.objective, self.per_restart = model, objective, per_restart

    def losses(self, points: Tensor, index: Tensor | slice, mask: Tensor) -> StepLosses:
        if self.per_restart:  # (R * K, D, n): each restart's flows see its own batch
            batch = per_restart_batch(points, index, self.model.n_components)
        else:
            batch = points[:, index]
        loss = self.objective(self.model, batch, index)
        summed = torch.where(mask, loss, torch.zeros_like(loss)).sum()
        return loss, summed, batch.shape[-1]

    def reduce(self, tensor: Tensor) -> None:
        """Nothing to add: this process saw every point."""


class _SharedAmongRanks:
    """Every global batch's step shared among the ranks of a data-parallel group."""

    def __init__(self, group: DataParallelGroup, model: MixtureOfFlows, objective: BatchObjective):
        self.group = group
        self.step_objective = group.wrap(model, objective)

    def losses(self, points: Tensor, index: Tensor | slice, mask: Tensor) -> StepLosses:
        """This rank's part of one global batch (local mean losses, weighted by its share).

        A rank whose share is empty (a last batch smaller than the group) still runs the step, on
        one point with weight 0, because the gradient reduction needs every rank.
        """
        n_points = points.shape[1]
        n_global = len(range(n_points)[index]) if isinstance(index, slice) else len(index)
        local = self.group.local(index, n_points)
        n_local = len(local)
        if n_local == 0:
            local = (torch.arange(n_points)[index] if isinstance(index, slice) else index)[:1]
        loss = self.step_objective(points[:, local], local)
        weight = self.group.weight(n_local, n_global)
        summed = torch.where(mask, loss * weight, torch.zeros_like(loss)).sum()
        return loss, summed, n_local

    def reduce(self, tensor: Tensor) -> None:
        """Add the other ranks' sums (in place)."""
        self.group.sum(tensor)


def _steps(
    model: MixtureOfFlows, objective: BatchObjective, group: DataParallelGroup | None, per_restart: bool
) -> _OneProcess | _SharedAmongRanks:
    """How each batch's step is taken: here, or shared among the ranks of a data-parallel ``group``."""
    if group is not None:
        return _SharedAmongRanks(group, model, objective)
    return _OneProcess(model, objective, per_restart)


def _finite_restarts(model: MixtureOfFlows) -> np.ndarray:
    """(R,) bool: restarts whose parameters are all finite (the last Adam step may overflow)."""
    r, k = model.n_restarts, model.n_components
    finite = torch.ones(r, dtype=torch.bool, device=model.logits.device)
    for name, param in model.named_parameters():
        if name == "logits":
            finite &= torch.isfinite(param).all(dim=-1)
        elif param.shape[0] == r * k:
            finite &= torch.isfinite(param.detach().reshape(r, -1)).all(dim=-1)
    return finite.cpu().numpy()


def _result(
    loop: LoopState, stopper: HeldOutStopping | None, rules: list[StoppingRule], model: MixtureOfFlows
) -> TrainResult:
    """The loop's record, each stopped restart's kept parameters put back (``rules`` stop restarts)."""
    epochs_run = loop.epochs_run
    losses, stopped = loop.losses.copy(), loop.stopped
    for rule in rules:
        rule.restore_kept()
    # A step after the last recorded loss can still overflow: such a restart stopped at that epoch.
    broken = ~_finite_restarts(model) & (stopped < 0)
    stopped[broken] = max(epochs_run - 1, 0)
    for r in np.flatnonzero(stopped >= 0):
        losses[r, stopped[r] :] = np.nan
    batch_mean = loop.batch_mean_losses[:epochs_run].T.cpu().numpy().astype(np.float64)
    batch_mean[~np.isfinite(losses[:, :epochs_run])] = np.nan  # stopped restarts, as in losses
    result = TrainResult(
        losses=losses[:, :epochs_run],
        stopped_epoch=stopped,
        n_epochs_run=epochs_run,
        batch_mean_losses=batch_mean,
    )
    if rules:
        trained = epochs_trained(rules, epochs_run, model.n_restarts)
        for r in range(len(trained)):
            result.losses[r, trained[r] :] = np.nan
            result.batch_mean_losses[r, trained[r] :] = np.nan
        result.epochs_trained = trained
    if stopper is not None:
        result.validation_losses = stopper.scores[:, :epochs_run].copy()
        result.best_epoch = stopper.best_epoch.copy()
    return result
