"""Recipes: how one fit composes candidate starts, training and selection, as inspectable objects.

A recipe sees the preprocessed training data and a trainer (:class:`flowmix.fitting.Trainer`)
that trains the mixture once with fully resolved settings (a :class:`Fit`); it decides which fit
to run, records every decision in its :class:`Trace`, and returns an :class:`Outcome`: the trace
and the fitted mixture the estimator stores (``recipe_trace_`` and the fitted attributes). The
estimator validates, preprocesses, runs its recipe and stores the outcome; the decisions live here.

- :class:`SingleFit`: one training with given settings (the paper presets, any fit whose
  ``init`` or ``covariance_type`` is given, and ``recipe=SingleFit(...)``).
- :class:`Candidates`: the default. Cheap clusterers propose partitions (Genie and spectral
  clustering for shapes, a Gaussian mixture for overlapping ellipses); the normalised cut of
  the kNN graph, a criterion that needs no labels and no density, scores them; the mixture of
  flows is then trained from the partition the scores keep. On wide data the candidates are
  computed on the data's leading principal components.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flowmix.batch_order import BATCH_ORDERS
from flowmix.clustering import SPECTRAL_NEIGHBOUR_CYCLE
from flowmix.init import INITIALISATIONS
from flowmix.options import EarlyStopping
from flowmix.selection import SELECTIONS, normalised_cuts
from flowmix.subspace import leading_directions
from flowmix.training import ALGORITHMS
from flowmix.validation import check_positive_int, check_positive_number

if TYPE_CHECKING:
    from flowmix.fitted import FittedMixture


@dataclass(frozen=True, kw_only=True)
class Training:
    """How the mixture is trained from a start: every setting resolved (no ``"auto"``).

    Parameters
    ----------
    covariance_type : {"diag", "full"}
        Base normals of cluster starts: per-dimension scales, or each cluster's covariance.
    algorithm : str
        Training algorithm (:data:`flowmix.training.ALGORITHMS`).
    selection : str
        Rule that keeps one of the restarts (:data:`flowmix.selection.SELECTIONS`).
    early_stopping : bool
        Hold points out and stop each restart once their NLL stops improving.
    n_init : int
        Restarts, trained together.
    pretrain_epochs : int
        Epochs each component trains on its own start cluster first (cluster starts only).
    stable_e_steps : int or None
        Hard EM stops once this many E-steps in a row moved at most one point in a thousand, or
        once the share of moved points stops falling (:mod:`flowmix.training.stopping`); None:
        train every epoch.
    base_std : float
        Standard deviation of the base normals where the start sets no scales.
    shuffle : bool
        Draw a new mini-batch order each epoch.
    batch_order : {"shared", "per-restart"}
        One order per epoch for all restarts, or one per restart as when every restart runs as
        its own process (the paper's reference code; ``algorithm="mle"`` only).
    shuffle_buffer : int or None
        None: uniform permutations. An integer: the order of a shuffle buffer of that many points
        over the stored order, as TensorFlow's ``Dataset.shuffle`` in the paper's code.
    """

    covariance_type: str = "diag"
    algorithm: str = "hard-em"
    selection: str = "loss"
    early_stopping: bool = False
    n_init: int = 1
    pretrain_epochs: int = 100
    stable_e_steps: int | None = 3
    base_std: float = 0.1
    shuffle: bool = True
    batch_order: str = "shared"
    shuffle_buffer: int | None = None

    def __post_init__(self) -> None:
        check_training(self)

    def starting_from(self, init: str | np.ndarray) -> Fit:
        """These settings from the start ``init``."""
        return Fit(init=init, **training_fields(self))


@dataclass(frozen=True, kw_only=True)
class Fit(Training):
    """One training of the mixture: :class:`Training`'s settings and a start.

    ``init`` is a strategy name of :mod:`flowmix.init` (not ``"auto"``), or labels (N,) /
    responsibilities (N, K) of every point.
    """

    init: str | np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.init, str) and self.init not in INITIALISATIONS:
            raise ValueError(f"init must be one of {list(INITIALISATIONS)} or an array, got {self.init!r}.")

    def describe(self) -> dict[str, Any]:
        """The settings as plain values (a start given as an array is described by its shape)."""
        described = dataclasses.asdict(self)
        if not isinstance(self.init, str):
            described["init"] = f"array of shape {np.shape(self.init)}"
        return described


def training_fields(training: Training) -> dict[str, Any]:
    """``training``'s settings as keyword arguments of :class:`Training` (a Fit's start left out)."""
    return {f.name: getattr(training, f.name) for f in dataclasses.fields(Training)}


def check_training(training: Training) -> None:
    """Refuse, with a message that says what to pass, settings outside their constraints."""
    choices = {
        "covariance_type": ("diag", "full"),
        "algorithm": tuple(ALGORITHMS),
        "selection": tuple(SELECTIONS),
        "batch_order": tuple(BATCH_ORDERS),
    }
    for name, allowed in choices.items():
        value = getattr(training, name)
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
    check_positive_int("n_init", training.n_init)
    check_positive_int("pretrain_epochs", training.pretrain_epochs, minimum=0)
    for name in ("stable_e_steps", "shuffle_buffer"):
        if getattr(training, name) is not None:
            check_positive_int(name, getattr(training, name))
    check_positive_number("base_std", training.base_std)
    for name in ("early_stopping", "shuffle"):
        if not isinstance(getattr(training, name), bool | np.bool_):
            raise ValueError(f"{name} must be True or False, got {getattr(training, name)!r}.")
    if training.batch_order == "per-restart" and training.algorithm != "mle":
        raise ValueError(
            "batch_order='per-restart' is built for algorithm='mle' (the paper's training); got "
            f"algorithm={training.algorithm!r}. Use batch_order='shared' with it."
        )


class Trace:
    """What a recipe ran and why: ``steps``, one dict per step, in order, each with its ``"step"`` name."""

    def __init__(self) -> None:
        self.steps: list = []

    def __repr__(self) -> str:
        return f"Trace(steps={self.steps!r})"

    def add(self, step: str, **facts: Any) -> None:
        """Record ``step`` with its facts (plain values: they are shown to users and compared in tests)."""
        self.steps.append({"step": step, **facts})

    def __getitem__(self, step: str) -> dict[str, Any]:
        """The last entry of ``step``."""
        for entry in reversed(self.steps):
            if entry["step"] == step:
                return entry
        raise KeyError(step)

    def __contains__(self, step: str) -> bool:
        return any(entry["step"] == step for entry in self.steps)


class Trainer(Protocol):
    """What a recipe trains with (:class:`flowmix.fitting.Trainer`)."""

    def train(self, fit: Fit) -> FittedMixture:
        """Train the mixture once with ``fit`` on the data; the kept restart and its labels."""
        ...


@dataclass(frozen=True)
class Data:
    """What a recipe sees: the preprocessed training points and what the estimator can do with them."""

    X: np.ndarray
    n_components: int
    seed: int
    can_hold_out: bool  # whether validation_fraction leaves validation and enough training points


@dataclass
class Outcome:
    """What a recipe returns: its trace and the fitted mixture it kept."""

    trace: Trace
    fitted: FittedMixture


class Recipe:
    """A way to fit: ``run`` decides which :class:`Fit` to train, trains it and returns the trace."""

    name = "recipe"

    def trainings(self) -> list[Training]:
        """Every way this recipe may train (what the memory budget and the settings are checked for)."""
        raise NotImplementedError

    @property
    def max_restarts(self) -> int:
        """The most restarts any fit of this recipe trains at once."""
        return max(training.n_init for training in self.trainings())

    def with_settings(self, **explicit: Any) -> Recipe:
        """This recipe with settings the estimator was given explicitly in place of its own."""
        raise NotImplementedError

    def run(self, data: Data, trainer: Trainer) -> Outcome:
        """Decide what to train on ``data``, train it with ``trainer``, and return the trace and the fit."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class SingleFit(Recipe):
    """One training with given settings: the recipe of the paper presets and of explicit settings.

    Parameters
    ----------
    init : str or array-like, default="auto"
        The start (:mod:`flowmix.init`): a strategy name, or labels (N,) / responsibilities
        (N, K) of every point. ``"auto"``: the restarts start from spectral clustering, a GMM
        and k-means in turn (``AUTO_INIT``).
    **settings
        Fields of :class:`Training`. Those not given: diagonal bases, hard EM, ``AUTO_SELECTION``
        (held-out likelihood against a GMM's, then the graph cut), ``SINGLE_FIT_RESTARTS``
        restarts, early stopping with full covariances only, and :class:`Training`'s defaults.

    Examples
    --------
    >>> SingleFit(selection="graph-cut", n_init=2).fit.selection
    'graph-cut'
    """

    name = "single"

    def __init__(self, init: str | np.ndarray = "auto", **settings: Any):
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(Training)})
        if unknown:
            raise TypeError(
                f"SingleFit got unknown settings {unknown}; it takes init and the fields of "
                f"flowmix.recipes.Training: {[f.name for f in dataclasses.fields(Training)]}."
            )
        self.init = init
        self.settings = settings
        self.fit  # noqa: B018 -- refuses bad settings now, not at fit time

    @property
    def fit(self) -> Fit:
        """The training this recipe runs, every setting resolved."""
        settings = {"selection": AUTO_SELECTION, "n_init": SINGLE_FIT_RESTARTS, **self.settings}
        settings.setdefault("early_stopping", settings.get("covariance_type", "diag") == "full")
        init = AUTO_INIT if isinstance(self.init, str) and self.init == "auto" else self.init
        return Fit(init=init, **settings)

    def trainings(self) -> list[Training]:
        return [self.fit]

    def with_settings(self, **explicit: Any) -> SingleFit:
        init = explicit.pop("init", self.init)
        return SingleFit(init, **{**self.settings, **explicit})

    def run(self, data: Data, trainer: Trainer) -> Outcome:
        """Train :attr:`fit`."""
        trace = Trace()
        fitted = trainer.train(self.fit)
        trace.add("fit", settings=self.fit.describe(), why="the settings were given")
        return Outcome(note_fitted(trace, fitted, data), fitted)


