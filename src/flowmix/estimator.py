"""FlowMixture: a scikit-learn estimator for mixtures of normalizing flows.

A thin shell: ``fit`` validates, preprocesses, checks the memory plan, runs the recipe
(:mod:`flowmix.recipes`, which trains through :class:`flowmix.fitting.Trainer`) and stores the
fitted mixture it returns (:class:`flowmix.fitted.FittedMixture`). The settings' defaults and
constraints live in :mod:`flowmix._params`; inference in :mod:`flowmix.inference`.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from flowmix import _params, persistence
from flowmix.density import MixtureOfFlows
from flowmix.dequantization import jittered, lattice_steps, snap_to_lattice
from flowmix.distributed import distribution_for
from flowmix.fitting import Trainer
from flowmix.inference import in_dtype, joint_log_prob, torch_inference_dtype
from flowmix.memory_budget import plan_fit, resolve_budget
from flowmix.options import Checkpointing, EarlyStopping
from flowmix.preprocessing import fit_scaling
from flowmix.presets import preset_params
from flowmix.recipes import Data, Recipe
from flowmix.recipes import resolve as resolve_recipe
from flowmix.validation import in_float32, resolve_device, validate_X

_DEFAULTS = _params.defaults()


class FlowMixture(ClusterMixin, DensityMixin, BaseEstimator):
    """Mixture of K normalizing flows for clustering and density estimation.

    ``p(x) = sum_k pi_k flow_k(x)``; each flow_k maps x to a latent z with a normal base of
    fixed location and scale (diagonal, or its cluster's full covariance). All components and
    restarts are trained together in one batched program. The default recipe
    (:mod:`flowmix.recipes`, the user guide's "recipe" page) lets Genie, spectral clustering and
    a Gaussian mixture propose partitions, keeps one by the normalised cut of the kNN graph, and
    trains spline flows from it; :meth:`from_preset` gives the paper's settings.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components (clusters).
    flow : {"spline", "maf"}, default="spline"
        Flow family of the components: ``"spline"``, autoregressive rational-quadratic spline
        flows (Durkan et al., 2019), which can model rings, spirals and other non-convex shapes;
        ``"maf"``, masked autoregressive flows with affine layers (the paper's).
    flow_params : dict, default=None
        Architecture and options of each component's density: ``hidden_units`` (tuple of
        hidden layer widths of each layer's MADE; (64,) for ``"spline"``, (10,) for
        ``"maf"``), ``n_layers`` (flow layers, variable order reversed between them; 3 for
        ``"spline"``, 1 for ``"maf"``), ``activation`` ("tanh", "relu", "elu", "gelu",
        "sigmoid"; "tanh"), the family's own options (``"spline"``: ``n_bins``, 8, and
        ``bound_margin``, 0.1), and ``subspace_dim`` (int, "auto" or None; "auto"): on wide data
        each component's flow models only that many leading principal directions of its start
        cluster and a normal the rest (:mod:`flowmix.subspace`), at a cost about linear in the
        number of features; "auto" takes, from 48 features on, the fewest directions that hold
        90% of the within-cluster variance (at most 24); None: flows on every feature.
    preprocessing : {"auto", "robust", "standardize", "global", "none"}, default="auto"
        The per-feature affine map fitted to the data before anything else
        (:mod:`flowmix.preprocessing`, kept as ``feature_scaling_``): ``"robust"`` centres each
        feature on its median and divides it by its interquartile range, ``"standardize"`` by
        its mean and standard deviation; either way the partition does not depend on the
        features' units. ``"global"`` centres each feature on its mean and divides all by one
        scale, keeping the units the features share (pixels). ``"auto"``: ``"robust"`` below
        48 features, ``"global"`` from 48 on (wide data is nearly always of one kind, and
        per-feature scales blow faint pixels up). ``"none"`` fits the data as given (the
        presets). Densities and samples are in the user's units whatever the map.
    dequantize : "auto", None or array-like of shape (n_features,), default="auto"
        Features whose values lie on a lattice (counts, ratings, 8-bit pixels given as
        integers) are trained on with fresh uniform noise of one lattice step every epoch
        (:mod:`flowmix.dequantization`), so that no flow can pile its density onto the
        lattice points and drive its loss to minus infinity. ``"auto"``: step 1 on every
        feature whose values are all integers and not all equal. An array: each feature's step
        in the data's units (0 for a continuous one), e.g. ``np.full(784, 1 / 255)`` for pixels
        divided by 255. None: the data as given. Only the training steps see the noise; the
        density at a lattice point approximates its cell's probability over the cell's
        width, and :meth:`sample` rounds those features to the lattice.
    recipe : {"auto", "candidates", "single"} or flowmix.recipes.Recipe, default="auto"
        How the fit is composed (:mod:`flowmix.recipes`; the fitted model keeps what ran and why
        as ``recipe_trace_``). ``"candidates"``: Genie, spectral clustering and a Gaussian
        mixture (the most likely of 10 EM runs) propose partitions; the flows are trained from
        the best graph partition where its normalised cut is more than 1.2 times lower than the
        Gaussian mixture's (hard EM), else from the Gaussian mixture's posteriors (full
        covariances, soft EM, early stopping). ``"single"``: one training with this estimator's
        settings. ``"auto"``: ``"candidates"`` while ``init`` and ``covariance_type`` are
        ``"auto"``, else ``"single"``. ``init``, ``covariance_type``, ``algorithm``,
        ``early_stopping`` and ``n_init`` given explicitly (not ``"auto"``) replace the recipe's
        own; a recipe object (e.g. ``SingleFit(selection="graph-cut", pretrain_epochs=20)``)
        sets the rest of the training (:class:`flowmix.recipes.Training`).
    init : str or array-like, default="auto"
        Initialisation strategy (flowmix.init). Cluster starts, which locate, scale and weight
        each component from its cluster and pretrain its flow on it (the recipe's ``pretrain_epochs``):
        ``"auto"`` (the recipe chooses; a single fit's restarts start from ``"spectral"``,
        ``"gmm"`` and ``"kmeans-partition"`` in turn), ``"spectral"`` (spectral clustering of
        the nearest-neighbour graph, restarts cycling through 10, 5 and 20 neighbours),
        ``"genie"`` (Genie's cut of the minimum spanning tree, :mod:`flowmix.genie`, restarts
        cycling through Gini thresholds 0.3, 0.5 and 0.7),
        ``"gmm"`` (full-covariance GMM posteriors), ``"gmm-best"`` (the posteriors of the most
        likely of 10 GMM runs), ``"kmeans-partition"`` (k-means clusters),
        or an array of labels (n_samples,) or responsibilities (n_samples, n_components).
        Base means only: ``"box"`` (uniform in the data's bounding box), ``"unit"``
        (U(0, 1)^D, the paper's rule), ``"kmeans"`` (k-means centroids).
    algorithm : {"auto", "hard-em", "soft-em", "annealed-em", "mle"}, default="auto"
        Training algorithm (:mod:`flowmix.training`): EM with hard assignments, posteriors, or
        posteriors tempered from T = 4 to 1, each with Adam steps on the flows between E-steps;
        or direct maximum likelihood (the paper's). ``"auto"``: the recipe's choice.
    covariance_type : {"auto", "full", "diag"}, default="auto"
        Base normals of the cluster starts: ``"full"``, each component's base is its cluster's
        covariance (shrunk towards its diagonal when the cluster has few points), so that the
        mixture starts as the start's Gaussian mixture; ``"diag"``, per-dimension scales only.
        ``"auto"``: the recipe's choice (``"diag"`` for a single fit). Starts that give base
        means only (``"box"``, ``"unit"``, ``"kmeans"``) use the recipe's ``base_std``.
    n_init : int or "auto", default="auto"
        Restarts, trained together; the recipe's selection rule keeps one. ``"auto"``: the
        recipe's choice (3 for a single fit, whose restarts start apart; 1 for the candidates
        recipe, whose restarts would all start from the partition it keeps).
    n_epochs : int, default=200
        Epochs of ``algorithm`` at most (fewer where a stopping rule ends it).
    batch_size : int or "auto", default="auto"
        Points per mini-batch. ``"auto"``: half of the training points, within
        [512, 2048] (:mod:`flowmix.memory_budget`), so that a data set of up to
        4096 points takes at most two steps an epoch (a fit's time on small data is the count of
        its steps, which cost about the same there; the rule's measurements are in
        docs/user_guide/recipe.rst).
    learning_rate : float, default=3e-3
        Adam step size (other Adam settings are TensorFlow's defaults, as the paper).
    early_stopping : bool, "auto" or flowmix.EarlyStopping, default="auto"
        Hold out ``validation_fraction`` of the points and stop each restart once their NLL has
        not improved for a while (:class:`flowmix.EarlyStopping` sets the patience and
        tolerance; True takes its defaults); each restart keeps its best epoch's parameters.
        ``"auto"``: the recipe's choice (on for full-covariance bases).
    validation_fraction : float, default=0.1
        Share of the points held out for early stopping and held-out selections (one split,
        never used for training; an ``init`` array's labels of those points are not used).
    device : str, default="cpu"
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    inference_dtype : {"float32", "float64"}, default="float32"
        Precision of ``predict``, ``predict_proba``, ``score_samples``, ``score``, ``sample``
        and of ``labels_``; read when they run, so ``set_params`` changes it without refitting.
        ``"float32"`` uses the trained float32 parameters as they are, with the flow family's
        float32 kernel where it has one (flowmix.inference). Either way a point's results do
        not depend on the other points of the call (float32 runs fixed-width blocks; float64
        chunks move them by about 1e-14 at most). ``"float64"`` runs a float64 copy of the
        density, the reference arithmetic in which the paper presets' results equal flowmix
        0.1.0's bit for bit. Models saved before this parameter existed load with
        ``"float64"``, as they predicted.
    max_memory : int or "auto", default="auto"
        Bytes a fit may use at its peak (flowmix.memory_budget): parameters with their gradients and
        Adam's moments, the training points, and one mini-batch step's activations, estimated
        from the architecture before anything is allocated. ``"auto"``: half of the memory
        available when ``fit`` starts (RAM, or the GPU's free memory). Where the estimate is
        above it, ``batch_size="auto"`` takes a smaller mini-batch that fits; otherwise ``fit``
        refuses with a ValueError that names the settings to change. Prediction and scoring keep
        the model, one chunk of points and the (N, K) outputs within it (smaller chunks where
        needed, flowmix.inference), and refuse the same way where even one chunk does not fit.
    checkpoint : str, path, flowmix.Checkpointing or None, default=None
        A folder where the fit writes a checkpoint (model, Adam state, random generator state,
        epoch, losses so far) atomically, every 10 epochs and at the end of each phase
        (:class:`flowmix.Checkpointing` sets how often). If it already holds a checkpoint of the
        same settings and data, ``fit`` continues from it; the result is bit-identical to an
        uninterrupted fit on the same machine (with ``random_state=None`` the interrupted fit's
        seed is reused). A checkpoint of other settings or data is refused.
    distributed : {None, "restarts", "data"}, default=None
        Share the fit among the processes of a torch.distributed process group (started by
        torchrun), each calling ``fit`` with the same data and settings (flowmix.distributed):
        ``"restarts"`` splits the ``n_init`` restarts over the processes (the result equals one
        process's); ``"data"`` splits every mini-batch and averages gradients with
        DistributedDataParallel (equal to one process within float tolerance). With
        ``device="cuda"`` each process uses the GPU of its ``LOCAL_RANK``.
    random_state : int, RandomState or None, default=None
    verbose : bool, default=False
        Show progress: a bar with the loss on a terminal, one log line per stage otherwise
        (logger ``flowmix.progress``).

    Attributes
    ----------
    selection_scores_ : ndarray of shape (n_restarts,) or None
        Every restart's score under the kept fit's selection rule (lower is better; inf for a
        stopped restart). None for a model loaded from a file.
    memory_plan_ : flowmix.memory_budget.FitPlan or None
        The last fit's memory plan: the mini-batch size it trained with and its estimated peak
        in bytes (``memory_plan_.peak``) within ``memory_plan_.budget``; None for a loaded model.
    feature_scaling_ : flowmix.preprocessing.FeatureScaling
        The map z = (x - offset) / scale that ``preprocessing`` fitted; the flows, base means,
        scales and covariances live in z.
    dequantization_steps_ : ndarray of shape (n_features,) or None
        Each feature's lattice step that ``dequantize`` resolved to (0: continuous), or None
        where no feature was dequantised.
    subspace_dim_ : int or None
        The dimension of the components' principal subspaces, or None where the flows model
        every feature.
    empty_components_ : ndarray of int
        Components that no training point belongs to after fitting.
    weights_ : ndarray of shape (n_components,)
    base_means_ : ndarray of shape (n_components, n_features)
        On principal subspaces (``subspace_dim_``), the subspaces' centres; ``base_scales_`` are
        then the per-feature standard deviations of each component's base normal in the
        (preprocessed) data's coordinates.
    base_scales_ : ndarray of shape (n_components, n_features)
        Standard deviations of the base normals (the recipe's ``base_std`` unless ``init`` set them).
    base_covariances_ : ndarray of shape (n_components, n_features, n_features) or None
        Covariances of full-covariance base normals (a full-covariance fit with a cluster
        start), else None.
    covariance_type_ : {"full", "diag"}
        The bases the kept model has: ``"full"`` with base covariances, else ``"diag"``.
    algorithm_ : str or None
        The training algorithm of the kept fit (``algorithm="auto"`` resolved); None for a model
        loaded from a file with ``algorithm="auto"``.
    recipe_ : flowmix.recipes.Recipe
        The recipe that ran (``recipe`` resolved).
    recipe_trace_ : flowmix.recipes.Trace
        What the recipe ran and why, step by step: each candidate's score, the decision, the
        settings of the training, and any component left without a point. None for a model
        loaded from a file.
    loss_curve_ : ndarray of shape (``n_iter_``,)
        Mean training loss per epoch of the kept restart.
    losses_ : ndarray of shape (n_restarts, n_epochs_run)
        The same for every restart the kept fit trained (one for the candidates recipe); NaN
        after a restart stopped, on a non-finite loss or by a stopping rule.
    batch_mean_losses_ : ndarray of shape (n_restarts, n_epochs_run) or None
        ``losses_`` with each epoch's batches weighted equally instead of by their size: the
        epoch loss of the paper's reference code, whose lowest final value picked its run (it
        differs when the last batch is smaller). None for a model loaded from a file.
    best_restart_ : int
    n_iter_ : int
        Epochs the kept restart trained (fewer than ``n_epochs`` where it stopped early or its
        partition held).
    best_epoch_ : int or None
        With ``early_stopping``: the epoch (0-based) whose parameters the kept restart holds.
    validation_loss_curve_ : ndarray of shape (``n_iter_``,) or None
        With ``early_stopping``: the kept restart's validation NLL after every epoch.
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
    >>> spline = FlowMixture(2, flow="spline", flow_params={"n_bins": 4}, n_epochs=5).fit(X)
    >>> spline.score_samples(X[:2]).shape
    (2,)
    """

    def __init__(
        self,
        n_components: int = _DEFAULTS["n_components"],
        *,
        flow: str = _DEFAULTS["flow"],
        flow_params: Mapping[str, Any] | None = _DEFAULTS["flow_params"],
        preprocessing: str = _DEFAULTS["preprocessing"],
        dequantize: str | ArrayLike | None = _DEFAULTS["dequantize"],
        recipe: str | Recipe = _DEFAULTS["recipe"],
        init: str | np.ndarray = _DEFAULTS["init"],
        algorithm: str = _DEFAULTS["algorithm"],
        covariance_type: str = _DEFAULTS["covariance_type"],
        n_init: int | str = _DEFAULTS["n_init"],
        n_epochs: int = _DEFAULTS["n_epochs"],
        batch_size: int | str = _DEFAULTS["batch_size"],
        learning_rate: float = _DEFAULTS["learning_rate"],
        early_stopping: bool | str | EarlyStopping = _DEFAULTS["early_stopping"],
        validation_fraction: float = _DEFAULTS["validation_fraction"],
        device: str = _DEFAULTS["device"],
        inference_dtype: str = _DEFAULTS["inference_dtype"],
        max_memory: int | str = _DEFAULTS["max_memory"],
        checkpoint: str | os.PathLike[str] | Checkpointing | None = _DEFAULTS["checkpoint"],
        distributed: str | None = _DEFAULTS["distributed"],
        random_state: Any = _DEFAULTS["random_state"],
        verbose: bool = _DEFAULTS["verbose"],
        **moved: Any,
    ):
        _params.refuse_moved(moved)  # parameters of earlier versions: say where they went
        self.n_components = n_components
        self.flow = flow
        self.flow_params = flow_params
        self.preprocessing = preprocessing
        self.dequantize = dequantize
        self.recipe = recipe
        self.init = init
        self.algorithm = algorithm
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.device = device
        self.inference_dtype = inference_dtype
        self.max_memory = max_memory
        self.checkpoint = checkpoint
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def from_preset(cls, name: str, n_components: int, **overrides: Any) -> FlowMixture:
        """An estimator with the paper's settings ``name`` (see :mod:`flowmix.presets`).

        ``overrides`` are estimator parameters or fields of the preset's training
        (:class:`flowmix.recipes.Training`, e.g. ``batch_order="per-restart"``).
        """
        return cls(n_components, **preset_params(name, **overrides))

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        callback: Callable[[int, MixtureOfFlows], None] | None = None,
        callback_every: int = 50,
    ) -> FlowMixture:
        """Fit the mixture to X of shape (n_samples, n_features): preprocess, then run the recipe.

        The recipe (:mod:`flowmix.recipes`, ``recipe_trace_``) decides which start to train and
        how. ``callback(epoch, density)``, if given, is called every ``callback_every`` epochs
        with the batched torch module of all restarts (for example to record density snapshots).
        """
        params = self.get_params(deep=False)
        _params.validate(params)
        recipe = resolve_recipe(self.recipe, params)
        _params.check_recipe(recipe, params)
        X = validate_X(self, X, reset=True)
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_components={self.n_components}: each "
                "component needs at least one sample. Lower n_components or pass more data."
            )
        device = resolve_device(self.device)
        steps = lattice_steps(self.dequantize, X)
        # Refused here, before any candidate is computed, if the recipe's largest fit cannot fit.
        plan_fit(params, X.shape[0], X.shape[1], recipe.max_restarts, device, steps is not None)
        scaling = fit_scaling(self.preprocessing, X)
        Z = in_float32(scaling.transform(X))
        widths = None if steps is None else steps / scaling.scale  # the steps in the units of Z
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # What the candidates and starts see: on a lattice, the points with their ties broken.
        seen = Z if widths is None else jittered(Z, widths, seed)
        trainer = Trainer(
            Z,
            params,
            seed,
            device,
            distribution_for(self.distributed),
            noise_widths=widths,
            start_X=seen,
            callback=callback,
            callback_every=callback_every,
        )
        outcome = recipe.run(Data(seen, self.n_components, seed, trainer.can_hold_out), trainer)
        self._store(outcome.fitted.attributes())
        self.recipe_ = recipe
        self.recipe_trace_ = outcome.trace
        self.feature_scaling_ = scaling
        self.dequantization_steps_ = steps
        return self

    def _store(self, attributes: Mapping[str, Any]) -> None:
        """Set the fitted attributes (names without their trailing underscore) of a fit or a model file."""
        for name, value in attributes.items():
            setattr(self, f"{name}_", value)

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the cluster of each training point."""
        return self.fit(X, y, **fit_params).labels_

    # --------------------------------------------------------------- inference

    def _joint_log_prob(self, X: Any) -> np.ndarray:
        """log pi_k + log flow_k(x) for every point: (N, K) float64, computed in chunks."""
        check_is_fitted(self, "density_")
        Z = in_float32(self.feature_scaling_.transform(validate_X(self, X, reset=False)))
        budget = resolve_budget(self.max_memory, self.density_.logits.device)
        return joint_log_prob(self.density_, Z, self.inference_dtype, budget)

    def predict(self, X: Any) -> np.ndarray:
        """Cluster of each point: argmax_k log pi_k + log flow_k(x)."""
        return self._joint_log_prob(X).argmax(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
        joint = self._joint_log_prob(X)
        joint -= joint.max(axis=1, keepdims=True)
        proba = np.exp(joint)
        return proba / proba.sum(axis=1, keepdims=True)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log density of each point under the mixture in the units of X, shape (n_samples,).

        The mixture is fitted on the preprocessed data (``feature_scaling_``); the log-determinant
        of that map is added, so the density integrates to 1 over the user's space.
        """
        joint = self._joint_log_prob(X)
        top = joint.max(axis=1)
        return top + np.log(np.exp(joint - top[:, None]).sum(axis=1)) + self.feature_scaling_.log_det

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log density of X."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the fitted mixture; returns (X (n, D), component labels (n,))."""
        check_is_fitted(self, "density_")
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        density = in_dtype(self.density_, torch_inference_dtype(self.inference_dtype))
        x, labels = density.sample(int(n_samples), torch.Generator().manual_seed(seed))
        x = self.feature_scaling_.inverse_transform(x.cpu().numpy().astype(np.float64))
        return snap_to_lattice(x, self.dequantization_steps_), labels.cpu().numpy()

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
        """Write the fitted model to directory ``path`` (see :mod:`flowmix.persistence`)."""
        check_is_fitted(self, "density_")
        return persistence.save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> FlowMixture:
        """Read a model written by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        saved = persistence.load_model(path, device)
        model = cls(**saved.params)
        model._store({**saved.fitted.attributes(), **saved.attributes})
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


# Introspection (scikit-learn's get_params and checks, the documentation) shows the parameters only:
# ``**moved`` exists to name the new spelling of a parameter of an earlier version.
_signature = inspect.signature(FlowMixture.__init__)
FlowMixture.__init__.__signature__ = _signature.replace(
    parameters=[p for p in _signature.parameters.values() if p.kind != p.VAR_KEYWORD]
)
