"""Per-column rescaling of a table, fitted on one table and repeated on others.

The paper min-max rescales every toy set to [0, 1]. ``flowmix fit --scale`` does the same to a
user's table (by default only with a paper preset, whose estimator fits the data as given) and
stores the fitted offsets and spans beside the model, so that ``predict`` and ``evaluate``
rescale new rows exactly as the training rows were. This is the data sets' and the command
line's rescaling; the estimator's own (``FlowMixture(preprocessing=...)``) is
:mod:`flowmix.preprocessing`. The fitted parameters are a plain JSON-able dict::

    {"scale": "minmax", "offset": [...], "span": [...]}   # x' = (x - offset) / span

>>> X = np.array([[0.0, 10.0], [2.0, 30.0]])
>>> params = fit_table_scaling(X, "minmax")
>>> apply_scaling(X, params)
array([[0., 0.],
       [1., 1.]], dtype=float32)
>>> apply_scaling(np.array([[1.0, 20.0]]), params)
array([[0.5, 0.5]], dtype=float32)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SCALINGS", "apply_scaling", "fit_table_scaling", "minmax_scale"]

#: Names accepted by :func:`fit_table_scaling`: min-max to [0, 1], zero mean and unit variance, or none.
SCALINGS = ("minmax", "standard", "none")


def fit_table_scaling(X: ArrayLike, method: str) -> dict[str, Any]:
    """Fit the per-column rescaling ``method`` to ``X`` (N, D).

    Parameters
    ----------
    X : array-like of shape (N, D)
    method : {"minmax", "standard", "none"}
        ``"minmax"``: offset the column minimum, span its range; ``"standard"``: offset the mean,
        span the standard deviation; ``"none"``: leave the features as they are.

    Returns
    -------
    dict
        ``{"scale": method, "offset": [D floats], "span": [D floats]}`` (no offset and span for
        ``"none"``), computed in float64; JSON-able, for :func:`apply_scaling`.
    """
    if method not in SCALINGS:
        raise ValueError(f"Unknown scaling {method!r}; choose one of {', '.join(SCALINGS)}.")
    if method == "none":
        return {"scale": "none"}
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"Scaling is fitted to a non-empty (N, D) table, got an array of shape {X.shape}.")
    if method == "minmax":
        offset, span = X.min(axis=0), np.ptp(X, axis=0)
    else:
        offset, span = X.mean(axis=0), X.std(axis=0)
    return {"scale": method, "offset": offset.tolist(), "span": span.tolist()}


def apply_scaling(X: ArrayLike, params: Mapping[str, Any]) -> np.ndarray:
    """Rescale ``X`` (N, D) with parameters from :func:`fit_table_scaling`.

    Returns ``(X - offset) / span`` computed in float64 and returned as float32; a column whose span
    is 0 (constant when fitted) is only shifted, so it maps to 0 instead of dividing by 0. With
    ``"none"`` (or parameters without a ``"scale"``) ``X`` is returned unchanged.
    """
    method = params.get("scale", "none")
    if method == "none":
        return np.asarray(X)
    if method not in SCALINGS:
        raise ValueError(f"Unknown scaling {method!r}; choose one of {', '.join(SCALINGS)}.")
    X = np.asarray(X, dtype=np.float64)
    offset = np.asarray(params["offset"], dtype=np.float64)
    span = np.asarray(params["span"], dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != offset.shape[0]:
        raise ValueError(
            f"The scaling was fitted to {offset.shape[0]} column(s) but got an array of shape {X.shape}."
        )
    span = np.where(span > 0, span, 1.0)
    return ((X - offset) / span).astype(np.float32)


def minmax_scale(X: ArrayLike) -> np.ndarray:
    """Rescale every column of ``X`` (N, D) to [0, 1] (computed in float64, returned as float32).

    >>> minmax_scale([[1.0, 5.0], [3.0, 5.0]])
    array([[0., 0.],
           [1., 0.]], dtype=float32)
    """
    return apply_scaling(X, fit_table_scaling(X, "minmax"))


def fit_scaling(X: ArrayLike, method: str) -> dict[str, Any]:
    """Deprecated: use :func:`fit_table_scaling` (same arguments).

    The old name clashed with :func:`flowmix.preprocessing.fit_scaling`, the estimator's, which
    takes its arguments the other way round. It will be removed in a later release.
    """
    warnings.warn(
        "flowmix.datasets.scaling.fit_scaling is renamed fit_table_scaling; the old name will be removed.",
        DeprecationWarning,
        stacklevel=2,
    )
    return fit_table_scaling(X, method)
