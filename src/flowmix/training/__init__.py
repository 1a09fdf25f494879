"""Training: the algorithms, the loop they share, the rules that stop restarts, and checkpointed state.

An algorithm fits every restart of a :class:`~flowmix.density.MixtureOfFlows` to the points
(columns) and returns a :class:`TrainResult`; all of them run one mini-batch loop, :func:`minimise`.

- :mod:`flowmix.training.core`: settings, result, objectives and chunked evaluation (shared by all)
- :mod:`flowmix.training.loop`: :func:`minimise`, the mini-batch loop with Adam
- :mod:`flowmix.training.stopping`: early stopping and hard EM's convergence
- :mod:`flowmix.training.state`: what a checkpoint holds, written and restored
- :mod:`flowmix.training.algorithms`: the registry :data:`ALGORITHMS` (MLE, hard/soft/annealed EM)
  and pretraining

This package only re-exports; its modules import one another by their own names.
"""

from __future__ import annotations

from flowmix.training.algorithms import (
    ALGORITHMS,
    E_STEP_MIN_STEPS,
    WEIGHT_FLOOR,
    annealed_em,
    e_step_interval,
    expectation_maximisation,
    get_algorithm,
    hard_em,
    maximum_likelihood,
    pretrain,
    set_weights,
    soft_em,
)
from flowmix.training.core import (
    POSTERIOR_FLOOR,
    BatchObjective,
    DataParallelGroup,
    TrainConfig,
    TrainResult,
    joint_log_prob_in_chunks,
    m_step_objective,
    mean_assigned_nll,
    mean_nll,
    negative_log_likelihood,
    restart_labels,
    truncate_posteriors,
)
from flowmix.training.loop import make_optimizer, minimise
from flowmix.training.state import LoopState
from flowmix.training.stopping import (
    CHURN_DROP,
    CHURN_PATIENCE,
    PARTITION_TOL,
    HeldOutStopping,
    StablePartition,
)

# The names these had inside the single training module, still used by tests/test_checkpoint.py.

__all__ = [
    "ALGORITHMS",
    "CHURN_DROP",
    "CHURN_PATIENCE",
    "E_STEP_MIN_STEPS",
    "PARTITION_TOL",
    "POSTERIOR_FLOOR",
    "WEIGHT_FLOOR",
    "BatchObjective",
    "DataParallelGroup",
    "HeldOutStopping",
    "LoopState",
    "StablePartition",
    "TrainConfig",
    "TrainResult",
    "annealed_em",
    "e_step_interval",
    "expectation_maximisation",
    "get_algorithm",
    "hard_em",
    "joint_log_prob_in_chunks",
    "m_step_objective",
    "make_optimizer",
    "maximum_likelihood",
    "mean_assigned_nll",
    "mean_nll",
    "minimise",
    "negative_log_likelihood",
    "pretrain",
    "restart_labels",
    "set_weights",
    "soft_em",
    "truncate_posteriors",
]
