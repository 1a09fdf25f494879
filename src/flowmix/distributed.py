"""Fits across processes with torch.distributed (launched by torchrun): restarts or data split over ranks.

Two ways to share one fit among the ``world_size`` processes of a process group, chosen with
``FlowMixture(distributed=...)``; every rank calls ``fit`` with the same data and settings.

``"restarts"``
    The ``n_init`` restarts are split into contiguous blocks, one per rank. Every rank computes the
    same start (it is deterministic for a seed) and trains only its block; restarts never exchange
    gradients. The selection scores and losses are gathered, the best restart is kept, and its owner
    broadcasts its parameters. Restarts are independent on the stack axis, so the result equals a
    single process's.
``"data"``
    Data parallel with :class:`torch.nn.parallel.DistributedDataParallel`: every global mini-batch
    (drawn from the shared, seeded order) is split across the ranks; DDP averages the gradients, and
    each rank's loss is weighted by its share of the batch so that the average is the gradient of
    the global batch mean. E-steps are computed on one shard of the points per rank and gathered.
    Equal to a single process within float tolerance (sums are reduced in another order).

The process group is the caller's (``torch.distributed.init_process_group``); the command line
initialises it from torchrun's environment (:func:`init_from_environment`) and leaves it with
:func:`leave_group` once the fit is done.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from flowmix.selection import select
from flowmix.training.core import TrainResult

MODES = ("restarts", "data")


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_environment(device: str = "cpu") -> bool:
    """Join the process group torchrun describes in the environment; False when not under torchrun.

    The backend is NCCL for CUDA devices and gloo otherwise.
    """
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return True


def leave_group() -> None:
    """Wait for every rank, then destroy the default process group (nothing without one).

    A process that exits with its gloo group alive can abort in the group's teardown ("terminate
    called without an active exception", exit code -6) even though its work is done.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def require_group(mode: str) -> tuple[int, int]:
    """(rank, world size) for ``distributed=mode``, or a ValueError that says how to start the group."""
    if mode not in MODES:
        raise ValueError(f"distributed must be None or one of {list(MODES)}, got {mode!r}.")
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            f"distributed={mode!r} needs a torch.distributed process group: launch with torchrun "
            "(e.g. `torchrun --nproc-per-node 2 script.py`) and call "
            "torch.distributed.init_process_group() before fit, or use distributed=None."
        )
    return dist.get_rank(), dist.get_world_size()


def restart_block(n_init: int, rank: int, world_size: int) -> np.ndarray:
    """The restarts rank ``rank`` trains: a contiguous block, the blocks as equal as possible.

    Examples
    --------
    >>> [restart_block(5, r, 2).tolist() for r in range(2)]
    [[0, 1, 2], [3, 4]]
    """
    if n_init < world_size:
        raise ValueError(
            f"distributed='restarts' splits n_init={n_init} restarts over {world_size} processes; use "
            f"n_init >= {world_size}, fewer processes, or distributed='data'."
        )
    return np.array_split(np.arange(n_init), world_size)[rank]


def gather_rows(local: np.ndarray, world_size: int) -> np.ndarray:
    """Concatenate every rank's rows (rank order); blocks may differ in their number of rows."""
    pieces: list[np.ndarray | None] = [None] * world_size
    dist.all_gather_object(pieces, np.asarray(local))
    return np.concatenate(pieces, axis=0)


def broadcast_module(module: nn.Module, source: int) -> None:
    """Copy every parameter and buffer of ``module`` from rank ``source`` to all ranks (same shapes)."""
    for tensor in module.state_dict().values():
        if tensor is not None:
            dist.broadcast(tensor, src=source)


def group_max(value: int) -> int:
    """The largest ``value`` over the ranks of the process group."""
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


@dataclass
class DataParallel:
    """What the training loop needs to split its mini-batches across the ranks of the group.

    The caller hands it to training (``TrainConfig.data_parallel``); it is a
    :class:`flowmix.training.DataParallelGroup`.
    """

    rank: int
    world_size: int

    def local(self, index: Tensor | slice, n_points: int) -> Tensor:
        """This rank's share of a global batch (every ``world_size``-th position from ``rank``)."""
        if isinstance(index, slice):
            index = torch.arange(n_points)[index]
        return index[self.rank :: self.world_size]

    def weight(self, n_local: int, n_global: int) -> float:
        """Factor of the local batch mean so that DDP's average is the global batch mean."""
        return n_local * self.world_size / n_global

    def sum(self, tensor: Tensor) -> Tensor:
        """All-reduced sum of ``tensor`` (in place, returned)."""
        dist.all_reduce(tensor)
        return tensor

    def gather_points(self, compute: Callable[[Tensor], Tensor], columns: Tensor) -> Tensor:
        """``compute`` on every point (columns), each rank taking one contiguous shard: (..., N)."""
        bounds = np.linspace(0, columns.shape[1], self.world_size + 1).astype(int)
        mine = compute(columns[:, bounds[self.rank] : bounds[self.rank + 1]])
        width = int(np.max(np.diff(bounds)))
        padded = torch.zeros(*mine.shape[:-1], width, dtype=mine.dtype, device=mine.device)
        padded[..., : mine.shape[-1]] = mine
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded)
        sizes = np.diff(bounds)
        return torch.cat([piece[..., :size] for piece, size in zip(pieces, sizes, strict=True)], dim=-1)

    def wrap(self, density: nn.Module, objective: Callable[..., Tensor]) -> nn.Module:
        """``objective`` on ``density`` as a module ``(batch, index)`` whose gradients DDP averages."""
        return wrap_ddp(density, objective)


