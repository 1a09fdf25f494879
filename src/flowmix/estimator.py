"""FlowMixture: a scikit-learn estimator for mixtures of masked autoregressive flows."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from flowmix._memory import reuse_freed_memory
from flowmix.density import MixtureOfFlows
from flowmix.nn import ACTIVATIONS
from flowmix.presets import preset_params
from flowmix.training import train

CONFIG_FILE = "config.json"
TENSORS_FILE = "model.safetensors"
FORMAT_VERSION = 1
INITS = ("box", "unit", "kmeans")
# Activations held per evaluation chunk; bounds prediction memory whatever N is.
_CHUNK_FLOATS = 2**24


def resolve_device(device: str | torch.device) -> torch.device:
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


class FlowMixture(ClusterMixin, DensityMixin, BaseEstimator):
    """Mixture of K masked autoregressive flows, fitted by maximum likelihood.

    ``p(x) = sum_k pi_k MAF_k(x)``; each MAF_k is ``n_layers`` MADE networks on a diagonal
    normal base with a fixed mean and standard deviation ``base_std``. All components and all
    ``n_init`` restarts are trained together in one batched program; the restart with the lowest
    final training loss is kept.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components (clusters).
    hidden_units : tuple of int, default=(10,)
        Hidden layer widths of each MADE.
    n_layers : int, default=1
        MADE layers per flow, variable order reversed between layers (1 = the paper).
    activation : {"tanh", "relu", "elu", "gelu", "sigmoid"}, default="tanh"
    base_std : float, default=0.1
        Standard deviation of the base normals, in data units.
    init : {"box", "unit", "kmeans"}, default="box"
        Base means, fresh per component and restart: ``"box"`` draws them uniformly in the
        data's bounding box; ``"unit"`` draws them from U(0, 1)^D whatever the data (the
        paper's rule, used by the ``paper-*`` presets; the same as ``"box"`` on min-max scaled
        data); ``"kmeans"`` puts them at k-means centroids (one k-means run per restart).
    n_epochs : int, default=2000
    batch_size : int, default=4000
    learning_rate : float, default=1e-3
        Adam step size (other Adam settings are TensorFlow's defaults, as the paper).
    n_init : int, default=1
        Restarts, trained together; the one with the lowest final loss is kept.
    shuffle : bool, default=True
        Draw a new mini-batch order each epoch.
    device : str, default="cpu"
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    random_state : int, RandomState or None, default=None
    verbose : bool, default=False
        Show a progress bar with the loss.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    base_means_ : ndarray of shape (n_components, n_features)
    loss_curve_ : ndarray of shape (n_iter_,)
        Mean training NLL per epoch of the kept restart.
    losses_ : ndarray of shape (n_init, n_epochs_run)
        The same for every restart; NaN after a restart stopped on a non-finite loss.
    best_restart_ : int
    n_iter_ : int
        Epochs the kept restart ran.
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training point.
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from flowmix import FlowMixture
    >>> X, _ = make_moons(200, noise=0.05, random_state=0)
    >>> model = FlowMixture(2, n_epochs=50, random_state=0).fit(X)
    >>> model.predict(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        hidden_units: Sequence[int] = (10,),
        n_layers: int = 1,
        activation: str = "tanh",
        base_std: float = 0.1,
        init: str = "box",
        n_epochs: int = 2000,
        batch_size: int = 4000,
        learning_rate: float = 1e-3,
        n_init: int = 1,
        shuffle: bool = True,
        device: str = "cpu",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.hidden_units = hidden_units
        self.n_layers = n_layers
        self.activation = activation
        self.base_std = base_std
        self.init = init
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.shuffle = shuffle
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def from_preset(cls, name: str, n_components: int, **overrides: Any) -> FlowMixture:
        """An estimator with the paper's settings ``name`` (see :mod:`flowmix.presets`)."""
        params = preset_params(name)
        params.update(overrides)
        return cls(n_components, **params)

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        callback: Callable[[int, MixtureOfFlows], None] | None = None,
        callback_every: int = 50,
    ) -> FlowMixture:
        """Fit the mixture to X of shape (n_samples, n_features).

        ``callback(epoch, density)``, if given, is called every ``callback_every`` epochs with
        the batched torch module of all restarts (for example to record density snapshots).
        """
        self._check_params()
        X = self._validate_X(X, reset=True)
        n_samples = X.shape[0]
        if n_samples < self.n_components:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_components={self.n_components}: each "
                "component needs at least one sample. Lower n_components or pass more data."
            )
        device = self._torch_device()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        means = self._initial_means(X, seed)
        init_gen = torch.Generator().manual_seed(seed)
        density = MixtureOfFlows(
            torch.from_numpy(means),
            self.base_std,
            tuple(self.hidden_units),
            self.n_layers,
            self.activation,
            init_gen,
        ).to(device)
        # Points as columns (D, N), built once: the layout of every layer (see flowmix.nn).
        columns = torch.as_tensor(np.ascontiguousarray(X.T), dtype=torch.float32, device=device)
        result = train(
            density,
            columns,
            n_epochs=self.n_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            shuffle=self.shuffle,
            generator=torch.Generator().manual_seed(seed + 1),
            verbose=self.verbose,
            callback=callback,
            callback_every=callback_every,
        )
        failed = np.flatnonzero(result.stopped_epoch >= 0)
        if failed.size == self.n_init:
            raise ValueError(
                f"All {self.n_init} restarts diverged (the loss became NaN or inf). Try a smaller "
                "learning_rate, scaling the data (e.g. MinMaxScaler or StandardScaler), a larger "
                "base_std, or more restarts (n_init)."
            )
        if failed.size:
            warnings.warn(
                f"{failed.size} of {self.n_init} restarts stopped early because their loss became "
                f"NaN or inf (restarts {failed.tolist()}); they were not considered.",
                RuntimeWarning,
                stacklevel=2,
            )
        final = np.where(result.stopped_epoch >= 0, np.inf, result.losses[:, -1])
        best = int(np.argmin(final))
        # Inference runs in float64: results for a point then depend on which other points share
        # its batch only in the last bits (about 1e-14; float32 GEMMs round visibly differently
        # with the batch shape).
        self.density_ = density.take_restart(best).double()
        self.losses_ = result.losses
        self.loss_curve_ = result.losses[best].copy()
        self.best_restart_ = best
        self.n_iter_ = result.n_epochs_run
        self.weights_ = self.density_.log_weights()[0].exp().detach().cpu().numpy().astype(np.float64)
        self.base_means_ = self.density_.base_means[0].cpu().numpy().astype(np.float64)
        self.labels_ = self._joint_log_prob_array(X).argmax(axis=1)
        return self

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the cluster of each training point."""
        return self.fit(X, y, **fit_params).labels_

    def _initial_means(self, X: np.ndarray, seed: int) -> np.ndarray:
        """(n_init, K, D) base means, fresh per component and per restart."""
        rng = np.random.RandomState(seed)
        shape = (self.n_init, self.n_components, X.shape[1])
        if self.init == "unit":
            return rng.uniform(size=shape).astype(np.float32)
        if self.init == "box":
            low, high = X.min(axis=0), X.max(axis=0)
            return (low + (high - low) * rng.uniform(size=shape)).astype(np.float32)
        from sklearn.cluster import KMeans

        centres = [
            KMeans(self.n_components, n_init=1, random_state=rng.randint(2**31 - 1)).fit(X).cluster_centers_
            for _ in range(self.n_init)
        ]
        return np.stack(centres).astype(np.float32)

    # --------------------------------------------------------------- inference

    def _joint_log_prob(self, X: Any) -> np.ndarray:
        """log pi_k + log MAF_k(x) for every point: (N, K) float64, computed in chunks."""
        check_is_fitted(self, "density_")
        return self._joint_log_prob_array(self._validate_X(X, reset=False))

    @reuse_freed_memory()
    def _joint_log_prob_array(self, X: np.ndarray) -> np.ndarray:
        """As :meth:`_joint_log_prob` for an already validated array."""
        density = self.density_
        device = density.logits.device
        per_point = self.n_components * (sum(self.hidden_units) * self.n_layers + 4 * X.shape[1])
        chunk = max(1, _CHUNK_FLOATS // per_point)
        out = np.empty((X.shape[0], self.n_components), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                part = torch.as_tensor(X[start : start + chunk], dtype=torch.float64, device=device)
                out[start : start + chunk] = density.joint_log_prob(part)[0].T.cpu().numpy()
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Cluster of each point: argmax_k log pi_k + log MAF_k(x)."""
        return self._joint_log_prob(X).argmax(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
        joint = self._joint_log_prob(X)
        joint -= joint.max(axis=1, keepdims=True)
        proba = np.exp(joint)
        return proba / proba.sum(axis=1, keepdims=True)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log density of each point under the mixture, shape (n_samples,)."""
        joint = self._joint_log_prob(X)
        top = joint.max(axis=1)
        return top + np.log(np.exp(joint - top[:, None]).sum(axis=1))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log density of X."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the fitted mixture; returns (X (n, D), component labels (n,))."""
        check_is_fitted(self, "density_")
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        x, labels = self.density_.sample(int(n_samples), torch.Generator().manual_seed(seed))
        return x.cpu().numpy().astype(np.float64), labels.cpu().numpy()

    def n_parameters(self) -> int:
        """Free parameters of the fitted mixture (masked-out weights excluded)."""
        check_is_fitted(self, "density_")
        return self.density_.n_free_parameters()

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        n = len(X)
        return -2 * self.score(X) * n + self.n_parameters() * math.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        return -2 * self.score(X) * len(X) + 2 * self.n_parameters()

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to directory ``path``: config.json and model.safetensors.

        The pair is written to a temporary directory that then takes the place of ``path``, so
        an interrupted save never leaves a half-written model behind.
        """
        from safetensors.torch import save_file

        check_is_fitted(self, "density_")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory; choose a directory path for the model.")
        if path.is_dir() and any(path.iterdir()) and not (path / CONFIG_FILE).is_file():
            raise ValueError(
                f"{path} is a non-empty directory that holds no flowmix model; choose a new or empty "
                "directory so that nothing else is overwritten."
            )
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.density_.state_dict().items()}
        tensors["loss_curve"] = torch.as_tensor(self.loss_curve_)
        tensors["losses"] = torch.as_tensor(self.losses_)
        params = self.get_params()
        params["hidden_units"] = list(params["hidden_units"])
        if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
            params["random_state"] = None  # a RandomState object has no JSON form
        config = {
            "format": "flowmix-model",
            "format_version": FORMAT_VERSION,
            "params": params,
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": list(map(str, getattr(self, "feature_names_in_", []))) or None,
            "best_restart": self.best_restart_,
            "n_iter": self.n_iter_,
        }
        # Both files go to a temporary sibling directory that then replaces ``path``: a model
        # directory always holds a matching pair, whatever interrupts the save.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        try:
            tmp.mkdir()
            save_file(tensors, str(tmp / TENSORS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
            if path.exists():
                path.rename(old)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> FlowMixture:
        """Read a model written by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        from safetensors.torch import load_file

        path = Path(path)
        config_path, tensors_path = path / CONFIG_FILE, path / TENSORS_FILE
        if not config_path.is_file() or not tensors_path.is_file():
            raise FileNotFoundError(
                f"{path} is not a saved FlowMixture: expected {CONFIG_FILE} and {TENSORS_FILE} in it "
                "(write one with FlowMixture.save)."
            )
        config = json.loads(config_path.read_text())
        if config.get("format") != "flowmix-model" or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{config_path} is not a flowmix model file of format version {FORMAT_VERSION}.")
        params = config["params"]
        params["hidden_units"] = tuple(params["hidden_units"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        tensors = load_file(str(tensors_path))
        k, d = params["n_components"], config["n_features_in"]
        density = MixtureOfFlows(
            torch.zeros(1, k, d),
            params["base_std"],
            params["hidden_units"],
            params["n_layers"],
            params["activation"],
        ).double()
        density.load_state_dict({key: v for key, v in tensors.items() if key not in ("loss_curve", "losses")})
        model.density_ = density.to(model._torch_device())
        model.loss_curve_ = tensors["loss_curve"].numpy()
        model.losses_ = tensors["losses"].numpy()
        model.best_restart_ = config["best_restart"]
        model.n_iter_ = config["n_iter"]
        model.n_features_in_ = d
        if config.get("feature_names_in"):
            model.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
        model.weights_ = density.log_weights()[0].exp().detach().numpy().astype(np.float64)
        model.base_means_ = density.base_means[0].numpy().astype(np.float64)
        return model

    # -------------------------------------------------------------- validation

    def _torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def _check_params(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

        for name in ("n_components", "n_layers", "n_epochs", "batch_size", "n_init"):
            positive_int(name)
        for name in ("base_std", "learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
        hidden = self.hidden_units
        if isinstance(hidden, Integral):
            raise TypeError(
                f"hidden_units must be a tuple of layer widths, e.g. ({hidden},), got {hidden!r}."
            )
        if not all(isinstance(h, Integral) and h >= 1 for h in hidden) or len(hidden) == 0:
            raise ValueError(f"hidden_units must be a non-empty tuple of positive integers, got {hidden!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}.")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}.")

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        """Check X and convert it to a finite float32 array of shape (n_samples, n_features)."""
        ndim = getattr(X, "ndim", None)
        if ndim is None and not hasattr(X, "toarray") and not hasattr(X, "iloc"):
            try:
                ndim = np.ndim(X)
            except ValueError:  # ragged nested lists
                ndim = None
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
            return validate_data(self, X, reset=reset, dtype=np.float32, ensure_min_samples=1)
        except ValueError as err:
            text = str(err)
            if "could not convert" in text:
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
                raise ValueError(
                    f"{text.splitlines()[0]} FlowMixture needs finite values: drop or impute the "
                    "missing/infinite entries first (e.g. sklearn.impute.SimpleImputer)."
                ) from err
            raise

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
