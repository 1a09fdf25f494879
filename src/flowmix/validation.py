"""Checks of the data a FlowMixture is given: errors that say what to do, before anything is computed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data


def validate_X(estimator: BaseEstimator, X: Any, reset: bool) -> np.ndarray:
    """Check X and convert it to a finite float64 array of shape (n_samples, n_features).

    float64 keeps the user's precision through preprocessing (a feature of values near 1e4
    that vary by 1e-2 would lose it in float32); the model then sees float32.
    """
    if X is None:
        raise TypeError(
            "X is None; pass the data as an array-like of shape (n_samples, n_features), e.g. a "
            "numpy array, a list of rows or a DataFrame."
        )
    if isinstance(X, Mapping) and not hasattr(X, "toarray"):  # scipy's dok sparse format is a dict
        raise TypeError(
            f"X is a {type(X).__name__} of columns; pass it as a table instead, e.g. "
            "pandas.DataFrame(X) or np.column_stack(list(X.values()))."
        )
    ndim = getattr(X, "ndim", None)
    if ndim is None and not hasattr(X, "toarray") and not hasattr(X, "iloc"):
        try:
            ndim = np.ndim(X)
        except ValueError:  # ragged nested lists
            ndim = None
    if ndim == 0:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got the single value {X!r:.60}. "
            "Pass a table with one row per sample, e.g. [[value]] for one sample of one feature."
        )
    if ndim == 1:
        raise ValueError(
            "Expected a 2-D array of shape (n_samples, n_features), got a 1-D array. Reshape "
            "your data with X.reshape(-1, 1) if it has a single feature, or X.reshape(1, -1) "
            "if it is a single sample."
        )
    if ndim is not None and ndim > 2:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got a {ndim}-D array of "
            f"shape {np.shape(X)}. Flatten each sample first, e.g. X.reshape(len(X), -1)."
        )
    try:
        with np.errstate(over="ignore"):
            return validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_min_samples=1)
    except ValueError as err:
        text = str(err)
        if "could not convert" in text or "Cannot cast" in text:  # the second: pandas' string columns
            raise ValueError(
                f"X must be numeric: {text}. Encode or drop non-numeric columns before fitting."
            ) from err
        if "0 sample(s)" in text:
            raise ValueError(
                f"{text} X is empty: pass at least one row (check for an empty file or a filter "
                "that removed every row)."
            ) from err
        if "features, but" in text:
            raise ValueError(
                f"{text} Pass data with the columns used at fit time (apply the same "
                "preprocessing), or fit a new model on this data."
            ) from err
        if "NaN" in text or "infinity" in text:
            # float32's range ends near 3.4e38: larger finite values become inf on conversion.
            beyond = " (or values beyond float32's range, about 3.4e38, which rescaling fixes)"
            raise ValueError(
                f"{text.splitlines()[0]} FlowMixture needs finite values: drop or impute the "
                f"missing/infinite entries{beyond if 'too large' in text else ''} first (e.g. "
                "sklearn.impute.SimpleImputer)."
            ) from err
        if "Complex data not supported" in text:  # sklearn's message goes on to print all of X
            raise ValueError(
                "Complex data not supported: FlowMixture models real numbers. Pass the real part "
                "(X.real), the magnitude (np.abs(X)), or the real and imaginary parts as separate "
                "columns."
            ) from err
        if "0 feature(s)" in text:
            raise ValueError(f"{text} X has no columns: pass at least one feature.") from err
        if "inhomogeneous" in text or "setting an array element with a sequence" in text:
            raise ValueError(
                f"X must be a rectangular table of numbers, one number per cell and the same number "
                f"of features in every row; fix the rows or cells that differ ({text.splitlines()[0]})."
            ) from err
        raise
    except TypeError as err:
        if "Sparse data" in str(err):  # already says what to do (.toarray())
            raise
        raise TypeError(
            f"X must hold numbers only: {err}. Pass an array-like of numbers (encode or drop "
            "non-numeric columns and objects first)."
        ) from err


def in_float32(Z: np.ndarray) -> np.ndarray:
    """The preprocessed data as the model computes with it, or a ValueError beyond float32's range."""
    with np.errstate(over="ignore"):  # refused just below; numpy's warning would only come first
        out = Z.astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(
            "X holds values beyond float32's range (about 3.4e38) after preprocessing, and FlowMixture "
            "computes in float32: rescale those features first, or use preprocessing='robust'."
        )
    return out


def resolve_device(device: Any) -> torch.device:
    """The torch device named by ``device``, or a ValueError that says what to use instead."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but torch sees no CUDA GPU (torch.cuda.is_available() is "
            "False). Use device='cpu', or install a CUDA build of torch on a machine with a GPU."
        )
    return resolved


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    """Refuse anything but an integer of at least ``minimum`` (booleans included)."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        if minimum == 0:
            kind = "a non-negative integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")


def check_positive_number(name: str, value: Any) -> None:
    """Refuse anything but a positive finite number."""
    if not isinstance(value, Real) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
