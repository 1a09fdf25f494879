"""Recipes: how one fit composes candidate starts, training and selection, as inspectable objects.

A recipe sees the preprocessed training data and a function that trains the mixture once with
fully resolved settings (a :class:`Fit`); it decides which fit to run and records every decision
in a :class:`Trace`, which the estimator keeps as ``recipe_trace_``. The estimator validates,
preprocesses, runs its recipe and stores the result; the decisions live here.

- :class:`SingleFit`: one training with the estimator's own settings (the paper presets, and any
  fit whose ``init``, ``covariance_type`` or ``selection`` is given).
- :class:`Candidates`: the default. Cheap clusterers propose partitions (Genie and spectral
  clustering for shapes, a Gaussian mixture for overlapping ellipses); the normalised cut of
  the kNN graph, a criterion that needs no labels and no density, scores them; the mixture of
  flows is then trained from the partition the scores keep. On wide data the candidates are
  computed on the data's leading principal components.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowmix.init import INITIALISATIONS, SPECTRAL_NEIGHBOUR_CYCLE
from flowmix.selection import normalised_cuts
from flowmix.subspace import leading_directions


@dataclass(frozen=True)
class Fit:
    """One training of the mixture, every setting resolved (no ``"auto"``).

    ``init`` is a strategy name of :mod:`flowmix.init`, or labels (N,) / responsibilities (N, K)
    of every point; the other fields name entries of the training and selection registries.
    """

    covariance_type: str
    init: str | np.ndarray
    algorithm: str
    selection: str
    early_stopping: bool
    n_init: int

    def describe(self) -> dict[str, Any]:
        """The settings as plain values (a start given as an array is described by its shape)."""
        described = dataclasses.asdict(self)
        if not isinstance(self.init, str):
            described["init"] = f"array of shape {np.shape(self.init)}"
        return described


class Trace:
    """What a recipe ran and why: ``steps``, one dict per step, in order, each with its ``"step"`` name."""

    def __init__(self) -> None:
        self.steps: list = []

    def __repr__(self) -> str:
        return f"Trace(steps={self.steps!r})"

    def add(self, step: str, **facts: Any) -> None:
        self.steps.append({"step": step, **facts})

    def __getitem__(self, step: str) -> dict[str, Any]:
        """The last entry of ``step``."""
        for entry in reversed(self.steps):
            if entry["step"] == step:
                return entry
        raise KeyError(step)

    def __contains__(self, step: str) -> bool:
        return any(entry["step"] == step for entry in self.steps)


# Trains the mixture once with these settings on the training data and returns its (N,) labels.
TrainOnce = Callable[[Fit], np.ndarray]


@dataclass(frozen=True)
class Data:
    """What a recipe sees: the preprocessed training points and what the estimator can do with them."""

    X: np.ndarray
    n_components: int
    seed: int
    can_hold_out: bool  # whether validation_fraction leaves validation and enough training points


class Recipe:
    """A way to fit: ``run`` decides which :class:`Fit` to train, trains it and returns the trace."""

    name = "recipe"

    @property
    def max_restarts(self) -> int:
        """The most restarts any fit of this recipe trains at once (what the memory budget is checked for)."""
        return 1

    def run(self, data: Data, train: TrainOnce) -> Trace:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class SingleFit(Recipe):
    """One training with given settings: the recipe of the paper presets and of explicit settings."""

    name = "single"

    def __init__(self, fit: Fit):
        self.fit = fit

    @property
    def max_restarts(self) -> int:
        return self.fit.n_init

    def run(self, data: Data, train: TrainOnce) -> Trace:
        trace = Trace()
        labels = train(self.fit)
        trace.add("fit", settings=self.fit.describe(), why="the settings were given")
        note_empty(trace, labels, data.n_components)
        return trace


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
    shapes, gaussian : Fit
        How the mixture is trained from a graph partition (per-dimension base scales, hard EM:
        the partition's shape is the flows' to learn) and from the Gaussian one (full
        covariances and soft EM from its posteriors, stopped on held-out points: the posteriors
        place the boundaries of overlapping clusters). Their ``init`` is replaced by the kept
        partition.
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
        shapes: Fit = Fit("diag", "kept partition", "hard-em", "loss", False, 1),
        gaussian: Fit = Fit("full", "kept partition", "soft-em", "loss", True, 1),
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

    @property
    def max_restarts(self) -> int:
        return max(self.shapes.n_init, self.gaussian.n_init)

    def run(self, data: Data, train: TrainOnce) -> Trace:
        trace = Trace()
        X, n_components = data.X, data.n_components
        names = [*self.graph_candidates, self.gaussian_candidate]
        rng = np.random.RandomState(data.seed)
        gaussian = self.gaussian
        if gaussian.early_stopping and not data.can_hold_out and not self.strict_early_stopping:
            gaussian = dataclasses.replace(gaussian, early_stopping=False)
            trace.add("no early stopping", why="too few points to hold validation points out")
        if n_components == 1:  # nothing to partition
            fit = dataclasses.replace(gaussian, init=np.zeros(len(X), dtype=np.int64))
            train(fit)
            trace.add("fit", settings=fit.describe(), why="one component: nothing to choose")
            return trace
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
            kept, fit = names[best_graph], dataclasses.replace(self.shapes, init=partitions[best_graph])
            why = (
                f"{kept}'s cut {cuts[best_graph]:.4g} is more than {self.graph_advantage} times lower than "
                f"the Gaussian partition's {gaussian_cut:.4g}: clusters separated by gaps"
            )
        else:
            start = responsibilities[self.gaussian_candidate].astype(np.float64)
            kept, fit = self.gaussian_candidate, dataclasses.replace(gaussian, init=start)
            why = (
                f"no graph partition cuts more than {self.graph_advantage} times fewer edges than the "
                f"Gaussian one ({cuts[best_graph]:.4g} against {gaussian_cut:.4g}): overlapping clusters"
            )
        trace.add("decision", kept=kept, why=why)
        labels = train(fit)
        trace.add("fit", settings=fit.describe(), start=kept)
        note_empty(trace, labels, n_components)
        return trace


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


def note_empty(trace: Trace, labels: np.ndarray, n_components: int) -> None:
    """Record the components that ended without a point, if any."""
    empty = np.setdiff1d(np.arange(n_components), labels)
    if empty.size:
        trace.add(
            "empty components",
            components=empty.tolist(),
            why="no training point is most likely under them; lower n_components or inspect the data",
        )


RECIPES: dict[str, type[Recipe]] = {"candidates": Candidates, "single": SingleFit}


def resolve(recipe: str | Recipe, params: dict[str, Any]) -> Recipe:
    """The recipe that an estimator's parameters stand for: the one place where ``"auto"`` is resolved.

    ``recipe="auto"`` is :class:`Candidates` when ``init``, ``covariance_type`` and
    ``selection`` are all ``"auto"`` (a selection rule ranks restarts, which only a single fit
    trains) and :class:`SingleFit` otherwise. Settings given explicitly (not ``"auto"``) take
    the place of the recipe's own in every fit it runs. For a single fit, ``"auto"`` stands for
    per-dimension base scales (``"diag"``), hard EM, and early stopping with full covariances only.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if not isinstance(recipe, str) or recipe not in ("auto", *RECIPES):
        raise ValueError(f"recipe must be 'auto', one of {list(RECIPES)} or a Recipe object, got {recipe!r}.")
    init = params["init"]
    given_init = not (isinstance(init, str) and init == "auto")
    if recipe == "auto":
        chosen = given_init or params["covariance_type"] != "auto" or params["selection"] != "auto"
        recipe = "single" if chosen else "candidates"
    explicit = {
        name: params[name]
        for name in ("covariance_type", "algorithm", "selection", "early_stopping")
        if not (isinstance(params[name], str) and params[name] == "auto")
    }
    if "early_stopping" in explicit:
        explicit["early_stopping"] = bool(explicit["early_stopping"])
    if recipe == "candidates":
        if given_init:
            raise ValueError(
                "recipe='candidates' chooses the start itself; leave init='auto', or use recipe='single' "
                "to start from the given init."
            )
        defaults = Candidates()
        return Candidates(
            shapes=dataclasses.replace(defaults.shapes, **explicit),
            gaussian=dataclasses.replace(defaults.gaussian, **explicit),
            strict_early_stopping=explicit.get("early_stopping", False),
        )
    covariance_type = explicit.get("covariance_type", "diag")
    return SingleFit(
        Fit(
            covariance_type=covariance_type,
            init=init,
            algorithm=explicit.get("algorithm", "hard-em"),
            selection=params["selection"],
            early_stopping=explicit.get("early_stopping", covariance_type == "full"),
            n_init=params["n_init"],
        )
    )