class Candidates(Recipe):
    """Partitions from cheap clusterers, scored by the normalised cut; flows trained from the kept one.

    Parameters
    ----------
    graph_candidates : tuple of str
        Strategies of :mod:`flowmix.init` that cut a neighbourhood graph or a spanning tree
        (shapes of any form, separated by gaps).
    gaussian_candidate : str
        The strategy for clusters that overlap as Gaussians do (no gap to cut).
    graph_advantage : float
        The best graph partition is kept when its normalised cut is this many times lower than
        the Gaussian one's. A Gaussian mixture's boundary between overlapping ellipses crosses
        dense regions, so its cut is never low; but a graph partition of such data finds no
        valley either and cuts only a little lower, while across separated shapes a Gaussian
        boundary cuts far more edges than the gaps a graph partition follows.
    neighbour_counts : tuple of int
        The kNN graphs whose normalised cuts are averaged.
    shapes, gaussian : Training
        How the mixture is trained from a graph partition (per-dimension base scales, hard EM:
        the partition's shape is the flows' to learn) and from the Gaussian one (full
        covariances and soft EM from its posteriors, stopped on held-out points: the posteriors
        place the boundaries of overlapping clusters), starting from the kept partition. Their
        ``n_init`` restarts all start from it and differ in their flows' initial weights.
    strict_early_stopping : bool
        Whether early stopping was asked for (then too few points to hold out is an error);
        otherwise the Gaussian fit trains without it on such data.
    candidate_features : int
        Data with more features is projected on its this many leading principal components
        before the candidates are computed and scored: a full-covariance GMM costs D^2 per point
        and component, Genie's spanning tree N^2 D, and on many weakly informative features
        (pixels) the nearest-neighbour graphs are noisier than on the leading components. The
        mixture of flows is still trained on every feature.
    """

    name = "candidates"

    def __init__(
        self,
        graph_candidates: tuple[str, ...] = ("genie", "spectral"),
        gaussian_candidate: str = "gmm-best",
        graph_advantage: float = 1.2,
        neighbour_counts: tuple[int, ...] = SPECTRAL_NEIGHBOUR_CYCLE,
        shapes: Training = Training(covariance_type="diag", algorithm="hard-em"),
        gaussian: Training = Training(covariance_type="full", algorithm="soft-em", early_stopping=True),
        strict_early_stopping: bool = False,
        candidate_features: int = 50,
    ):
        self.graph_candidates = graph_candidates
        self.gaussian_candidate = gaussian_candidate
        self.graph_advantage = graph_advantage
        self.neighbour_counts = neighbour_counts
        self.shapes = shapes
        self.gaussian = gaussian
        self.strict_early_stopping = strict_early_stopping
        self.candidate_features = candidate_features

    def trainings(self) -> list[Training]:
        return [self.shapes, self.gaussian]

    def with_settings(self, **explicit: Any) -> Candidates:
        if "init" in explicit:
            raise ValueError(
                "recipe='candidates' chooses the start itself; leave init='auto', or use recipe='single' "
                "to start from the given init."
            )
        changed = dict(vars(self))
        changed["shapes"] = dataclasses.replace(self.shapes, **explicit)
        changed["gaussian"] = dataclasses.replace(self.gaussian, **explicit)
        changed["strict_early_stopping"] = explicit.get("early_stopping", self.strict_early_stopping)
        return Candidates(**changed)

    def run(self, data: Data, trainer: Trainer) -> Outcome:
        """Score the candidates' partitions, keep one, and train from it."""
        trace = Trace()
        X, n_components = data.X, data.n_components
        names = [*self.graph_candidates, self.gaussian_candidate]
        rng = np.random.RandomState(data.seed)
        gaussian = self.gaussian
        if gaussian.early_stopping and not data.can_hold_out and not self.strict_early_stopping:
            gaussian = dataclasses.replace(gaussian, early_stopping=False)
            trace.add("no early stopping", why="too few points to hold validation points out")
        if n_components == 1:  # nothing to partition
            fit = gaussian.starting_from(np.zeros(len(X), dtype=np.int64))
            fitted = trainer.train(fit)
            trace.add("fit", settings=fit.describe(), why="one component: nothing to choose")
            return Outcome(note_fitted(trace, fitted, data), fitted)
        if X.shape[1] > self.candidate_features:
            X = principal_components(X, self.candidate_features)
            trace.add(
                "candidate features",
                n_features=self.candidate_features,
                why=f"{data.X.shape[1]} features: the candidates see the leading principal components",
            )
        responsibilities = {
            name: INITIALISATIONS[name](X, 1, n_components, rng).responsibilities[0] for name in names
        }
        partitions = np.stack([responsibilities[name].argmax(axis=1) for name in names])
        cuts = normalised_cuts(X, partitions, n_components, self.neighbour_counts)
        trace.add("candidates", normalised_cut=dict(zip(names, cuts.round(6).tolist(), strict=True)))
        best_graph = int(np.argmin(cuts[:-1]))
        gaussian_cut = cuts[-1]
        with np.errstate(invalid="ignore"):  # 0 x inf: a recipe that never keeps a graph partition
            graph_wins = bool(cuts[best_graph] * self.graph_advantage < gaussian_cut)
        if graph_wins:
            kept, fit = names[best_graph], self.shapes.starting_from(partitions[best_graph])
            why = (
                f"{kept}'s cut {cuts[best_graph]:.4g} is more than {self.graph_advantage} times lower than "
                f"the Gaussian partition's {gaussian_cut:.4g}: clusters separated by gaps"
            )
        else:
            start = responsibilities[self.gaussian_candidate].astype(np.float64)
            kept, fit = self.gaussian_candidate, gaussian.starting_from(start)
            why = (
                f"no graph partition cuts more than {self.graph_advantage} times fewer edges than the "
                f"Gaussian one ({cuts[best_graph]:.4g} against {gaussian_cut:.4g}): overlapping clusters"
            )
        trace.add("decision", kept=kept, why=why)
        fitted = trainer.train(fit)
        trace.add("fit", settings=fit.describe(), start=kept)
        return Outcome(note_fitted(trace, fitted, data), fitted)


