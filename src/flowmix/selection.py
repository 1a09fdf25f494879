"""Selection rules: which restart of a fit is kept, one function per rule, by name.

A rule sees the training result and the batched density, the training points and, where the
estimator held some out (``selection="validation"``), the validation points; it returns one score
per restart (lower is better). Restarts that stopped on a non-finite loss are never kept. Rules
never look at labels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from flowmix.density import MixtureOfFlows
from flowmix.training import TrainResult, joint_log_prob_in_chunks, mean_nll

Selection = Callable[[TrainResult, MixtureOfFlows, Tensor, "Tensor | None"], np.ndarray]


def final_loss(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The training loss of the last epoch: the paper's rule (with early stopping, of the kept epoch).

    Examples
    --------
    >>> result = TrainResult(np.array([[3.0, 2.0], [3.0, 1.0]]), np.array([-1, -1]), 2)
    >>> final_loss(result, None, None, None).tolist()
    [2.0, 1.0]
    """
    if result.best_epoch is not None:
        kept = np.maximum(result.best_epoch, 0)
        return result.losses[np.arange(len(kept)), kept].astype(np.float64)
    return result.losses[:, -1].astype(np.float64)


def training_likelihood(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The mixture's mean NLL on the training points after training (whatever the algorithm optimised)."""
    return mean_nll(density, train)


def validation_likelihood(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The mixture's mean NLL on the held-out validation points."""
    if validation is None:
        raise ValueError("selection='validation' needs validation points (validation_fraction > 0).")
    return mean_nll(density, validation)


def graph_cut(
    result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> np.ndarray:
    """The normalised cut of each restart's partition of the training points' kNN graph.

    sum_k cut(C_k, rest) / vol(C_k) on the symmetric 10-nearest-neighbour graph: low when every
    cluster is a well-connected region separated from the others by few edges, whatever its
    shape. Unlike a likelihood, it does not reward flows flexible enough to model a piece cut
    out of a cluster.
    """
    from sklearn.neighbors import kneighbors_graph

    points = train.T.double().cpu().numpy()
    if density.n_components == 1 or len(points) < 3:
        return np.zeros(density.n_restarts)  # nothing to cut
    graph = kneighbors_graph(points, min(10, len(points) - 1), include_self=False)
    graph = (graph + graph.T).tocsr()
    degree = np.asarray(graph.sum(axis=1)).ravel()
    labels = joint_log_prob_in_chunks(density, train).argmax(1).cpu().numpy()  # (R, N)
    rows, cols = graph.nonzero()
    scores = []
    for part in labels:
        crossing = part[rows] != part[cols]
        cut = np.bincount(part[rows][crossing], minlength=density.n_components)
        volume = np.bincount(part, weights=degree, minlength=density.n_components)
        scores.append(float(np.sum(cut / np.maximum(volume, 1e-12))))
    return np.asarray(scores)


SELECTIONS: dict[str, Selection] = {
    "loss": final_loss,
    "likelihood": training_likelihood,
    "validation": validation_likelihood,
    "graph-cut": graph_cut,
}


def select(
    name: str, result: TrainResult, density: MixtureOfFlows, train: Tensor, validation: Tensor | None
) -> tuple[int, np.ndarray]:
    """The kept restart under rule ``name`` and every restart's score (inf for a stopped restart)."""
    scores = np.asarray(get_selection(name)(result, density, train, validation), dtype=np.float64)
    scores = np.where((result.stopped_epoch >= 0) | ~np.isfinite(scores), np.inf, scores)
    return int(np.argmin(scores)), scores


def get_selection(name: str) -> Selection:
    """The selection rule registered as ``name``."""
    if name not in SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {name!r}.")
    return SELECTIONS[name]
