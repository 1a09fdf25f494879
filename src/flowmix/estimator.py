"""FlowMixture: a scikit-learn estimator for mixtures of normalizing flows.

``fit`` is a short template over three seams, each a registry of small functions chosen by name:
initialisation (flowmix.init) -> training algorithm (flowmix.training) -> selection of the kept
restart (flowmix.selection). The components' flows come from a flow family (flowmix.flows).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from flowmix._denormals import flush_denormals
from flowmix._memory import reuse_freed_memory
from flowmix.batch_order import BATCH_ORDERS
from flowmix.checkpoint import FitCheckpoint, Resumed, fingerprint
from flowmix.density import MixtureOfFlows
from flowmix.dequantization import check_dequantize, jittered, lattice_steps, snap_to_lattice
from flowmix.dequantization import plain as plain_dequantize
from flowmix.distributed import (
    MODES,
    DataParallel,
    broadcast_module,
    gather_result,
    gather_rows,
    group_max,
    require_group,
    restart_block,
    world,
)
from flowmix.flows import FLOW_FAMILIES, check_flow_params, make_flow
from flowmix.inference import Inference, in_dtype, torch_inference_dtype
from flowmix.init import (
    INITIALISATIONS,
    Start,
    from_user_assignments,
    initialise,
    one_hot,
    shrunk_covariances,
)
from flowmix.memory_budget import FitPlan, fit_plan, flow_footprint, resolve_budget
from flowmix.nn import ACTIVATIONS
from flowmix.preprocessing import PREPROCESSINGS, fit_scaling
from flowmix.presets import preset_params
from flowmix.recipes import Data as RecipeData
from flowmix.recipes import Fit, Recipe
from flowmix.recipes import resolve as resolve_recipe
from flowmix.selection import SELECTIONS, select
from flowmix.subspace import fit_subspaces, largest_dim, own_coordinates
from flowmix.subspace import floats_per_point as subspace_floats_per_point
from flowmix.training import (
    ALGORITHMS,
    TrainConfig,
    TrainResult,
    get_algorithm,
    pretrain,
    truncate_posteriors,
)

# Parameters that change where or how visibly a fit runs, not its result: a checkpoint written
# under other values of these still belongs to the same fit.
_NOT_FINGERPRINTED = frozenset(
    {
        "verbose",
        "device",
        "random_state",
        "checkpoint_dir",
        "checkpoint_every_epochs",
        "checkpoint_every_seconds",
        "inference_dtype",  # read after training only
        "max_memory",  # a budget; where it makes batch_size="auto" smaller, that batch is fingerprinted
    }
)


# Parameters added after checkpoints existed, with the value under which a fit does what it did
# before they existed: left out of the fingerprint at that value, so that a checkpoint written
# before them still resumes (the presets' fits among them).
_ADDED_WITH_DEFAULTS = {
    "batch_order": "shared",
    "shuffle_buffer": None,
    "preprocessing": "none",
    "recipe": "auto",
    "subspace_dim": None,
    "stable_e_steps": None,
    "dequantize": None,
}


AUTO_BATCH_MIN, AUTO_BATCH_MAX = 512, 2048
# batch_size="auto" takes at most this many mini-batches an epoch up to AUTO_BATCH_STEPS * AUTO_BATCH_MAX points.
AUTO_BATCH_STEPS = 2
# The rule "auto" stood for, in checkpoint fingerprints: a checkpoint written under another rule
# (the earlier one: a quarter of the points within [512, 1024]) trained other batches.
_AUTO_BATCH_RULE = f"auto: 1/{AUTO_BATCH_STEPS} of the points within [{AUTO_BATCH_MIN}, {AUTO_BATCH_MAX}]"


def resolve_batch_size(batch_size: int | str, n_samples: int) -> int:
    """The mini-batch size ``batch_size`` stands for on ``n_samples`` training points."""
    if batch_size == "auto":
        return min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, -(-n_samples // AUTO_BATCH_STEPS)))
    return int(batch_size)


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


def _in_float32(Z: np.ndarray) -> np.ndarray:
    """The preprocessed data as the model computes with it, or a ValueError beyond float32's range."""
    with np.errstate(over="ignore"):  # refused just below; numpy's warning would only come first
        out = Z.astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(
            "X holds values beyond float32's range (about 3.4e38) after preprocessing, and FlowMixture "
            "computes in float32: rescale those features first, or use preprocessing='robust'."
        )
    return out


