"""Selection rules: which restart of a fit is kept, one function per rule, by name.

A rule sees the training result (and may evaluate the batched density on the training points) and
returns the index of the kept restart; restarts that stopped on a non-finite loss are never kept.
Rules never look at labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from flowmix.density import MixtureOfFlows
from flowmix.training import TrainResult

Selection = Callable[[TrainResult, MixtureOfFlows, Tensor], int]


def lowest_final_loss(result: TrainResult, density: MixtureOfFlows, columns: Tensor) -> int:
    """The restart with the lowest training loss in the last epoch: the paper's rule.

    Example:
        >>> result = TrainResult(np.array([[3.0, 2.0], [3.0, 1.0]]), np.array([-1, -1]), 2)
        >>> lowest_final_loss(result, None, None)
        1
    """
    final = np.where(result.stopped_epoch >= 0, np.inf, result.losses[:, -1])
    return int(np.argmin(final))


SELECTIONS: dict[str, Selection] = {
    "loss": lowest_final_loss,
}


def get_selection(name: str) -> Selection:
    """The selection rule registered as ``name``."""
    if name not in SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {name!r}.")
    return SELECTIONS[name]
