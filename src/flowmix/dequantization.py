"""Dequantisation: fresh uniform noise on features that take values on a lattice, while training.

A flow trained by maximum likelihood on integer counts, ratings or 8-bit pixels can raise its
likelihood without bound by piling its density onto the lattice points, so its loss falls
towards minus infinity while the clusters it finds say less and less. Training instead on
x + step * (u - 1/2), u ~ U(0, 1) drawn afresh every epoch, fits a continuous density whose
integral over a point's cell [x - step/2, x + step/2) estimates the point's probability (Theis
et al., 2016; Ho et al., 2019, for flows on images): the standard remedy.

Training steps see fresh noise every epoch; candidate partitions and starts see one fixed draw
(:func:`jittered`), because the ties of coinciding lattice points mislead nearest-neighbour
graphs. E-steps, early stopping, selection, ``predict`` and ``score_samples`` see the points as
given, the cells' centres, where the density approximates the cell's probability divided by
its width. Samples are rounded to the lattice (:func:`snap_to_lattice`), which turns the
continuous model back into one of the lattice values.

``dequantize="auto"`` takes the integer-valued features (step 1): counts, ratings, 8-bit images
given as integers. A feature with one value is left alone (preprocessing handles constants).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def lattice_steps(dequantize: Any, X: np.ndarray) -> np.ndarray | None:
    """Each feature's lattice step (0: continuous) that ``dequantize`` stands for on X (N, D), or None.

    ``"auto"``: step 1 on every feature whose values are all integers and not all equal. None or
    False: no feature. An array-like of shape (D,): the steps as given (non-negative, finite).
    None is returned where no feature has a positive step.

    Examples
    --------
    >>> X = np.array([[0.0, 0.5, 3.0], [1.0, 1.5, 3.0], [2.0, 0.25, 3.0]])
    >>> lattice_steps("auto", X).tolist()
    [1.0, 0.0, 0.0]
    >>> lattice_steps([0.0, 0.25, 0.0], X).tolist()
    [0.0, 0.25, 0.0]
    >>> lattice_steps(None, X) is None
    True
    """
    if dequantize is None or dequantize is False:
        return None
    if isinstance(dequantize, str) and dequantize == "auto":
        with np.errstate(invalid="ignore"):
            integer = np.all(np.round(X) == X, axis=0)
        varies = np.any(X[:1] != X, axis=0)
        steps = (integer & varies).astype(np.float64)
    else:
        steps = _given_steps(dequantize, X.shape[1])
    return steps if np.any(steps > 0) else None


def _given_steps(dequantize: Any, n_features: int) -> np.ndarray:
    """The user's per-feature steps, or a ValueError that says what ``dequantize`` takes."""
    try:
        steps = np.asarray(dequantize, dtype=np.float64)
    except (TypeError, ValueError):
        steps = None
    if steps is None or steps.shape != (n_features,) or not np.all(np.isfinite(steps) & (steps >= 0)):
        raise _refusal(dequantize, f"shape ({n_features},); ")
    return steps


def check_dequantize(dequantize: Any) -> None:
    """Refuse a ``dequantize`` that no data could make valid (a word other than "auto", True).

    Examples
    --------
    >>> check_dequantize("auto"), check_dequantize(None)
    (None, None)
    """
    if (isinstance(dequantize, str) and dequantize != "auto") or dequantize is True:
        raise _refusal(dequantize)


def _refusal(dequantize: Any, shape: str = "") -> ValueError:
    return ValueError(
        "dequantize must be 'auto', None, or one non-negative finite lattice step per feature "
        f"({shape}0 for a continuous feature), got {dequantize!r}."
    )


def plain(dequantize: Any) -> Any:
    """``dequantize`` as JSON can hold it: steps given as an array become a list of floats.

    Examples
    --------
    >>> plain(np.array([1, 0])), plain("auto")
    ([1.0, 0.0], 'auto')
    """
    if dequantize is None or isinstance(dequantize, str | bool):
        return dequantize
    return np.asarray(dequantize, dtype=np.float64).tolist()


def jittered(X: np.ndarray, widths: np.ndarray, seed: int) -> np.ndarray:
    """X (N, D) with each lattice feature moved by width * (u - 1/2), u ~ U(0, 1), in X's dtype.

    One fixed draw, for what looks at the points as a set (candidate partitions, starts): on a
    lattice many points coincide, and their ties make nearest-neighbour graphs cut along the
    lattice instead of between clusters.

    Examples
    --------
    >>> X = np.zeros((3, 2), dtype=np.float32)
    >>> moved = jittered(X, np.array([1.0, 0.0]), seed=0)
    >>> bool(np.all(np.abs(moved[:, 0]) <= 0.5)), moved[:, 1].tolist(), moved.dtype
    (True, [0.0, 0.0, 0.0], dtype('float32'))
    """
    moved = np.random.RandomState(seed).random_sample(X.shape)  # in place from here: one float64 copy
    moved -= 0.5
    moved *= widths
    moved += X
    return moved.astype(X.dtype, copy=False)


class Jitter:
    """The training points with fresh noise on their lattice features, redrawn by ``draw()``.

    ``columns`` (D, N) are the points as the model sees them and ``widths`` (D,) each feature's
    step in those units (0: continuous). The noisy copy is allocated once; each draw takes its
    numbers from ``generator`` (on the CPU, so that a checkpointed generator state replays it).
    """

    def __init__(self, columns: Tensor, widths: np.ndarray, generator: torch.Generator | None):
        self.columns = columns
        self.rows = torch.as_tensor(np.flatnonzero(widths > 0), device=columns.device)
        self.widths = torch.as_tensor(widths[widths > 0], dtype=columns.dtype, device=columns.device)[:, None]
        self.generator = generator
        self.noisy = columns.clone()

    def draw(self) -> Tensor:
        """The points, each lattice feature moved by step * (u - 1/2), u ~ U(0, 1): (D, N)."""
        u = torch.rand(
            len(self.rows), self.columns.shape[1], generator=self.generator, dtype=self.columns.dtype
        )
        shifted = self.columns[self.rows] + (u.to(self.columns.device) - 0.5) * self.widths
        self.noisy[self.rows] = shifted
        return self.noisy


def snap_to_lattice(X: np.ndarray, steps: np.ndarray | None) -> np.ndarray:
    """X (N, D) with each lattice feature rounded to the nearest multiple of its step.

    Examples
    --------
    >>> snap_to_lattice(np.array([[0.4, 0.4], [2.6, 2.6]]), np.array([1.0, 0.0])).tolist()
    [[0.0, 0.4], [3.0, 2.6]]
    """
    if steps is None:
        return X
    lattice = steps > 0
    X = X.copy()
    X[:, lattice] = np.round(X[:, lattice] / steps[lattice]) * steps[lattice]
    return X
