"""Training algorithms: one function per algorithm, by name, all batched over the stack.

An algorithm fits every restart of a :class:`~flowmix.density.MixtureOfFlows` to the points
(columns) and returns a :class:`TrainResult`. They share one mini-batch loop, :func:`minimise`,
which owns the optimiser, the NaN handling, the progress bar and the callback; an algorithm is a
per-batch objective (plus whatever it updates between epochs).

Restarts have disjoint parameters, so minimising the *sum* of their objectives with one Adam gives
each restart exactly the updates it would get alone (Adam is element-wise). All restarts see the
same mini-batch order, which lets the first network layer be one GEMM over all flows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from flowmix._denormals import flush_denormals
from flowmix._memory import reuse_freed_memory
from flowmix.batch_order import BATCH_ORDERS, epoch_order, per_restart_batch, per_restart_orders
from flowmix.checkpoint import FitCheckpoint, Resumed
from flowmix.density import MixtureOfFlows
from flowmix.dequantization import Jitter

if TYPE_CHECKING:
    from flowmix.distributed import DataParallel


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


@dataclass
class TrainConfig:
    """Settings every training algorithm takes (the estimator's parameters of the same names).

    ``callback(epochs_done, density)`` is called before the first epoch (or, when resuming, the
    first epoch this process runs) and after every ``callback_every`` epochs.
    """

    n_epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    shuffle: bool = True
    generator: torch.Generator | None = None
    # Mini-batch orders (flowmix.batch_order): one shared by all restarts or one per restart
    # (restart indices counted from restart_offset), from a full permutation or a shuffle buffer.
    batch_order: str = "shared"
    shuffle_buffer: int | None = None
    restart_offset: int = 0
    verbose: bool = False
    callback: Callable[[int, MixtureOfFlows], None] | None = None
    callback_every: int = 50
    # Early stopping: restarts stop once the mixture NLL of these points (D, M) stops improving, or,
    # with validation_responsibilities (R, K, M), their NLL under the components they are assigned to.
    validation: Tensor | None = None
    validation_responsibilities: Tensor | None = None
    n_iter_no_change: int = 10
    tol: float = 1e-4
    # Hard EM's convergence: a restart stops once this many E-steps in a row have each moved at
    # most PARTITION_TOL of the points (None: every restart trains all n_epochs).
    stable_e_steps: int | None = None
    # Dequantisation (flowmix.dequantization): each feature's lattice step in the units of the
    # points (0: continuous); training steps see fresh uniform noise of that width every epoch.
    dequantization: np.ndarray | None = None
    # Checkpoints: where to write them, which phase of the fit this is, and one to continue from.
    checkpoint: FitCheckpoint | None = None
    phase: str = "train"
    resume: Resumed | None = None
    # Data parallel across the ranks of a process group (flowmix.distributed), or None.
    data_parallel: DataParallel | None = None
    # Restart-parallel: the largest of an integer over the ranks (flowmix.distributed.group_max), so
    # that every rank pads its per-flow batches to the width one process would use.
    group_max: Callable[[int], int] | None = None

    def __post_init__(self) -> None:
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(f"batch_order must be one of {list(BATCH_ORDERS)}, got {self.batch_order!r}.")


BatchObjective = Callable[[MixtureOfFlows, Tensor, Tensor | slice], Tensor]
"""(density, batch columns (D, n), the batch's indices into the data) -> (R,) losses to minimise."""


def make_optimizer(model: MixtureOfFlows, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with TensorFlow's defaults (epsilon 1e-7), as the paper.

    torch's fused kernel (one pass per parameter) on CPU and CUDA, the default implementation
    elsewhere; the two take the same steps up to rounding.
    """
    devices = {p.device.type for p in model.parameters()}
    fused = devices <= {"cpu", "cuda"}
    return torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-7, fused=fused)


def negative_log_likelihood(density: MixtureOfFlows, batch: Tensor, index: Tensor | slice) -> Tensor:
    """The mixture's mean NLL on the batch, per restart: the paper's objective."""
    return -density.log_prob_columns(batch).mean(dim=-1)


def maximum_likelihood(density: MixtureOfFlows, columns: Tensor, config: TrainConfig) -> TrainResult:
    """Direct maximum likelihood of the mixture (flows and weights together): the paper's training."""
    return minimise(density, columns, negative_log_likelihood, config)


def pretrain(
    density: MixtureOfFlows, columns: Tensor, responsibilities: Tensor, config: TrainConfig
) -> TrainResult:
    """Fit every component's flow to the points assigned to it, with the weights left alone.

    Minimises ``-sum_k r_nk log flow_k(x_n)`` averaged over the points, per restart: the M-step
    of EM for the flows. ``responsibilities`` (R, K, N) are fixed (hard 0/1 or soft).
    """

    return minimise(density, columns, _m_step_objective(lambda: responsibilities, config.group_max), config)


def _m_step_objective(
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


# A component's weight never falls below this fraction of 1/K in the EM algorithms: an emptied
# component keeps a chance to win points back, and is reported (FlowMixture.empty_components_).
WEIGHT_FLOOR = 0.1
# Fewest mini-batch steps between two E-steps. An E-step sends every point through every flow;
# on a 2-D set of 2048 points (4 steps an epoch) one per epoch took 40% of hard EM's time.
E_STEP_MIN_STEPS = 16


# The share of the points an E-step may move while the partition still counts as unchanged
# (hard EM's convergence, ``TrainConfig.stable_e_steps``): one point in a thousand.
PARTITION_TOL = 1e-3
# Hard EM's other convergence: E-steps in a row whose share of moved points has not fallen below
# CHURN_DROP times the lowest share so far. On heavily overlapping clusters (10 digits) the
# boundary points flicker for good: 0.1-0.4% of them moved at every E-step for 40 epochs while
# the partition's ARI stayed within 0.001 (benchmarks/RESULTS.md).
CHURN_PATIENCE = 10
CHURN_DROP = 0.9


# Posteriors below this are set to 0 in soft EM: a flow then trains only on the points it has a
# share of, instead of on every point (soft EM costs about what hard EM does on separated clusters).
POSTERIOR_FLOOR = 1e-3


def truncate_posteriors(responsibilities: Tensor) -> Tensor:
    """Responsibilities (R, K, N) with the shares below ``POSTERIOR_FLOOR`` set to 0, renormalised."""
    largest = responsibilities == responsibilities.amax(1, keepdim=True)  # never all of a point's shares
    kept = torch.where((responsibilities >= POSTERIOR_FLOOR) | largest, responsibilities, 0.0)
    return kept / kept.sum(1, keepdim=True)


def e_step_interval(n_samples: int, batch_size: int) -> int:
    """Epochs from one E-step to the next: 1, or enough epochs for ``E_STEP_MIN_STEPS`` steps."""
    steps_per_epoch = -(-n_samples // batch_size)
    return -(-E_STEP_MIN_STEPS // steps_per_epoch)


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


def _set_weights(density: MixtureOfFlows, mass: Tensor) -> None:
    """Closed-form weights from the components' (R, K) shares of the points, held above the floor."""
    k = density.n_components
    weights = (mass / mass.sum(-1, keepdim=True)).clamp_min(WEIGHT_FLOOR / k)
    with torch.no_grad():
        density.logits.copy_(torch.log(weights / weights.sum(-1, keepdim=True)))


def expectation_maximisation(
    density: MixtureOfFlows,
    columns: Tensor,
    config: TrainConfig,
    *,
    hard: bool,
    temperature: Callable[[int], float] = lambda epoch: 1.0,
) -> TrainResult:
    """EM for a mixture of flows, batched over the stack.

    An E-step on all points (posteriors tempered by ``temperature(epoch)``, or hard assignments)
    and closed-form weights start every epoch, or every few epochs when an epoch has fewer than
    ``E_STEP_MIN_STEPS`` mini-batches (:func:`e_step_interval`); the mini-batches take Adam steps
    on the M-step objective ``-sum_k r_nk log flow_k(x_n)``. The recorded loss is that objective.
    With hard assignments and ``config.stable_e_steps``, each restart stops once its partition
    has held (see :class:`_StablePartition`). The assignments travel in checkpoints, so a resumed
    fit uses the ones it stopped with.
    """
    state: dict[str, Tensor] = {}
    interval = e_step_interval(columns.shape[1], config.batch_size)
    partition = (
        _StablePartition(density, config.stable_e_steps, state) if hard and config.stable_e_steps else None
    )

    def e_step(epoch: int) -> None:
        if epoch % interval and "r" in state:
            return
        if config.data_parallel is None:
            joint = joint_log_prob_in_chunks(density, columns)
        else:
            joint = config.data_parallel.gather_points(
                lambda part: joint_log_prob_in_chunks(density, part), columns
            )
        if hard:
            labels = joint.argmax(1)
            r = torch.zeros_like(joint).scatter_(1, labels[:, None], 1.0)
            if partition is not None:
                partition.update(epoch, labels)
        else:
            r = truncate_posteriors(torch.softmax(joint / temperature(epoch), dim=1))
        state["r"] = r
        _set_weights(density, r.sum(-1))

    objective = _m_step_objective(lambda: state["r"], config.group_max)
    return minimise(
        density, columns, objective, config, epoch_start=e_step, extra_state=state, partition=partition
    )


def hard_em(density: MixtureOfFlows, columns: Tensor, config: TrainConfig) -> TrainResult:
    """Classification EM: every point trains the component that explains it best."""
    return expectation_maximisation(density, columns, config, hard=True)


def soft_em(density: MixtureOfFlows, columns: Tensor, config: TrainConfig) -> TrainResult:
    """EM with posterior responsibilities and closed-form weights."""
    return expectation_maximisation(density, columns, config, hard=False)


def annealed_em(density: MixtureOfFlows, columns: Tensor, config: TrainConfig) -> TrainResult:
    """Deterministic annealing: posteriors tempered from T = 4 down to 1 over the first half of the epochs.

    A high temperature shares points between components, which lets a start that is wrong in
    places move before the assignments harden.
    """
    cool = max(1, config.n_epochs // 2)

    def temperature(epoch: int) -> float:
        return 4.0 ** max(0.0, 1 - epoch / cool)

    return expectation_maximisation(density, columns, config, hard=False, temperature=temperature)


ALGORITHMS: dict[str, Callable[[MixtureOfFlows, Tensor, TrainConfig], TrainResult]] = {
    "mle": maximum_likelihood,
    "hard-em": hard_em,
    "soft-em": soft_em,
    "annealed-em": annealed_em,
}


def get_algorithm(name: str) -> Callable[[MixtureOfFlows, Tensor, TrainConfig], TrainResult]:
    """The training algorithm registered as ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {name!r}.")
    return ALGORITHMS[name]


@dataclass
class _LoopState:
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
    def fresh(cls, n_epochs: int, n_restarts: int, device: torch.device) -> _LoopState:
        return cls(
            epoch_losses=torch.full((n_epochs, n_restarts), float("nan"), device=device),
            batch_mean_losses=torch.full((n_epochs, n_restarts), float("nan"), device=device),
            alive=torch.ones(n_restarts, dtype=torch.bool, device=device),
            losses=np.full((n_restarts, n_epochs), np.nan),
            stopped=np.full(n_restarts, -1),
        )

    def tensors(self) -> dict[str, Tensor]:
        return {
            "loop.epoch_losses": self.epoch_losses,
            "loop.batch_mean_losses": self.batch_mean_losses,
            "loop.alive": self.alive,
            "loop.losses": torch.from_numpy(self.losses),
            "loop.stopped": torch.from_numpy(self.stopped.astype(np.int64)),
        }

    def counters(self) -> dict[str, Any]:
        return {
            "synced_upto": self.synced_upto,
            "steps_since_sync": self.steps_since_sync,
            "epochs_run": self.epochs_run,
            "done": self.done,
        }

    def restore(self, tensors: dict[str, Tensor], meta: dict[str, Any], device: torch.device) -> None:
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


def _restart_views(model: MixtureOfFlows) -> dict[str, Tensor]:
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


class _EarlyStopping:
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
        self.best = {name: t.detach().clone() for name, t in _restart_views(model).items()}

    def training(self, device: torch.device) -> Tensor:
        """(R,) bool: restarts still training."""
        return torch.as_tensor(self.finished < 0, device=device)

    @torch.no_grad()
    def after_epoch(self, epoch: int, alive: np.ndarray) -> None:
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
            for name, view in _restart_views(self.model).items():
                self.best[name][keep] = view[keep]
        out_of_patience = (self.wait >= self.patience) & (self.finished < 0)
        self.finished = np.where(out_of_patience, epoch + 1, self.finished)

    def restore_kept(self) -> None:
        """Put each restart's best-epoch parameters back (restarts that never improved keep theirs)."""
        keep = torch.as_tensor(self.best_epoch >= 0, device=self.validation.device)
        for name, view in _restart_views(self.model).items():
            view[keep] = self.best[name][keep]

    def tensors(self) -> dict[str, Tensor]:
        out = {f"best.{name}": t for name, t in self.best.items()}
        for name in ("scores", "best_score", "best_epoch", "wait", "finished"):
            out[f"stop.{name}"] = torch.from_numpy(np.asarray(getattr(self, name)))
        return out

    def restore(self, tensors: dict[str, Tensor]) -> None:
        for name in self.best:
            self.best[name].copy_(tensors[f"best.{name}"])
        for name in ("scores", "best_score", "best_epoch", "wait", "finished"):
            setattr(self, name, tensors[f"stop.{name}"].numpy().copy())


class _StablePartition:
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
            for name, view in _restart_views(self.model).items():
                kept = self.state.setdefault(f"partition.kept.{name}", view.clone())
                kept[newly] = view[newly]

    def restore_kept(self) -> None:
        """Put each converged restart's parameters of its convergence back."""
        converged = self.state["partition.finished"] >= 0
        for name, view in _restart_views(self.model).items():
            if f"partition.kept.{name}" in self.state:
                view[converged] = self.state[f"partition.kept.{name}"][converged]


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


def _write_checkpoint(
    config: TrainConfig,
    model: MixtureOfFlows,
    optimizer: torch.optim.Optimizer,
    loop: _LoopState,
    stopper: _EarlyStopping | None,
    extra_state: dict[str, Tensor],
) -> None:
    tensors = {f"model.{name}": t for name, t in model.state_dict().items() if t is not None}
    tensors.update(_optimizer_tensors(optimizer))
    tensors["rng"] = _rng_state(config.generator)
    tensors.update(loop.tensors())
    tensors.update({f"extra.{name}": t for name, t in extra_state.items()})
    if stopper is not None:
        tensors.update(stopper.tensors())
    config.checkpoint.save(config.phase, tensors, loop.counters())


def _resume(
    config: TrainConfig,
    model: MixtureOfFlows,
    optimizer: torch.optim.Optimizer,
    loop: _LoopState,
    stopper: _EarlyStopping | None,
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
    partition: _StablePartition | None = None,
) -> TrainResult:
    """Minimise ``objective`` over mini-batches of the points ``columns`` (D, N) with Adam.

    Points are columns, the layout of every layer (see flowmix.nn), so the data are held once.
    ``epoch_start(epoch)``, if given, runs before each epoch (an EM algorithm's E-step); the
    tensors it keeps in ``extra_state`` are checkpointed with the loop and restored on resume.

    Losses stay on the device and are read back every ``sync_every`` steps (and at the end),
    so the hot loop never waits on the host; a restart whose loss turned NaN/inf is then masked
    out of the objective and reported in ``stopped_epoch``. With ``config.validation``, restarts
    stop early (see ``_EarlyStopping``); with ``partition`` (updated by ``epoch_start``), once
    their partition holds (see ``_StablePartition``). With ``config.checkpoint``, the whole loop state is
    written after every due epoch and at the end, and ``config.resume`` continues from it exactly.
    """
    n_epochs, batch_size, shuffle = config.n_epochs, config.batch_size, config.shuffle
    generator, callback, callback_every = config.generator, config.callback, config.callback_every
    n_samples = columns.shape[1]
    device = columns.device
    optimizer = make_optimizer(model, config.learning_rate)
    loop = _LoopState.fresh(n_epochs, model.n_restarts, device)
    stopper = _EarlyStopping(model, config) if config.validation is not None else None
    # The rules that stop restarts early, each keeping the parameters a stopped restart ends with.
    rules = [rule for rule in (stopper, partition) if rule is not None]
    extra_state = {} if extra_state is None else extra_state
    _resume(config, model, optimizer, loop, stopper, extra_state)
    bar = tqdm(total=n_epochs, desc=config.phase, unit="epoch", disable=not config.verbose, leave=False)
    bar.update(loop.epochs_run)
    if callback is not None:
        callback(loop.epochs_run, model)
    comm = config.data_parallel
    if comm is not None:
        from flowmix.distributed import wrap_ddp

        step_objective = wrap_ddp(model, objective)
    # A full batch is permutation invariant: shuffling it would only cost a copy.
    reorder = shuffle and batch_size < n_samples
    per_restart = reorder and config.batch_order == "per-restart"
    jitter = None if config.dequantization is None else Jitter(columns, config.dequantization, generator)
    for epoch in range(loop.epochs_run, n_epochs):
        if loop.done:
            break
        if epoch_start is not None:
            epoch_start(epoch)
        if partition is not None and _all_converged(partition.finished, loop.stopped, config):
            loop.done = True
            if loop.synced_upto < loop.epochs_run:  # the losses still on the device
                _sync(loop, bar)
            break
        if per_restart:
            order = per_restart_orders(
                n_samples, model.n_restarts, generator, config.shuffle_buffer, config.restart_offset
            ).to(device)
        elif reorder:
            order = epoch_order(n_samples, generator, config.shuffle_buffer).to(device)
        points = columns if jitter is None else jitter.draw()  # what this epoch's steps train on
        mask = loop.alive
        for rule in rules:
            mask = mask & rule.training(device)
        total = torch.zeros(model.n_restarts, device=device)
        batch_total = torch.zeros(model.n_restarts, device=device)
        n_batches = 0
        for start in range(0, n_samples, batch_size):
            index = order[..., start : start + batch_size] if reorder else slice(start, start + batch_size)
            if comm is None:
                if per_restart:  # (R * K, D, n): each restart's flows see its own batch
                    batch = per_restart_batch(points, index, model.n_components)
                else:
                    batch = points[:, index]
                loss = objective(model, batch, index)
                summed = torch.where(mask, loss, torch.zeros_like(loss)).sum()
                n_batch = batch.shape[-1]
            else:
                loss, summed, n_batch = _data_parallel_step(comm, step_objective, points, index, mask)
            optimizer.zero_grad(set_to_none=True)
            summed.backward()
            optimizer.step()
            total += loss.detach() * n_batch
            batch_total += loss.detach() * (n_batch / min(batch_size, n_samples - start))
            n_batches += 1
            loop.steps_since_sync += 1
        if comm is not None:
            comm.sum(total)
            comm.sum(batch_total)  # the ranks' shares of each global batch mean
        loop.epoch_losses[epoch] = total / n_samples
        loop.batch_mean_losses[epoch] = batch_total / n_batches
        loop.epochs_run = epoch + 1
        if callback is not None and (loop.epochs_run % callback_every == 0 or loop.epochs_run == n_epochs):
            callback(loop.epochs_run, model)
        if loop.steps_since_sync >= sync_every or epoch == n_epochs - 1 or stopper is not None:
            loop.done = not _sync(loop, bar) or loop.done
        if stopper is not None:
            stopper.after_epoch(epoch, loop.stopped < 0)
            loop.done = loop.done or bool(((stopper.finished >= 0) | (loop.stopped >= 0)).all())
        if config.checkpoint is not None and (
            loop.done or loop.epochs_run == n_epochs or config.checkpoint.due(loop.epochs_run)
        ):
            _write_checkpoint(config, model, optimizer, loop, stopper, extra_state)
    bar.close()
    return _result(loop, stopper, rules, model)


def _all_converged(finished: np.ndarray, stopped: np.ndarray, config: TrainConfig) -> bool:
    """Whether every restart has converged or failed; in a restart-parallel group, on every rank."""
    done = bool(((finished >= 0) | (stopped >= 0)).all())
    if config.group_max is not None:  # the ranks' steps meet in collectives: they stop together
        done = config.group_max(0 if done else 1) == 0
    return done


def _data_parallel_step(
    comm: DataParallel, step_objective: Any, columns: Tensor, index: Tensor | slice, mask: Tensor
) -> tuple[Tensor, Tensor, int]:
    """This rank's part of one global batch: (local mean losses, the weighted sum to backpropagate, points).

    A rank whose share is empty (a last batch smaller than the group) still runs the step, on one
    point with weight 0, because DDP's gradient reduction needs every rank.
    """
    n_global = len(range(columns.shape[1])[index]) if isinstance(index, slice) else len(index)
    local = comm.local(index, columns.shape[1])
    n_local = len(local)
    if n_local == 0:
        local = (torch.arange(columns.shape[1])[index] if isinstance(index, slice) else index)[:1]
    loss = step_objective(columns[:, local], local)
    weight = comm.weight(n_local, n_global)
    summed = torch.where(mask, loss * weight, torch.zeros_like(loss)).sum()
    return loss, summed, n_local


def _sync(loop: _LoopState, bar: Any) -> bool:
    """Copy the unread epoch losses to the host and mark non-finite restarts; False if none is left."""
    loop.steps_since_sync = 0
    block = loop.epoch_losses[loop.synced_upto : loop.epochs_run].T.cpu().numpy()
    loop.losses[:, loop.synced_upto : loop.epochs_run] = block
    _mark_stopped(block, loop.synced_upto, loop.stopped)
    loop.synced_upto = loop.epochs_run
    loop.alive = torch.as_tensor(loop.stopped < 0, device=loop.alive.device)
    bar.update(loop.epochs_run - bar.n)
    finite = loop.losses[loop.stopped < 0, loop.epochs_run - 1]
    if finite.size:
        bar.set_postfix(loss=f"{finite.min():.4f}", alive=int(finite.size))
    return bool(finite.size)


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
    loop: _LoopState,
    stopper: _EarlyStopping | None,
    rules: list[_EarlyStopping | _StablePartition],
    model: MixtureOfFlows,
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
        trained = np.full(model.n_restarts, epochs_run)
        for rule in rules:
            trained = np.where(rule.finished >= 0, np.minimum(trained, rule.finished), trained)
        for r in range(len(trained)):
            result.losses[r, trained[r] :] = np.nan
            result.batch_mean_losses[r, trained[r] :] = np.nan
        result.epochs_trained = trained
    if stopper is not None:
        result.validation_losses = stopper.scores[:, :epochs_run].copy()
        result.best_epoch = stopper.best_epoch.copy()
    return result


def _mark_stopped(block: np.ndarray, first_epoch: int, stopped: np.ndarray) -> None:
    """Record the first non-finite epoch of each restart that has not stopped yet."""
    for r in np.flatnonzero(stopped < 0):
        bad = np.flatnonzero(~np.isfinite(block[r]))
        if bad.size:
            stopped[r] = first_epoch + int(bad[0])