class FlowMixture(ClusterMixin, DensityMixin, BaseEstimator):
    """Mixture of K normalizing flows for clustering and density estimation.

    ``p(x) = sum_k pi_k flow_k(x)``; each flow_k maps x to a latent z with a normal base of
    fixed location and scale (diagonal, or its cluster's full covariance). All components and
    all ``n_init`` restarts are trained together in one batched program; the restart picked by
    ``selection`` is kept. The defaults are flowmix's clustering recipe (spline flows, a start
    from spectral clustering, a GMM and k-means, hard EM, selection by spectral clustering's
    objective for shapes);
    :meth:`from_preset` gives the paper's settings.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components (clusters).
    flow : {"spline", "maf"}, default="spline"
        Flow family of the components: ``"spline"``, autoregressive rational-quadratic spline
        flows (Durkan et al., 2019), which can model rings, spirals and other non-convex shapes;
        ``"maf"``, masked autoregressive flows with affine layers (the paper's).
    flow_params : dict, default=None
        Options of the flow family besides the architecture below: for ``"spline"``,
        ``n_bins`` (default 8) and ``bound_margin`` (default 0.1); ``"maf"`` has none.
    hidden_units : tuple of int, default=None
        Hidden layer widths of each layer's MADE; None takes the family's default ((64,) for
        ``"spline"``, (10,) for ``"maf"``).
    n_layers : int, default=None
        Flow layers, variable order reversed between layers; None takes the family's default
        (3 for ``"spline"``; 1 for ``"maf"``, the paper's).
    activation : {"tanh", "relu", "elu", "gelu", "sigmoid"}, default=None
        Hidden units' activation; None takes the family's default ("tanh").
    base_std : float, default=0.1
        Standard deviation of the base normals, in the units of the preprocessed data, where
        ``init`` sets no scales.
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
    subspace_dim : int, "auto" or None, default="auto"
        On wide data, each component's flow models only the ``subspace_dim`` leading principal
        directions of its start cluster (whitened) and a normal the remaining ones
        (:mod:`flowmix.subspace`): a proper density on every feature at a cost about linear in
        the number of features. ``"auto"``: on data of at least 48 features, the fewest
        directions that hold 90% of the within-cluster variance, at most 24; flows on every
        feature below 48. None, or an integer of at least n_features: flows on every feature
        (the presets). The dimension used is kept as ``subspace_dim_``.
    recipe : {"auto", "candidates", "single"} or flowmix.recipes.Recipe, default="auto"
        How the fit is composed (:mod:`flowmix.recipes`; the fitted model keeps what ran and why
        as ``recipe_trace_``). ``"candidates"``: Genie, spectral clustering and a Gaussian
        mixture (the most likely of 10 EM runs) propose partitions of the preprocessed data;
        the mixture of flows is trained from the best graph partition (Genie's or spectral
        clustering's, lowest normalised cut of the kNN graph) where that cuts more than 1.2
        times fewer edges than the Gaussian mixture's, else from the Gaussian mixture's
        posteriors (full-covariance bases, soft EM, early stopping); one start is trained.
        ``"single"``: one training with this estimator's settings, ``n_init`` restarts.
        ``"auto"``: ``"candidates"`` while ``init``, ``covariance_type`` and ``selection`` are
        ``"auto"``, else ``"single"``. Settings given explicitly (not ``"auto"``) replace the
        recipe's own.
    covariance_type : {"auto", "full", "diag"}, default="auto"
        Base normals of the cluster starts: ``"full"``, each component's base is its cluster's
        covariance (shrunk towards its diagonal when the cluster has few points), so that the
        mixture starts as the start's Gaussian mixture; ``"diag"``, per-dimension scales only.
        ``"auto"``: the recipe's choice (``"diag"`` for a single fit). Starts that give base
        means only (``"box"``, ``"unit"``, ``"kmeans"``) always use ``base_std``.
    init : str or array-like, default="auto"
        Initialisation strategy (flowmix.init). Cluster starts, which locate, scale and weight
        each component from its cluster and pretrain its flow on it for ``pretrain_epochs``:
        ``"auto"`` (the recipe chooses; a single fit's restarts start from ``"spectral"``,
        ``"gmm"`` and ``"kmeans-partition"`` in turn), ``"spectral"`` (spectral clustering of
        the nearest-neighbour graph, restarts cycling through 10, 5 and 20 neighbours),
        ``"genie"`` (Genie's cut of the minimum spanning tree, :mod:`flowmix.genie`, restarts
        cycling through Gini thresholds 0.3, 0.5 and 0.7),
        ``"gmm"`` (full-covariance GMM posteriors), ``"kmeans-partition"`` (k-means clusters),
        or an array of labels (n_samples,) or responsibilities (n_samples, n_components).
        Base means only: ``"box"`` (uniform in the data's bounding box), ``"unit"``
        (U(0, 1)^D, the paper's rule), ``"kmeans"`` (k-means centroids).
    algorithm : {"auto", "hard-em", "soft-em", "annealed-em", "mle"}, default="auto"
        Training algorithm (flowmix.training). ``"auto"``: the recipe's choice (``"hard-em"``
        for a single fit; the candidates recipe trains a graph partition with ``"hard-em"`` and
        the Gaussian mixture's posteriors with ``"soft-em"``, since hard assignments cut
        overlapping Gaussians along a biased boundary and posteriors do not). The EM variants run an E-step on
        all points and set closed-form weights (held above 0.1 / K) at the start of every
        epoch, or of every few epochs when an epoch has fewer than 16 mini-batches, and take
        Adam steps on the flows in between: ``"hard-em"`` with hard assignments, ``"soft-em"`` with posteriors,
        ``"annealed-em"`` with posteriors tempered from T = 4 to 1 over the first half; shares
        below 1e-3 count as 0, so that each flow trains on the points it has a share of.
        ``"mle"`` is direct maximum likelihood of the mixture (the paper's).
    selection : {"auto", "spectral", "graph-cut", "validation", "likelihood", "loss"}, default="auto"
        Rule that picks the kept restart (flowmix.selection): ``"spectral"``, spectral
        clustering's objective (the spread of each cluster in the unit-normalised spectral
        embedding of the 10-nearest-neighbour graph); ``"graph-cut"``, the lowest
        normalised cut of the training points' 10-nearest-neighbour graph; ``"auto"``, the
        likelihood of the training points under each restart's partition made Gaussian, unless
        the best restart's held-out likelihood beats a full-covariance GMM's by more than 0.2
        nats per point and dimension (clusters of non-Gaussian shape), then the normalised cut
        averaged over 5-, 10- and 20-neighbour graphs; ``"validation"``, the held-out
        likelihood; ``"likelihood"``, the training likelihood; ``"loss"``, the lowest final
        training loss (the paper's).
    early_stopping : bool or "auto", default="auto"
        ``"auto"``: the recipe's choice (on for full-covariance bases, off for diagonal ones).
        True: hold out ``validation_fraction`` of the points
        and stop each restart once their NLL has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; each restart keeps the parameters of its best epoch.
        Training watches the mixture's NLL; pretraining the NLL of every held-out point under
        the component whose start cluster holds most of its 10 nearest training points.
    validation_fraction : float, default=0.1
        Share of the points held out for ``early_stopping`` and ``selection="auto"`` or
        ``"validation"`` (one split, never used for training; an ``init`` array's labels of
        those points are not used).
    n_iter_no_change : int, default=25
        Epochs without improvement that stop a restart (``early_stopping`` only).
    tol : float, default=1e-4
        Smallest decrease of the validation NLL that counts as an improvement.
    stable_e_steps : int or None, default=3
        Hard EM's convergence: a restart stops once this many E-steps in a row have each moved
        at most one point in a thousand (``flowmix.training.PARTITION_TOL``) to another
        cluster, or once ``CHURN_PATIENCE`` (10) E-steps in a row have not brought the share of
        moved points below 0.9 times its lowest (the boundary of overlapping clusters
        flickering for good), and keeps its parameters of that moment; at most ``n_epochs``
        in any case. A partition that holds is what the clustering converges to; training on
        only fits the training points more closely. None: train all ``n_epochs``. Other
        algorithms ignore it.
    pretrain_epochs : int, default=100
        Epochs each component trains on its own cluster before ``algorithm`` runs (only for
        initialisations that give clusters). With ``"hard-em"`` the clusters are hard (each
        point goes to its largest responsibility); the soft algorithms pretrain on the
        responsibilities as given.
    n_epochs : int, default=200
        Epochs of ``algorithm`` at most (fewer where early stopping or ``stable_e_steps`` ends it).
    batch_size : int or "auto", default="auto"
        Points per mini-batch. ``"auto"``: half of the training points, within
        [``AUTO_BATCH_MIN``, ``AUTO_BATCH_MAX``] = [512, 2048], so that a data set of up to
        4096 points takes at most two steps an epoch (a fit's time on small data is the count of
        its steps, which cost about the same there; the rule's measurements are in
        docs/user_guide/recipe.rst).
    learning_rate : float, default=3e-3
        Adam step size (other Adam settings are TensorFlow's defaults, as the paper).
    n_init : int, default=3
        Restarts of a single fit, trained together (the candidates recipe trains the one start
        it keeps).
    shuffle : bool, default=True
        Draw a new mini-batch order each epoch.
    batch_order : {"shared", "per-restart"}, default="shared"
        ``"shared"``: one order per epoch for all restarts (they train together).
        ``"per-restart"``: an independent order for each restart, as when every restart runs as
        its own process (the paper's reference code); for ``algorithm="mle"`` only, and each
        step then copies every restart's points for each of its K flows (R x K batches in memory).
    shuffle_buffer : int or None, default=None
        None: each epoch's order is a uniform random permutation. An integer: the order of a
        shuffle buffer of that many points over the stored order, as TensorFlow's
        ``Dataset.shuffle(shuffle_buffer)`` in the paper's reference code (1024 for the image
        sets): a point is never emitted more than ``shuffle_buffer - 1`` places before its
        stored position, and on average about a buffer's length after it. Both options are
        ignored with ``shuffle=False`` or full-batch training.
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
    random_state : int, RandomState or None, default=None
    checkpoint_dir : str or path, default=None
        Directory where the fit writes a checkpoint (model, Adam state, random generator state,
        epoch, losses so far) atomically, every ``checkpoint_every_epochs`` epochs and/or
        ``checkpoint_every_seconds`` seconds, and at the end of each phase. If it already holds
        a checkpoint of the same settings and data, ``fit`` continues from it; the result is
        bit-identical to an uninterrupted fit on the same machine (with ``random_state=None``
        the interrupted fit's seed is reused). A checkpoint of other settings or data is
        refused. None: no checkpoints.
    checkpoint_every_epochs : int or None, default=10
    checkpoint_every_seconds : float or None, default=None
    distributed : {None, "restarts", "data"}, default=None
        Share the fit among the processes of a torch.distributed process group (started by
        torchrun), each calling ``fit`` with the same data and settings (flowmix.distributed):
        ``"restarts"`` splits the ``n_init`` restarts over the processes (the result equals one
        process's); ``"data"`` splits every mini-batch and averages gradients with
        DistributedDataParallel (equal to one process within float tolerance). With
        ``device="cuda"`` each process uses the GPU of its ``LOCAL_RANK``.
    verbose : bool, default=False
        Show a progress bar with the loss.

    Attributes
    ----------
    selection_scores_ : ndarray of shape (n_init,)
        Every restart's score under ``selection`` (lower is better; inf for a stopped restart).
        After the soft-EM refit of ``algorithm="auto"``, the refit's scores: its kept restart
        is the one the first fit kept (``best_restart_``), whatever they say.
    memory_plan_ : flowmix.memory_budget.FitPlan
        The last fit's memory plan: the mini-batch size it trained with and its estimated peak
        in bytes (``memory_plan_.peak``) within ``memory_plan_.budget``.
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
        Standard deviations of the base normals (``base_std`` everywhere unless ``init`` set them).
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
    losses_ : ndarray of shape (n_init, n_epochs_run)
        The same for every restart; NaN after a restart stopped on a non-finite loss.
    batch_mean_losses_ : ndarray of shape (n_init, n_epochs_run) or None
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
        n_components: int = 1,
        *,
        flow: str = "spline",
        flow_params: Mapping[str, Any] | None = None,
        hidden_units: Sequence[int] | None = None,
        n_layers: int | None = None,
        activation: str | None = None,
        base_std: float = 0.1,
        preprocessing: str = "auto",
        dequantize: str | ArrayLike | None = "auto",
        subspace_dim: int | str | None = "auto",
        recipe: str | Recipe = "auto",
        covariance_type: str = "auto",
        init: str | np.ndarray = "auto",
        algorithm: str = "auto",
        selection: str = "auto",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 25,
        tol: float = 1e-4,
        stable_e_steps: int | None = 3,
        pretrain_epochs: int = 100,
        n_epochs: int = 200,
        batch_size: int | str = "auto",
        learning_rate: float = 3e-3,
        n_init: int = 3,
        shuffle: bool = True,
        batch_order: str = "shared",
        shuffle_buffer: int | None = None,
        device: str = "cpu",
        inference_dtype: str = "float32",
        max_memory: int | str = "auto",
        random_state: Any = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every_epochs: int | None = 10,
        checkpoint_every_seconds: float | None = None,
        distributed: str | None = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.flow = flow
        self.flow_params = flow_params
        self.hidden_units = hidden_units
        self.n_layers = n_layers
        self.activation = activation
        self.base_std = base_std
        self.preprocessing = preprocessing
        self.dequantize = dequantize
        self.subspace_dim = subspace_dim
        self.recipe = recipe
        self.covariance_type = covariance_type
        self.init = init
        self.algorithm = algorithm
        self.selection = selection
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.stable_e_steps = stable_e_steps
        self.pretrain_epochs = pretrain_epochs
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_init = n_init
        self.shuffle = shuffle
        self.batch_order = batch_order
        self.shuffle_buffer = shuffle_buffer
        self.device = device
        self.inference_dtype = inference_dtype
        self.max_memory = max_memory
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every_epochs = checkpoint_every_epochs
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.distributed = distributed
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
        """Fit the mixture to X of shape (n_samples, n_features): preprocess, then run the recipe.

        The recipe (:mod:`flowmix.recipes`, ``recipe_trace_``) decides which start to train and
        how. ``callback(epoch, density)``, if given, is called every ``callback_every`` epochs
        with the batched torch module of all restarts (for example to record density snapshots).
        """
        self._check_params()
        recipe = resolve_recipe(self.recipe, self.get_params(deep=False))
        X = self._validate_X(X, reset=True)
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_components={self.n_components}: each "
                "component needs at least one sample. Lower n_components or pass more data."
            )
        # Refused here, before any candidate is computed, if the recipe's largest fit cannot fit.
        steps = lattice_steps(self.dequantize, X)
        self._memory_plan(
            X.shape[0], X.shape[1], self._torch_device(), recipe.max_restarts, steps is not None
        )
        scaling = fit_scaling(self.preprocessing, X)
        Z = _in_float32(scaling.transform(X))
        widths = None if steps is None else steps / scaling.scale  # the steps in the units of Z
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

        # What the candidates and starts see: on a lattice, the points with their ties broken.
        seen = Z if widths is None else jittered(Z, widths, seed)

        def train(fit: Fit) -> np.ndarray:
            return self._train_once(Z, fit, seed, callback, callback_every, widths, seen)

        data = RecipeData(seen, self.n_components, seed, self._can_hold_out(len(Z)))
        self.recipe_trace_ = recipe.run(data, train)
        if self.subspace_dim_ is not None:
            self.recipe_trace_.add(
                "subspaces",
                dim=self.subspace_dim_,
                why=f"subspace_dim={self.subspace_dim!r} on {X.shape[1]} features (flowmix.subspace)",
            )
        self.recipe_ = recipe
        self.feature_scaling_ = scaling
        self.dequantization_steps_ = steps
        return self

    def _train_once(
        self,
        X: np.ndarray,
        fit: Fit,
        seed: int,
        callback: Callable[[int, MixtureOfFlows], None] | None,
        callback_every: int,
        noise_widths: np.ndarray | None = None,
        start_X: np.ndarray | None = None,
    ) -> np.ndarray:
        """One training with the resolved settings ``fit`` on validated, preprocessed data; its labels.

        Initialise, train, select; the fitted attributes are set on the estimator. For
        dequantisation, ``noise_widths`` (D,) are each feature's lattice step in X's units and
        ``start_X`` the points the start sees (X jittered once; None: X).
        """
        n_samples = X.shape[0]
        rank, world_size, block = self._process_share(fit)
        device = self._torch_device()
        if world_size > 1 and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per process
        # Before anything large is allocated: a fit that cannot fit max_memory stops here.
        self.memory_plan_ = self._memory_plan(
            n_samples - self._n_validation(n_samples, fit),
            X.shape[1],
            device,
            fit.n_init,
            noise_widths is not None,
        )
        checkpoint, resumed = self._open_checkpoint(X, seed, fit, rank, world_size)
        if resumed is not None:
            seed = resumed.context["seed"]
        train_rows, validation_rows = self._split_validation(len(X), seed, fit)
        train_X, validation_X = X, None
        start_X = X if start_X is None else start_X
        if validation_rows is not None:
            train_X, validation_X = X[train_rows], X[validation_rows]
            start_X = start_X[train_rows]
        init = fit.init
        if not isinstance(init, str):  # the user's labels of every point; those of the training rows
            from_user_assignments(X, init, 1, self.n_components)  # refuses bad labels, naming all N
            init = np.asarray(init)[train_rows]
        start = initialise(init, start_X, fit.n_init, self.n_components, np.random.RandomState(seed))
        density = self._initial_density(start, start_X, torch.Generator().manual_seed(seed), fit).to(device)
        responsibilities = start.responsibilities
        if block is not None:  # this process trains its block of the restarts only
            density = density.take_restarts(block)
            responsibilities = None if responsibilities is None else responsibilities[block]
        # Points as columns (D, N), built once: the layout of every layer (see flowmix.nn).
        columns = torch.as_tensor(np.ascontiguousarray(train_X.T), dtype=torch.float32, device=device)
        validation = None
        if validation_X is not None:
            validation = torch.as_tensor(
                np.ascontiguousarray(validation_X.T), dtype=torch.float32, device=device
            )
        config = TrainConfig(
            n_epochs=self.n_epochs,
            batch_size=self.memory_plan_.batch_size,
            learning_rate=self.learning_rate,
            shuffle=self.shuffle,
            generator=torch.Generator().manual_seed(seed + 1),
            batch_order=self.batch_order,
            shuffle_buffer=self.shuffle_buffer,
            restart_offset=0 if block is None else int(block[0]),
            verbose=self.verbose,
            callback=callback,
            callback_every=callback_every,
            validation=validation if fit.early_stopping else None,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            stable_e_steps=self.stable_e_steps,
            dequantization=noise_widths,
            checkpoint=checkpoint,
            resume=resumed,
            data_parallel=DataParallel(rank, world_size) if self.distributed == "data" else None,
            group_max=group_max if self.distributed == "restarts" else None,
        )
        pretrained = resumed is not None and resumed.covers("pretrain")
        if responsibilities is not None and self.pretrain_epochs > 0 and not pretrained:
            if fit.algorithm == "hard-em":
                # Pretraining is the algorithm's M-step on the start's clusters, so hard EM
                # pretrains on hard ones; each flow then sees only its own points (a soft GMM
                # start would send every point through every flow, several times the work).
                responsibilities = one_hot(responsibilities.argmax(-1), self.n_components)
            fixed = torch.as_tensor(responsibilities, dtype=torch.float32, device=device).transpose(1, 2)
            if fit.algorithm != "hard-em":  # the shares soft EM's E-steps drop too
                fixed = truncate_posteriors(fixed)
            pretrain_config = dataclasses.replace(
                config,
                n_epochs=self.pretrain_epochs,
                callback=None,
                phase="pretrain",
                batch_order="shared",  # per-restart orders are built for the mixture's NLL only
                validation_responsibilities=self._validation_assignments(
                    train_X, validation_X, responsibilities, device, fit
                ),
            )
            pretrain(density, columns, fixed, pretrain_config)
        result = get_algorithm(fit.algorithm)(density, columns, config)
        if block is None:
            self._check_failures(result.stopped_epoch, fit)
            best, self.selection_scores_ = select(fit.selection, result, density, columns, validation)
            kept = density.take_restart(best)
        else:
            result, best, kept = self._select_across_ranks(result, density, columns, validation, block, fit)
        # The density is kept in float32, as trained (nothing rounded); inference makes a float64
        # copy when inference_dtype asks for one (flowmix.inference).
        self._set_fitted(kept, result, best)
        self.algorithm_ = fit.algorithm
        self.labels_ = self._joint_log_prob_array(X).argmax(axis=1)
        self.empty_components_ = np.setdiff1d(np.arange(self.n_components), self.labels_)
        return self.labels_

    def _memory_plan(
        self, n_samples: int, dim: int, device: torch.device, n_init: int, dequantised: bool = False
    ) -> FitPlan:
        """The mini-batch size and peak memory of this fit, or a ValueError if it cannot fit ``max_memory``.

        Dequantisation holds two more copies of the points (jittered once for the starts, and
        each epoch's noisy copy). On principal subspaces the flows are sized for the largest
        dimension ``subspace_dim`` may take (the start's clusters, which settle it, are not
        known yet).
        """
        flow_dim = largest_dim(self.subspace_dim, dim)
        flow_parameters, floats_per_point = flow_footprint(
            self.flow,
            flow_dim,
            hidden_units=self.hidden_units,
            n_layers=self.n_layers,
            activation=self.activation,
            flow_params=self.flow_params,
        )
        if flow_dim < dim:  # the projection's centred copy and residual, and the basis, per stacked flow
            floats_per_point += subspace_floats_per_point(dim, flow_dim)
            flow_parameters += dim * flow_dim
        return fit_plan(
            n_samples=n_samples,
            dim=dim,
            n_stack=n_init * self.n_components,
            flow_parameters=flow_parameters,
            floats_per_point=floats_per_point,
            batch_size=resolve_batch_size(self.batch_size, n_samples),
            auto_batch=self.batch_size == "auto",
            budget=resolve_budget(self.max_memory, device),
            data_copies=3 if dequantised else 1,
        )

    def _holds_out(self, fit: Fit) -> bool:
        """Whether the fit keeps ``validation_fraction`` of the points away from training."""
        return fit.selection in ("validation", "auto") or fit.early_stopping

    def _can_hold_out(self, n_samples: int) -> bool:
        n_validation = round(self.validation_fraction * n_samples)
        return n_validation >= 1 and n_samples - n_validation >= self.n_components

    def _n_validation(self, n_samples: int, fit: Fit) -> int:
        """How many of ``n_samples`` points the fit holds out (0 where it holds none out)."""
        return round(self.validation_fraction * n_samples) if self._holds_out(fit) else 0

    def _split_validation(self, n_samples: int, seed: int, fit: Fit) -> tuple[np.ndarray, np.ndarray | None]:
        """(training rows, validation rows or None): early stopping and the held-out selections hold rows out."""
        if not self._holds_out(fit):
            return np.arange(n_samples), None
        n_validation = self._n_validation(n_samples, fit)
        if not self._can_hold_out(n_samples):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n_validation} validation and "
                f"{n_samples - n_validation} training points of {n_samples}; early_stopping and "
                "selection='auto' or 'validation' need at least one validation point and "
                f"n_components={self.n_components} training points. Pass more data, change "
                "validation_fraction, or use early_stopping=False and selection='graph-cut'."
            )
        order = np.random.RandomState(seed + 2).permutation(n_samples)
        return np.sort(order[n_validation:]), np.sort(order[:n_validation])

    def _validation_assignments(
        self,
        train_X: np.ndarray,
        validation_X: np.ndarray | None,
        responsibilities: np.ndarray,
        device: torch.device,
        fit: Fit,
    ) -> torch.Tensor | None:
        """The start's clusters carried to the validation points: (R, K, M) one-hot, or None.

        Each validation point takes the majority cluster of its 10 nearest training points, so that
        pretraining can stop on how well every component models its own held-out points.
        """
        if validation_X is None or not fit.early_stopping:
            return None
        from sklearn.neighbors import KNeighborsClassifier

        labels = []
        for r in responsibilities:
            part = r.argmax(1)
            neighbours = KNeighborsClassifier(min(10, len(train_X))).fit(train_X, part)
            labels.append(neighbours.predict(validation_X))
        assigned = one_hot(np.stack(labels), self.n_components)  # (R, M, K)
        return torch.as_tensor(assigned, device=device).transpose(1, 2).contiguous()

    def _process_share(self, fit: Fit) -> tuple[int, int, np.ndarray | None]:
        """(rank, world size, restarts this process trains or None for all) under ``distributed``."""
        if self.distributed is None:
            return 0, 1, None
        rank, world_size = require_group(self.distributed)
        block = restart_block(fit.n_init, rank, world_size) if self.distributed == "restarts" else None
        return rank, world_size, block

    def _select_across_ranks(
        self,
        result: TrainResult,
        density: MixtureOfFlows,
        columns: torch.Tensor,
        validation: torch.Tensor | None,
        block: np.ndarray,
        fit: Fit,
    ) -> tuple[TrainResult, int, MixtureOfFlows]:
        """Restart-parallel selection: gather every rank's scores and losses, keep the best restart.

        Its owner broadcasts its parameters, so every rank ends with the same model.
        """
        rank, world_size = world()
        _, local_scores = select(fit.selection, result, density, columns, validation)
        scores = gather_rows(local_scores, world_size)
        result = gather_result(result, self.n_epochs, world_size)
        self._check_failures(result.stopped_epoch, fit)
        self.selection_scores_ = scores
        best = int(np.argmin(scores))
        blocks = [restart_block(fit.n_init, r, world_size) for r in range(world_size)]
        owner = next(r for r, b in enumerate(blocks) if best in b)
        kept = density.take_restart(int(np.flatnonzero(block == best)[0]) if rank == owner else 0)
        broadcast_module(kept, owner)
        return result, best, kept

    def _open_checkpoint(
        self, X: np.ndarray, seed: int, fit: Fit, rank: int = 0, world_size: int = 1
    ) -> tuple[FitCheckpoint | None, Resumed | None]:
        """The fit's checkpoint writer and the checkpoint to continue from, if ``checkpoint_dir`` is set.

        Under ``distributed`` every process keeps its own checkpoint, in a subdirectory of its rank.
        """
        if self.checkpoint_dir is None:
            return None, None
        from flowmix import __version__

        settings = {k: v for k, v in self.get_params(deep=False).items() if k not in _NOT_FINGERPRINTED}
        settings["dequantize"] = plain_dequantize(settings["dequantize"])
        for name, default in _ADDED_WITH_DEFAULTS.items():
            if settings[name] == default:  # so that checkpoints written before they existed still resume
                del settings[name]
        # The settings this training resolved to (the recipe's choices, its start among them).
        settings.update(fit.describe())
        if not isinstance(fit.init, str):
            settings["init"] = fingerprint({}, np.asarray(fit.init))
        if self.batch_size == "auto":  # the rule, or the smaller batch that max_memory made it take
            plan = self.memory_plan_
            settings["batch_size"] = plan.batch_size if plan.shrunk else _AUTO_BATCH_RULE
        settings["flowmix"] = __version__
        folder = Path(self.checkpoint_dir)
        if world_size > 1:
            settings["process"] = [rank, world_size]
            folder = folder / f"rank-{rank}-of-{world_size}"
        checkpoint = FitCheckpoint(
            folder,
            fingerprint(settings, X),
            every_epochs=self.checkpoint_every_epochs,
            every_seconds=self.checkpoint_every_seconds,
        )
        resumed = checkpoint.load()
        if resumed is not None and self.random_state is not None and resumed.context["seed"] != seed:
            raise ValueError(
                f"The checkpoint in {self.checkpoint_dir} is of a fit with another random_state; pass the "
                "interrupted fit's random_state to resume it, or another checkpoint_dir to start afresh."
            )
        checkpoint.context = {"seed": seed if resumed is None else resumed.context["seed"]}
        return checkpoint, resumed

    def _initial_density(
        self, start: Start, X: np.ndarray, generator: torch.Generator, fit: Fit
    ) -> MixtureOfFlows:
        """The batched mixture of all restarts, set up from ``start`` (flows seeded by ``generator``).

        On principal subspaces (``subspace_dim``) every component is its start cluster's
        probabilistic PCA: its flow (the identity at first) sees the cluster's whitened principal
        coordinates, on a standard normal base.
        """
        subspaces, responsibilities = None, start.responsibilities
        if largest_dim(self.subspace_dim, X.shape[1]) < X.shape[1]:
            if responsibilities is None:  # a start of locations only: every component on the data's subspace
                responsibilities = np.full((fit.n_init, len(X), self.n_components), 1.0 / self.n_components)
            subspaces = fit_subspaces(X, responsibilities, self.subspace_dim)
        flows = make_flow(
            self.flow,
            fit.n_init * self.n_components,
            X.shape[1] if subspaces is None else subspaces.dim,
            hidden_units=self.hidden_units,
            n_layers=self.n_layers,
            activation=self.activation,
            generator=generator,
            flow_params=self.flow_params,
        )
        if subspaces is None:
            flows.prepare(torch.from_numpy(X))
            means = torch.from_numpy(start.means)
            scales = None if start.scales is None else torch.as_tensor(start.scales)
            tril = None
            if fit.covariance_type == "full" and start.responsibilities is not None:
                covariances = torch.as_tensor(shrunk_covariances(X, start.responsibilities))
                tril = torch.linalg.cholesky(covariances).reshape(-1, *covariances.shape[1:])
        else:  # standard normal bases in whitened coordinates; the flows' box holds each component's own points
            flows.prepare(own_coordinates(X, responsibilities.argmax(-1), subspaces))
            means, tril = torch.zeros(*subspaces.scale.shape), None
            scales = torch.ones_like(means)
        density = MixtureOfFlows(flows, means, self.base_std, scales, tril, subspaces)
        if start.weights is not None:
            with torch.no_grad():
                density.logits.copy_(torch.as_tensor(np.log(np.maximum(start.weights, 1e-12))))
        return density

    def _check_failures(self, stopped_epoch: np.ndarray, fit: Fit) -> None:
        """Raise if every restart diverged; warn about the ones that did."""
        failed = np.flatnonzero(stopped_epoch >= 0)
        if failed.size == fit.n_init:
            raise ValueError(
                f"All {fit.n_init} restarts diverged (the loss became NaN or inf). Try a smaller "
                "learning_rate, scaling the data (e.g. MinMaxScaler or StandardScaler), a larger "
                "base_std, or more restarts (n_init)."
            )
        if failed.size:
            warnings.warn(
                f"{failed.size} of {fit.n_init} restarts stopped early because their loss became "
                f"NaN or inf (restarts {failed.tolist()}); they were not considered.",
                RuntimeWarning,
                stacklevel=3,
            )

    def _set_fitted(self, density: MixtureOfFlows, result: TrainResult, best: int) -> None:
        """Store the kept restart's density (R = 1) and the attributes derived from it."""
        self.density_ = density
        self.losses_ = result.losses
        self.batch_mean_losses_ = result.batch_mean_losses
        self.best_restart_ = best
        self.n_iter_ = result.n_epochs_run
        self.best_epoch_ = self.validation_loss_curve_ = None
        if result.epochs_trained is not None:
            self.n_iter_ = int(result.epochs_trained[best])
        if result.best_epoch is not None:
            self.best_epoch_ = int(result.best_epoch[best])
            self.validation_loss_curve_ = result.validation_losses[best, : self.n_iter_].copy()
        self.loss_curve_ = result.losses[best, : self.n_iter_].copy()
        # From the logits in float64, whatever the density's dtype: the same weights either way.
        log_weights = torch.log_softmax(density.logits.detach()[0].double(), dim=-1)
        self.weights_ = log_weights.exp().cpu().numpy()
        self.base_means_ = density.base_means[0].cpu().numpy().astype(np.float64)
        if density.base_scales is None:
            self.base_scales_ = np.full_like(self.base_means_, density.base_std)
        else:
            self.base_scales_ = density.base_scales[0].cpu().numpy().astype(np.float64)
        self.base_covariances_ = None
        self.covariance_type_ = "diag" if density.base_scale_tril is None else "full"
        self.subspace_dim_ = None if density.subspaces is None else density.flow_dim
        if density.subspaces is not None:
            # The standard normal base in whitened subspace coordinates, mapped back to the data's.
            subspaces = density.subspaces
            self.base_means_ = subspaces.mean[0].cpu().numpy().astype(np.float64)
            basis = subspaces.basis[0].cpu().double()
            along = (basis.square() * subspaces.scale[0].cpu().double()[:, None, :].square()).sum(-1)
            across = (1 - basis.square().sum(-1)) * subspaces.residual_scale[0].cpu().double()[
                :, None
            ].square()
            self.base_scales_ = (along + across).sqrt().numpy()
        self.algorithm_ = None if self.algorithm == "auto" else self.algorithm  # a fit sets it after
        if density.base_scale_tril is not None:
            tril = density.base_scale_tril[0].cpu().double()
            self.base_covariances_ = (tril @ tril.transpose(1, 2)).numpy()
            self.base_scales_ = np.sqrt(np.diagonal(self.base_covariances_, axis1=1, axis2=2)).copy()

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the cluster of each training point."""
        return self.fit(X, y, **fit_params).labels_

    # --------------------------------------------------------------- inference

    def _joint_log_prob(self, X: Any) -> np.ndarray:
        """log pi_k + log flow_k(x) for every point: (N, K) float64, computed in chunks."""
        check_is_fitted(self, "density_")
        Z = _in_float32(self.feature_scaling_.transform(self._validate_X(X, reset=False)))
        return self._joint_log_prob_array(Z)

    @reuse_freed_memory()
    @flush_denormals()
    def _joint_log_prob_array(self, X: np.ndarray) -> np.ndarray:
        """As :meth:`_joint_log_prob` for an already validated and preprocessed array, in ``inference_dtype``."""
        device = self.density_.logits.device
        # What max_memory leaves for the model and a chunk once the (N, K) outputs are held.
        budget = resolve_budget(self.max_memory, device) - 8 * X.shape[0] * self.n_components
        inference = Inference(self.density_, torch_inference_dtype(self.inference_dtype), max_bytes=budget)
        chunk = inference.points_per_chunk
        out = np.empty((X.shape[0], self.n_components), dtype=np.float64)
        for start in range(0, X.shape[0], chunk):
            part = torch.as_tensor(X[start : start + chunk], device=device)
            out[start : start + chunk] = inference.joint_log_prob(part)[0].T.cpu().numpy()
        # Far from the data (|x| beyond about 1e19) float32 squares overflow to -inf where float64
        # stays finite; those rows (rare) are computed again in float64.
        far = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if far.size and inference.dtype != torch.float64:
            exact = Inference(self.density_, torch.float64, max_bytes=budget)
            for start in range(0, far.size, exact.points_per_chunk):
                rows = far[start : start + exact.points_per_chunk]
                part = torch.as_tensor(X[rows], device=device)
                out[rows] = exact.joint_log_prob(part)[0].T.cpu().numpy()
        return out

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
        from flowmix.persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> FlowMixture:
        """Read a model written by :meth:`save` (safetensors + JSON; nothing is unpickled)."""
        from flowmix.persistence import load_model

        return load_model(cls, path, device)

    # -------------------------------------------------------------- validation

    def _torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def _check_params(self) -> None:
        torch_inference_dtype(self.inference_dtype)  # used at the end of fit: refuse a typo first

        def positive_int(name: str, value: Any, or_auto: bool = False) -> None:
            if or_auto and value == "auto":
                return
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                either = " or 'auto'" if or_auto else ""
                raise ValueError(f"{name} must be a positive integer{either}, got {value!r}.")

        for name in ("n_components", "n_epochs", "n_init", "n_iter_no_change"):
            positive_int(name, getattr(self, name))
        positive_int("batch_size", self.batch_size, or_auto=True)
        positive_int("max_memory", self.max_memory, or_auto=True)
        if self.checkpoint_every_epochs is not None:
            positive_int("checkpoint_every_epochs", self.checkpoint_every_epochs)
        if self.stable_e_steps is not None:
            positive_int("stable_e_steps", self.stable_e_steps)
        seconds = self.checkpoint_every_seconds
        if seconds is not None and (not isinstance(seconds, Real) or not 0 < seconds < math.inf):
            raise ValueError(f"checkpoint_every_seconds must be a positive number or None, got {seconds!r}.")
        if not isinstance(self.tol, Real) or not 0 <= self.tol < math.inf:
            raise ValueError(f"tol must be a non-negative finite number, got {self.tol!r}.")
        if not isinstance(self.early_stopping, bool | np.bool_) and self.early_stopping != "auto":
            raise ValueError(f"early_stopping must be True, False or 'auto', got {self.early_stopping!r}.")
        check_dequantize(self.dequantize)
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"preprocessing must be one of {list(PREPROCESSINGS)}, got {self.preprocessing!r}."
            )
        if self.subspace_dim is not None:
            positive_int("subspace_dim", self.subspace_dim, or_auto=True)
        if self.covariance_type not in ("auto", "full", "diag"):
            raise ValueError(
                f"covariance_type must be 'auto', 'full' or 'diag', got {self.covariance_type!r}."
            )
        if self.distributed is not None and self.distributed not in MODES:
            raise ValueError(f"distributed must be None or one of {list(MODES)}, got {self.distributed!r}.")
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, str | os.PathLike):
                raise TypeError(f"checkpoint_dir must be a path or None, got {self.checkpoint_dir!r}.")
            if Path(self.checkpoint_dir).exists() and not Path(self.checkpoint_dir).is_dir():
                raise ValueError(
                    f"checkpoint_dir={str(self.checkpoint_dir)!r} is a file; pass a directory (it is created "
                    "if missing)."
                )
        if self.shuffle_buffer is not None:
            positive_int("shuffle_buffer", self.shuffle_buffer)
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(f"batch_order must be one of {list(BATCH_ORDERS)}, got {self.batch_order!r}.")
        if self.batch_order == "per-restart" and (self.algorithm != "mle" or self.distributed == "data"):
            raise ValueError(
                "batch_order='per-restart' is built for algorithm='mle' (the paper's training) without "
                f"distributed='data'; got algorithm={self.algorithm!r}, distributed={self.distributed!r}. "
                "Use batch_order='shared' with these."
            )
        if self.n_layers is not None:
            positive_int("n_layers", self.n_layers)
        for name in ("base_std", "learning_rate"):
            value = getattr(self, name)
            if not isinstance(value, Real) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
        hidden = self.hidden_units
        if isinstance(hidden, Integral):
            raise TypeError(
                f"hidden_units must be a tuple of layer widths, e.g. ({hidden},), got {hidden!r}."
            )
        if hidden is not None and (
            isinstance(hidden, str)
            or not all(isinstance(h, Integral) and h >= 1 for h in hidden)
            or not hidden
        ):
            raise ValueError(f"hidden_units must be a non-empty tuple of positive integers, got {hidden!r}.")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}.")
        if (
            not isinstance(self.pretrain_epochs, Integral)
            or isinstance(self.pretrain_epochs, bool)
            or self.pretrain_epochs < 0
        ):
            raise ValueError(f"pretrain_epochs must be a non-negative integer, got {self.pretrain_epochs!r}.")
        fraction = self.validation_fraction
        if not isinstance(fraction, Real) or not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}.")
        registries = [
            ("flow", FLOW_FAMILIES),
            ("algorithm", {"auto": None, **ALGORITHMS}),
            ("selection", SELECTIONS),
        ]
        if self.init is None:
            raise ValueError(
                "init=None: this model was loaded from a file fitted from an array of labels, which the "
                "file does not keep; pass init= (a strategy name or the labels) to fit it again."
            )
        if isinstance(self.init, str):
            registries.append(("init", INITIALISATIONS))
        for name, registry in registries:
            value = getattr(self, name)
            if not isinstance(value, str) or value not in registry:
                raise ValueError(f"{name} must be one of {list(registry)}, got {value!r}.")
        if self.flow_params is not None and not isinstance(self.flow_params, Mapping):
            raise TypeError(f"flow_params must be a dict of options or None, got {self.flow_params!r}.")
        check_flow_params(self.flow, self.flow_params)

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
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
                return validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1)
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
