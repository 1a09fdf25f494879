"""The optimisation loop: mini-batch maximum likelihood for all restarts at once.

Restarts have disjoint parameters, so minimising the *sum* of their mean NLLs with one Adam gives
each restart exactly the updates it would get alone (Adam is element-wise). All restarts see the
same mini-batch order, which lets the first network layer be one GEMM over all flows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from flowmix._memory import reuse_freed_memory
from flowmix.density import MixtureOfFlows


@dataclass
class TrainResult:
    """What training produced.

    Attributes:
        losses: (R, E) mean training NLL per restart and epoch; NaN after a restart stopped.
        stopped_epoch: (R,) epoch at which a restart's loss became non-finite, -1 if never.
        n_epochs_run: epochs run before the loop ended (all restarts stopped ends it early).
    """

    losses: np.ndarray
    stopped_epoch: np.ndarray
    n_epochs_run: int


def make_optimizer(model: MixtureOfFlows, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with TensorFlow's defaults (epsilon 1e-7), as the paper.

    The fused kernel updates each parameter in one pass; on CPU it measured over 10x faster than
    the default multi-tensor Adam on the image models' 24M parameters.
    """
    devices = {p.device.type for p in model.parameters()}
    fused = devices <= {"cpu", "cuda"}
    return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-7, fused=fused)


@reuse_freed_memory()
def train(
    model: MixtureOfFlows,
    columns: Tensor,
    *,
    n_epochs: int,
    batch_size: int,
    learning_rate: float = 1e-3,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    verbose: bool = False,
    sync_every: int = 25,
    callback: Callable[[int, MixtureOfFlows], None] | None = None,
    callback_every: int = 50,
) -> TrainResult:
    """Fit ``model`` to the points ``columns`` (D, N) by Adam on the mean negative log-likelihood.

    Points are columns, the layout of every layer (see flowmix.nn), so the data are held once.

    Losses stay on the device and are read back every ``sync_every`` steps (and at the end),
    so the hot loop never waits on the host; a restart whose loss turned NaN/inf is then masked
    out of the objective and reported in ``stopped_epoch``. ``callback(epochs_done, model)`` is
    called before the first epoch and after every ``callback_every`` epochs.
    """
    n_samples = columns.shape[1]
    n_restarts = model.n_restarts
    device = columns.device
    optimizer = make_optimizer(model, learning_rate)
    epoch_losses = torch.full((n_epochs, n_restarts), float("nan"), device=device)
    alive = torch.ones(n_restarts, dtype=torch.bool, device=device)
    stopped = np.full(n_restarts, -1)
    losses = np.full((n_restarts, n_epochs), np.nan)
    synced_upto = 0
    steps_since_sync = 0
    epochs_run = 0
    bar = tqdm(total=n_epochs, desc="fit", unit="epoch", disable=not verbose, leave=False)
    if callback is not None:
        callback(0, model)
    # A full batch is permutation invariant: shuffling it would only cost a copy.
    reorder = shuffle and batch_size < n_samples
    for epoch in range(n_epochs):
        if reorder:
            order = torch.randperm(n_samples, generator=generator).to(device)
        total = torch.zeros(n_restarts, device=device)
        for start in range(0, n_samples, batch_size):
            if reorder:
                batch = columns[:, order[start : start + batch_size]]
            else:
                batch = columns[:, start : start + batch_size]
            nll = -model.log_prob_columns(batch).mean(dim=-1)
            objective = torch.where(alive, nll, torch.zeros_like(nll)).sum()
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total += nll.detach() * batch.shape[1]
            steps_since_sync += 1
        epoch_losses[epoch] = total / n_samples
        epochs_run = epoch + 1
        if callback is not None and (epochs_run % callback_every == 0 or epochs_run == n_epochs):
            callback(epochs_run, model)
        if steps_since_sync >= sync_every or epoch == n_epochs - 1:
            steps_since_sync = 0
            block = epoch_losses[synced_upto:epochs_run].T.cpu().numpy()
            losses[:, synced_upto:epochs_run] = block
            _mark_stopped(block, synced_upto, stopped)
            synced_upto = epochs_run
            alive = torch.as_tensor(stopped < 0, device=device)
            bar.update(epochs_run - bar.n)
            finite = losses[stopped < 0, epochs_run - 1]
            if finite.size:
                bar.set_postfix(loss=f"{finite.min():.4f}", alive=int(finite.size))
            else:
                break
    bar.close()
    for r in np.flatnonzero(stopped >= 0):
        losses[r, stopped[r] :] = np.nan
    return TrainResult(losses=losses[:, :epochs_run], stopped_epoch=stopped, n_epochs_run=epochs_run)


def _mark_stopped(block: np.ndarray, first_epoch: int, stopped: np.ndarray) -> None:
    """Record the first non-finite epoch of each restart that has not stopped yet."""
    for r in np.flatnonzero(stopped < 0):
        bad = np.flatnonzero(~np.isfinite(block[r]))
        if bad.size:
            stopped[r] = first_epoch + int(bad[0])
