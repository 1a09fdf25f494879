"""Training algorithms: one function per algorithm, by name (:data:`ALGORITHMS`), all batched over the stack.

An algorithm fits every restart of a :class:`~flowmix.density.MixtureOfFlows` to the points
(columns) and returns a :class:`~flowmix.training.TrainResult`. Each is a per-batch
objective, plus whatever it updates between epochs, run by the one loop
(:func:`~flowmix.training.loop.minimise`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from flowmix.density import MixtureOfFlows
from flowmix.training.core import (
    TrainConfig,
    TrainResult,
    joint_log_prob_in_chunks,
    m_step_objective,
    negative_log_likelihood,
    truncate_posteriors,
)
from flowmix.training.loop import minimise
from flowmix.training.stopping import StablePartition

# A component's weight never falls below this fraction of 1/K in the EM algorithms: an emptied
# component keeps a chance to win points back, and is reported (FlowMixture.empty_components_).
WEIGHT_FLOOR = 0.1
# Fewest mini-batch steps between two E-steps. An E-step sends every point through every flow;
# on a 2-D set of 2048 points (4 steps an epoch) one per epoch took 40% of hard EM's time.
E_STEP_MIN_STEPS = 16


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
    return minimise(density, columns, m_step_objective(lambda: responsibilities, config.group_max), config)


def e_step_interval(n_samples: int, batch_size: int) -> int:
    """Epochs from one E-step to the next: 1, or enough epochs for ``E_STEP_MIN_STEPS`` steps."""
    steps_per_epoch = -(-n_samples // batch_size)
    return -(-E_STEP_MIN_STEPS // steps_per_epoch)


def set_weights(density: MixtureOfFlows, mass: Tensor) -> None:
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
    has held (see :class:`~flowmix.training.StablePartition`). The assignments travel in
    checkpoints, so a resumed fit uses the ones it stopped with.
    """
    state: dict[str, Tensor] = {}
    interval = e_step_interval(columns.shape[1], config.batch_size)
    partition = (
        StablePartition(density, config.stable_e_steps, state) if hard and config.stable_e_steps else None
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
        set_weights(density, r.sum(-1))

    objective = m_step_objective(lambda: state["r"], config.group_max)
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