def principal_components(X: np.ndarray, n_components: int) -> np.ndarray:
    """X (N, D) projected on its ``n_components`` leading principal directions: (N, n_components), float64.

    Examples
    --------
    >>> X = np.random.RandomState(0).normal(size=(50, 5)) * [10.0, 1.0, 1.0, 1.0, 0.1]
    >>> principal_components(X, 2).shape
    (50, 2)
    """
    centred = np.asarray(X, dtype=np.float64) - X.mean(axis=0)
    _, directions = leading_directions(centred, n_components)
    return centred @ directions


def note_fitted(trace: Trace, fitted: FittedMixture, data: Data) -> Trace:
    """Record what the kept fit holds that the settings did not say: its principal subspaces, and
    the components that ended without a point; returns ``trace``."""
    if fitted.density.subspaces is not None:
        trace.add(
            "subspaces",
            dim=fitted.density.flow_dim,
            why=f"{data.X.shape[1]} features: flows on principal subspaces (flowmix.subspace)",
        )
    empty = np.setdiff1d(np.arange(data.n_components), fitted.labels)
    if empty.size:
        trace.add(
            "empty components",
            components=empty.tolist(),
            why="no training point is most likely under them; lower n_components or inspect the data",
        )
    return trace


RECIPES: dict[str, type[Recipe]] = {"candidates": Candidates, "single": SingleFit}