class ObjectiveModule(nn.Module):
    """A batch objective as a module, so that DistributedDataParallel can hook its backward."""

    def __init__(self, density: nn.Module, objective: Callable[..., Tensor]):
        super().__init__()
        self.density = density
        self.objective = objective

    def forward(self, batch: Tensor, index: Tensor | slice) -> Tensor:
        return self.objective(self.density, batch, index)


def wrap_ddp(density: nn.Module, objective: Callable[..., Tensor]) -> nn.Module:
    """``objective`` wrapped in DistributedDataParallel over ``density``'s parameters.

    ``find_unused_parameters``: the EM algorithms' objective leaves the mixture weights out (they
    are set in closed form). Buffers are constant, so they are not broadcast at every step.
    """
    from torch.nn.parallel import DistributedDataParallel

    device = next(density.parameters()).device
    with warnings.catch_warnings():
        # Newer torch renames broadcast_buffers; the old name still means what is wanted here.
        warnings.simplefilter("ignore", FutureWarning)
        return DistributedDataParallel(
            ObjectiveModule(density, objective),
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,
            find_unused_parameters=True,
        )


def gather_result(result: TrainResult, n_epochs: int, world_size: int) -> TrainResult:
    """Every rank's :class:`~flowmix.training.TrainResult` of its restart block, as one of all restarts."""

    def epochs_padded(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        padded = np.full((array.shape[0], n_epochs), np.nan)
        padded[:, : array.shape[1]] = array
        return gather_rows(padded, world_size)

    def rows(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else gather_rows(array, world_size)

    n_run = int(gather_rows(np.array([result.n_epochs_run]), world_size).max())
    validation = epochs_padded(result.validation_losses)
    batch_mean = epochs_padded(result.batch_mean_losses)
    return TrainResult(
        losses=epochs_padded(result.losses)[:, :n_run],
        stopped_epoch=rows(result.stopped_epoch),
        n_epochs_run=n_run,
        validation_losses=None if validation is None else validation[:, :n_run],
        best_epoch=rows(result.best_epoch),
        epochs_trained=rows(result.epochs_trained),
        batch_mean_losses=None if batch_mean is None else batch_mean[:, :n_run],
    )


class Distribution:
    """How a fit's work is shared among processes: the strategy the trainer asks (here: not at all).

    :func:`distribution_for` gives the strategy of a ``distributed`` setting. The trainer calls
    the same methods whatever the strategy, so the training code has no branch per mode.
    """

    rank, world_size = 0, 1

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on."""
        return device

    def block(self, n_init: int) -> np.ndarray | None:
        """The restarts this process trains, or None for all of them."""
        return None

    def data_parallel(self) -> DataParallel | None:
        """What splits mini-batches across processes, or None."""
        return None

    def group_max(self) -> Callable[[int], int] | None:
        """The reduction that makes every process stop at the same epoch, or None."""
        return None

    def gather(self, result: TrainResult, n_epochs: int) -> TrainResult:
        """The record of every restart, from this process's own."""
        return result

    def keep(
        self,
        selection: str,
        result: TrainResult,
        density: nn.Module,
        columns: Tensor,
        validation: Tensor | None,
    ) -> tuple[int, nn.Module, np.ndarray]:
        """(the kept restart's index among all, its density, every restart's score) under ``selection``."""
        best, scores = select(selection, result, density, columns, validation)
        return best, density.take_restart(best), scores


class _InGroup(Distribution):
    """A strategy inside a torch.distributed process group (one GPU per process on CUDA)."""

    def __init__(self, mode: str):
        self.rank, self.world_size = require_group(mode)

    def place(self, device: torch.device) -> torch.device:
        if self.world_size > 1 and device.type == "cuda" and device.index is None:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device


class RestartParallel(_InGroup):
    """``distributed="restarts"``: each process trains a block of the restarts; the best is broadcast."""

    def __init__(self) -> None:
        super().__init__("restarts")

    def block(self, n_init: int) -> np.ndarray:
        return restart_block(n_init, self.rank, self.world_size)

    def group_max(self) -> Callable[[int], int]:
        return group_max

    def gather(self, result: TrainResult, n_epochs: int) -> TrainResult:
        return gather_result(result, n_epochs, self.world_size)

    def keep(
        self,
        selection: str,
        result: TrainResult,
        density: nn.Module,
        columns: Tensor,
        validation: Tensor | None,
    ) -> tuple[int, nn.Module, np.ndarray]:
        """Gather every rank's scores, keep the best restart; its owner broadcasts its parameters."""
        _, local_scores = select(selection, result, density, columns, validation)
        scores = gather_rows(local_scores, self.world_size)
        best = int(np.argmin(scores))
        n_init = len(scores)
        blocks = [restart_block(n_init, r, self.world_size) for r in range(self.world_size)]
        owner = next(r for r, b in enumerate(blocks) if best in b)
        mine = blocks[self.rank]
        kept = density.take_restart(int(np.flatnonzero(mine == best)[0]) if self.rank == owner else 0)
        broadcast_module(kept, owner)
        return best, kept, scores


class DataSharded(_InGroup):
    """``distributed="data"``: every mini-batch is split across the processes (DDP)."""

    def __init__(self) -> None:
        super().__init__("data")

    def data_parallel(self) -> DataParallel:
        return DataParallel(self.rank, self.world_size)


def distribution_for(mode: str | None) -> Distribution:
    """The strategy of ``FlowMixture(distributed=mode)``: None, ``"restarts"`` or ``"data"``."""
    strategies: dict[str | None, Callable[[], Distribution]] = {
        None: Distribution,
        "restarts": RestartParallel,
        "data": DataSharded,
    }
    return strategies[mode]()
