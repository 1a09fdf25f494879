"""The training loop's checkpointed state: what is written after an epoch and read back on resume.

A checkpoint holds the model, Adam's moments, the random generator, the loop's bookkeeping
(:class:`~flowmix.training.LoopState`), an algorithm's own tensors (an EM algorithm's assignments) and the early
stopping rule's; restored, the loop continues exactly as if it had not stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowmix.density import MixtureOfFlows
from flowmix.training.core import TrainConfig
from flowmix.training.stopping import HeldOutStopping


@dataclass
class LoopState:
    """The mini-batch loop's bookkeeping: what a checkpoint must hold besides the model and Adam."""

    epoch_losses: Tensor  # (E, R) on the device, filled epoch by epoch
    batch_mean_losses: Tensor  # (E, R) the same, each batch weighted equally
    alive: Tensor  # (R,) bool on the device: restarts whose loss stayed finite (as of the last sync)
    losses: np.ndarray  # (R, E) host copy, filled at each sync
    stopped: np.ndarray  # (R,) first non-finite epoch, -1 if none
    synced_upto: int = 0
    steps_since_sync: int = 0
    epochs_run: int = 0
    done: bool = False

    @classmethod
    def fresh(cls, n_epochs: int, n_restarts: int, device: torch.device) -> LoopState:
        """The state before the first epoch."""
        return cls(
            epoch_losses=torch.full((n_epochs, n_restarts), float("nan"), device=device),
            batch_mean_losses=torch.full((n_epochs, n_restarts), float("nan"), device=device),
            alive=torch.ones(n_restarts, dtype=torch.bool, device=device),
            losses=np.full((n_restarts, n_epochs), np.nan),
            stopped=np.full(n_restarts, -1),
        )

    def tensors(self) -> dict[str, Tensor]:
        """The arrays, as checkpoint tensors."""
        return {
            "loop.epoch_losses": self.epoch_losses,
            "loop.batch_mean_losses": self.batch_mean_losses,
            "loop.alive": self.alive,
            "loop.losses": torch.from_numpy(self.losses),
            "loop.stopped": torch.from_numpy(self.stopped.astype(np.int64)),
        }

    def counters(self) -> dict[str, Any]:
        """The counters, as a checkpoint's metadata."""
        return {
            "synced_upto": self.synced_upto,
            "steps_since_sync": self.steps_since_sync,
            "epochs_run": self.epochs_run,
            "done": self.done,
        }

    def restore(self, tensors: dict[str, Tensor], meta: dict[str, Any], device: torch.device) -> None:
        """Take the state ``tensors()`` and ``counters()`` wrote."""
        self.epoch_losses = tensors["loop.epoch_losses"].to(device)
        # Checkpoints written before the batch-mean losses were kept resume without them.
        self.batch_mean_losses = tensors.get(
            "loop.batch_mean_losses", torch.full_like(self.epoch_losses, float("nan"))
        ).to(device)
        self.alive = tensors["loop.alive"].to(device)
        self.losses = tensors["loop.losses"].numpy().copy()
        self.stopped = tensors["loop.stopped"].numpy().copy()
        for name in ("synced_upto", "steps_since_sync", "epochs_run", "done"):
            setattr(self, name, meta[name])

    def sync(self) -> np.ndarray:
        """Copy the unread epoch losses to the host and mark non-finite restarts.

        Returns the last epoch's losses of the restarts still finite (empty: none is left).
        """
        self.steps_since_sync = 0
        block = self.epoch_losses[self.synced_upto : self.epochs_run].T.cpu().numpy()
        self.losses[:, self.synced_upto : self.epochs_run] = block
        _mark_stopped(block, self.synced_upto, self.stopped)
        self.synced_upto = self.epochs_run
        self.alive = torch.as_tensor(self.stopped < 0, device=self.alive.device)
        return self.losses[self.stopped < 0, self.epochs_run - 1]


def _mark_stopped(block: np.ndarray, first_epoch: int, stopped: np.ndarray) -> None:
    """Record the first non-finite epoch of each restart that has not stopped yet."""
    for r in np.flatnonzero(stopped < 0):
        bad = np.flatnonzero(~np.isfinite(block[r]))
        if bad.size:
            stopped[r] = first_epoch + int(bad[0])


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    state = optimizer.state_dict()["state"]
    return {f"adam.{i}.{name}": value for i, entry in state.items() for name, value in entry.items()}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    saved = optimizer.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    saved["state"] = state
    optimizer.load_state_dict(saved)


def _rng_state(generator: torch.Generator | None) -> Tensor:
    return torch.get_rng_state() if generator is None else generator.get_state()


def _set_rng_state(generator: torch.Generator | None, state: Tensor) -> None:
    if generator is None:
        torch.set_rng_state(state)
    else:
        generator.set_state(state)


def write_checkpoint(
    config: TrainConfig,
    model: MixtureOfFlows,
    optimizer: torch.optim.Optimizer,
    loop: LoopState,
    stopper: HeldOutStopping | None,
    extra_state: dict[str, Tensor],
) -> None:
    """Write everything the loop needs to continue to ``config.checkpoint``, as phase ``config.phase``."""
    tensors = {f"model.{name}": t for name, t in model.state_dict().items() if t is not None}
    tensors.update(_optimizer_tensors(optimizer))
    tensors["rng"] = _rng_state(config.generator)
    tensors.update(loop.tensors())
    tensors.update({f"extra.{name}": t for name, t in extra_state.items()})
    if stopper is not None:
        tensors.update(stopper.tensors())
    config.checkpoint.save(config.phase, tensors, loop.counters())


def resume(
    config: TrainConfig,
    model: MixtureOfFlows,
    optimizer: torch.optim.Optimizer,
    loop: LoopState,
    stopper: HeldOutStopping | None,
    extra_state: dict[str, Tensor],
) -> bool:
    """Restore the loop from ``config.resume`` if it is a checkpoint of this phase; True if it was."""
    resumed = config.resume
    if resumed is None or resumed.phase != config.phase:
        return False
    tensors = resumed.tensors
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    _restore_optimizer(optimizer, tensors)
    _set_rng_state(config.generator, tensors["rng"])
    loop.restore(tensors, resumed.meta, loop.alive.device)
    for key, value in tensors.items():
        if key.startswith("extra."):
            extra_state[key[len("extra.") :]] = value.to(loop.alive.device)
    if stopper is not None:
        stopper.restore(tensors)
    return True