#: Restarts of a single fit unless given: its restarts start apart, so the selection rule has
#: several partitions to rank.
SINGLE_FIT_RESTARTS = 3
#: What ``init="auto"`` and the single fit's selection stand for (:mod:`flowmix.init`,
#: :mod:`flowmix.selection`).
AUTO_INIT = "spectral-gmm-kmeans"
AUTO_SELECTION = "likelihood-or-cut"
#: The estimator's parameters that take the place of a recipe's own where given (not "auto").
OVERRIDES = ("init", "covariance_type", "algorithm", "early_stopping", "n_init")


def resolve(recipe: str | Recipe, params: dict[str, Any]) -> Recipe:
    """The recipe that an estimator's parameters stand for: the one place where ``"auto"`` is resolved.

    ``recipe="auto"`` is :class:`Candidates` when ``init`` and ``covariance_type`` are
    ``"auto"``, and :class:`SingleFit` otherwise. The parameters of ``OVERRIDES`` given
    explicitly (not ``"auto"``) take the place of the recipe's own in every fit it runs, a
    recipe object's included; ``early_stopping`` given as an
    :class:`~flowmix.options.EarlyStopping` counts as True.
    """
    explicit = {name: params[name] for name in OVERRIDES if not _is_auto(params[name])}
    if "early_stopping" in explicit:
        given = explicit["early_stopping"]
        explicit["early_stopping"] = isinstance(given, EarlyStopping) or bool(given)
    if isinstance(recipe, Recipe):
        return recipe.with_settings(**explicit) if explicit else recipe
    if not isinstance(recipe, str) or recipe not in ("auto", *RECIPES):
        raise ValueError(f"recipe must be 'auto', one of {list(RECIPES)} or a Recipe object, got {recipe!r}.")
    if recipe == "auto":
        recipe = "single" if "init" in explicit or "covariance_type" in explicit else "candidates"
    return RECIPES[recipe]().with_settings(**explicit)


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def to_json(recipe: str | Recipe) -> str | dict[str, Any] | None:
    """A ``recipe`` setting's JSON form for model files and records, or None where it has none
    (a single fit from a start given as an array, or a recipe class of the user's)."""
    if isinstance(recipe, str):
        return recipe
    if isinstance(recipe, SingleFit) and isinstance(recipe.init, str):
        return {"name": "single", "init": recipe.init, **recipe.settings}
    if type(recipe) is Candidates:
        fields = dict(vars(recipe))
        for name in ("shapes", "gaussian"):
            fields[name] = training_fields(fields[name])
        for name in ("graph_candidates", "neighbour_counts"):
            fields[name] = list(fields[name])
        return {"name": "candidates", **fields}
    return None


def from_json(value: Any) -> str | Recipe | None:
    """The recipe setting :func:`to_json` wrote (None stays None: refitting needs it given again)."""
    if not isinstance(value, dict):
        return value
    fields = {k: v for k, v in value.items() if k != "name"}
    if value.get("name") == "single":
        return SingleFit(fields.pop("init", "auto"), **fields)
    if value.get("name") == "candidates":
        for name in ("shapes", "gaussian"):
            fields[name] = Training(**fields[name])
        for name in ("graph_candidates", "neighbour_counts"):
            fields[name] = tuple(fields[name])
        return Candidates(**fields)
    raise ValueError(f"unknown recipe {value.get('name')!r} (flowmix knows 'single' and 'candidates')")
