"""The affine map a fit applies to the data before anything else, and its exact effect on the density.

A :class:`FeatureScaling` maps x to z = (x - offset) / scale, per feature: by the median and the
interquartile range (``"robust"``), by the mean and the standard deviation (``"standardize"``),
by each feature's mean and one scale shared by all features (``"global"``) or not at all
(``"none"``, the paper presets'). The density is reported in the user's units through the change
of variables, log p_x(x) = log p_z(z) - sum(log scale), and samples are mapped back with
x = offset + scale * z.

Per-feature scales make the partition independent of the units of each feature (a table in
millimetres and kilograms, or one whose features range over 1e-3 and 1e3). On wide data of one
kind (pixels, embedding coordinates, spectra) they do harm: a pixel lit in a few images is
blown up to the weight of the digit's strokes, and a graph of the digits loses most of what
separates them (benchmarks/wide_data.py compares the maps on raw MNIST). ``"auto"`` therefore
scales each feature on its own below ``WIDE_FEATURES`` features and all features alike from
there on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PREPROCESSINGS = ("auto", "robust", "standardize", "global", "none")
#: Features from which data counts as wide: ``preprocessing="auto"`` scales all features alike
#: and ``subspace_dim="auto"`` (flowmix.subspace) fits principal subspaces. Tables of mixed units
#: seldom have that many columns; pixels, embeddings and spectra nearly always do.
WIDE_FEATURES = 48


@dataclass(frozen=True)
class FeatureScaling:
    """z = (x - offset) / scale, feature by feature.

    Attributes
    ----------
    offset : ndarray of shape (D,)
    scale : ndarray of shape (D,)
        Positive.
    """

    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def identity(cls, n_features: int) -> FeatureScaling:
        return cls(np.zeros(n_features), np.ones(n_features))

    @classmethod
    def standardize(cls, X: np.ndarray) -> FeatureScaling:
        """Each feature's mean and standard deviation; a constant feature keeps scale 1.

        Examples
        --------
        >>> s = FeatureScaling.standardize(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> s.offset.tolist(), s.scale.tolist()
        ([1.0, 5.0], [1.0, 1.0])
        """
        X = np.asarray(X, dtype=np.float64)
        return cls(X.mean(axis=0), _where_usable(X.std(axis=0), np.abs(X).max(axis=0), 1.0))

    @classmethod
    def robust(cls, X: np.ndarray) -> FeatureScaling:
        """Each feature's median and interquartile range, so a few outliers do not set the scale.

        A feature whose quartiles coincide (more than half of its values equal) is scaled by its
        standard deviation instead, and a constant one by 1.

        Examples
        --------
        >>> s = FeatureScaling.robust(np.array([[0.0], [1.0], [2.0], [3.0], [400.0]]))
        >>> s.offset.tolist(), s.scale.tolist()
        ([2.0], [2.0])
        """
        X = np.asarray(X, dtype=np.float64)
        low, median, high = np.percentile(X, [25, 50, 75], axis=0)
        magnitude = np.abs(X).max(axis=0)
        return cls(median, _where_usable(high - low, magnitude, _where_usable(X.std(axis=0), magnitude, 1.0)))

    @classmethod
    def global_scale(cls, X: np.ndarray) -> FeatureScaling:
        """Each feature's mean, and one scale for all: the root of the features' mean variance.

        The units the features share are kept, so features that hardly vary keep their small weight.

        Examples
        --------
        >>> s = FeatureScaling.global_scale(np.array([[0.0, 0.0], [2.0, 14.0]]))
        >>> s.offset.tolist(), s.scale.tolist()
        ([1.0, 7.0], [5.0, 5.0])
        """
        X = np.asarray(X, dtype=np.float64)
        spread = np.sqrt(X.var(axis=0).mean())
        return cls(X.mean(axis=0), np.full(X.shape[1], _where_usable(spread, np.abs(X).max(), 1.0)))

    @property
    def is_identity(self) -> bool:
        return bool(np.all(self.offset == 0) and np.all(self.scale == 1))

    @property
    def log_det(self) -> float:
        """``log |dz/dx| = -sum(log scale)``: added to a log density in z to give the log density in x."""
        return -float(np.log(self.scale).sum())

    def transform(self, X: np.ndarray) -> np.ndarray:
        """x -> z in X's dtype (the identity returns X itself, so the presets' bits do not change)."""
        if self.is_identity:
            return X
        return ((X - self.offset) / self.scale).astype(X.dtype, copy=False)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """z -> x."""
        if self.is_identity:
            return Z
        return (self.offset + self.scale * Z).astype(Z.dtype, copy=False)


def _where_usable(spread: np.ndarray, magnitude: np.ndarray, fallback: np.ndarray | float) -> np.ndarray:
    """``spread`` where a feature varies, ``fallback`` where it is (about) constant.

    Dividing by 0 would not be finite; the floor is relative to the feature's ``magnitude`` (its
    largest absolute value), so that float noise on a constant feature is not blown up into a spread.
    """
    tiny = 1e-12 * np.maximum(magnitude, 1e-300)
    return np.where(spread > tiny, spread, fallback)


def resolve_preprocessing(preprocessing: str, n_features: int) -> str:
    """What ``preprocessing`` stands for on data of ``n_features`` features (``"auto"`` resolved).

    Examples
    --------
    >>> resolve_preprocessing("auto", 13), resolve_preprocessing("auto", 784), resolve_preprocessing("none", 784)
    ('robust', 'global', 'none')
    """
    if preprocessing == "auto":
        return "global" if n_features >= WIDE_FEATURES else "robust"
    return preprocessing


def fit_scaling(preprocessing: str, X: np.ndarray) -> FeatureScaling:
    """The map that ``preprocessing`` (one of ``PREPROCESSINGS``) fits to the training data X."""
    preprocessing = resolve_preprocessing(preprocessing, X.shape[1])
    if preprocessing == "global":
        return FeatureScaling.global_scale(X)
    if preprocessing == "robust":
        return FeatureScaling.robust(X)
    if preprocessing == "standardize":
        return FeatureScaling.standardize(X)
    if preprocessing == "none":
        return FeatureScaling.identity(X.shape[1])
    raise ValueError(f"preprocessing must be one of {list(PREPROCESSINGS)}, got {preprocessing!r}.")
