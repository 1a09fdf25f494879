"""Recipes (flowmix.recipes): which fit runs, from which start, and the trace that says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_circles
from sklearn.metrics import adjusted_rand_score

from flowmix import FlowMixture
from flowmix.density import MixtureOfFlows
from flowmix.fitted import FittedMixture
from flowmix.flows import make_flow
from flowmix.recipes import Candidates, Data, Fit, Outcome, Recipe, SingleFit, Trace, note_fitted, resolve
from flowmix.training import TrainResult

QUICK = {"n_epochs": 4, "random_state": 0}


def quick(recipe: Recipe | None = None) -> Recipe:
    """``recipe`` (the default one if None) with 4 pretraining epochs, as the tests' short fits."""
    return (Candidates() if recipe is None else recipe).with_settings(pretrain_epochs=4)


def test_the_default_is_the_candidates_recipe_and_single_fits_take_given_settings():
    params = FlowMixture(3).get_params()
    assert isinstance(resolve("auto", params), Candidates)
    for given in ({"init": "kmeans"}, {"covariance_type": "full"}):
        recipe = resolve("auto", {**params, **given})
        assert isinstance(recipe, SingleFit)
    assert isinstance(resolve("single", params), SingleFit)
    assert resolve(SingleFit(selection="loss"), params).fit.selection == "loss"
    single = resolve("auto", {**params, "covariance_type": "full"}).fit
    assert single == Fit(
        init="spectral-gmm-kmeans",
        covariance_type="full",
        algorithm="hard-em",
        selection="likelihood-or-cut",
        early_stopping=True,
        n_init=3,
    )
    # an explicit algorithm replaces the recipe's own in every fit it runs
    candidates = resolve("auto", {**params, "algorithm": "annealed-em"})
    assert candidates.shapes.algorithm == candidates.gaussian.algorithm == "annealed-em"
    mine = Candidates(graph_advantage=2.0)
    assert resolve(mine, params) is mine
    # ... a recipe object's included
    restarted = resolve(mine, {**params, "n_init": 2})
    assert restarted.graph_advantage == 2.0 and restarted.shapes.n_init == restarted.gaussian.n_init == 2


def test_bad_recipes_are_refused_with_what_to_pass():
    params = FlowMixture(3).get_params()
    with pytest.raises(
        ValueError, match=r"recipe must be 'auto', one of \['candidates', 'single'\] or a Recipe"
    ):
        resolve("fast", params)
    with pytest.raises(ValueError, match="recipe='candidates' chooses the start itself"):
        resolve("candidates", {**params, "init": "kmeans"})


def test_rings_are_trained_from_a_graph_partition(circles):
    X, y = circles
    model = FlowMixture(2, random_state=0).fit(X)
    trace = model.recipe_trace_
    assert set(trace["candidates"]["normalised_cut"]) == {"genie", "spectral", "gmm-best"}
    assert trace["decision"]["kept"] in ("genie", "spectral") and model.covariance_type_ == "diag"
    assert trace["fit"]["start"] == trace["decision"]["kept"] and "empty components" not in trace
    assert adjusted_rand_score(y, model.labels_) > 0.95
    X_new, y_new = make_circles(200, noise=0.03, factor=0.5, random_state=1)
    assert adjusted_rand_score(y_new, model.predict(X_new)) > 0.95
    assert np.isfinite(model.score_samples(X_new)).all()


def test_overlapping_blobs_are_trained_from_the_gaussian_mixture_with_soft_em(tmp_path):
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(0, 1, (300, 2)), rng.normal([2.5, 0], 1, (300, 2))] @ np.array([[1, 0.5], [0, 1]])
    y = np.repeat([0, 1], 300)
    model = FlowMixture(2, recipe=quick(), **QUICK).fit(X)
    assert model.recipe_trace_["decision"]["kept"] == "gmm-best"
    assert model.covariance_type_ == "full" and model.algorithm_ == "soft-em"
    assert model.best_epoch_ is not None  # stopped on held-out points
    assert adjusted_rand_score(y, model.labels_) > 0.6
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    assert loaded.covariance_type_ == "full" and loaded.recipe_trace_ is None
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


class Recorded(Recipe):
    """Trains one given Fit and remembers it."""

    def __init__(self, fit: Fit):
        self.fit = fit

    def trainings(self):
        return [self.fit]

    def run(self, data, trainer):
        fitted = trainer.train(self.fit)
        trace = Trace()
        trace.add("fit", settings=self.fit.describe())
        return Outcome(trace, fitted)


def test_the_estimator_trains_exactly_the_fit_a_recipe_asks_for(three_blobs):
    X, y = three_blobs
    fit = Fit(
        init=y,
        covariance_type="full",
        algorithm="hard-em",
        selection="loss",
        early_stopping=False,
        n_init=2,
        pretrain_epochs=4,
    )
    by_recipe = FlowMixture(3, recipe=Recorded(fit), **QUICK).fit(X)
    settings = {
        "covariance_type": "full",
        "algorithm": "hard-em",
        "recipe": SingleFit(selection="loss", pretrain_epochs=4),
        "early_stopping": False,
    }
    by_settings = FlowMixture(3, init=y, n_init=2, **settings, **QUICK).fit(X)
    np.testing.assert_array_equal(by_recipe.losses_, by_settings.losses_)
    np.testing.assert_array_equal(by_recipe.score_samples(X), by_settings.score_samples(X))
    assert by_recipe.recipe_trace_["fit"]["settings"]["init"] == "array of shape (300,)"


def test_the_decision_follows_the_graph_advantage(three_blobs):
    X, _ = three_blobs
    always_graph = Candidates(graph_advantage=0.0)  # any cut is "lower" than the Gaussian one's times 0
    never_graph = Candidates(graph_advantage=np.inf)
    assert (
        FlowMixture(3, recipe=quick(never_graph), **QUICK).fit(X).recipe_trace_["decision"]["kept"]
        == "gmm-best"
    )
    model = FlowMixture(3, recipe=quick(always_graph), **QUICK).fit(X)
    assert model.recipe_trace_["decision"]["kept"] in ("genie", "spectral")
    assert model.algorithm_ == "hard-em" and model.covariance_type_ == "diag"


def test_too_few_points_to_hold_out_train_without_early_stopping():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    model = FlowMixture(2, recipe=quick(Candidates(graph_advantage=np.inf)), **QUICK).fit(X)
    assert "no early stopping" in model.recipe_trace_ and model.best_epoch_ is None
    assert adjusted_rand_score([0, 0, 1, 1], model.labels_) == 1.0


def test_one_component_needs_no_candidates(three_blobs):
    X, _ = three_blobs
    model = FlowMixture(1, recipe=quick(), **QUICK).fit(X)
    assert "candidates" not in model.recipe_trace_ and set(model.labels_) == {0}


def fitted_with_labels(labels: np.ndarray, n_components: int) -> FittedMixture:
    """A fitted mixture of ``n_components`` untrained flows on every feature of 2-D points, with ``labels``."""
    flows = make_flow("maf", n_components, 2, generator=torch.Generator().manual_seed(0))
    density = MixtureOfFlows(flows, torch.zeros(1, n_components, 2), 0.1)
    result = TrainResult(np.zeros((1, 1)), np.array([-1]), 1)
    return FittedMixture(density, result, 0, labels=labels)


def test_empty_components_are_recorded():
    trace = Trace()
    data = Data(np.zeros((4, 2)), 4, 0, False)
    assert note_fitted(trace, fitted_with_labels(np.array([0, 0, 2, 2]), 4), data) is trace
    assert trace["empty components"]["components"] == [1, 3]
    data = Data(np.zeros((2, 2)), 2, 0, False)
    note_fitted(quiet := Trace(), fitted_with_labels(np.array([0, 1]), 2), data)
    assert quiet.steps == []


def test_the_default_resumes_from_its_checkpoint(circles, tmp_path):
    X, _ = circles
    settings = {**QUICK, "recipe": quick(), "checkpoint": tmp_path}
    first = FlowMixture(2, **settings).fit(X)
    again = FlowMixture(2, **settings).fit(X)
    np.testing.assert_array_equal(again.losses_, first.losses_)
    np.testing.assert_array_equal(again.labels_, first.labels_)


def test_a_recipe_shows_its_settings():
    text = repr(Candidates(graph_advantage=2.0))
    assert "graph_advantage=2.0" in text and "genie" in text


def test_tiny_clusters_are_kept_apart_from_a_large_one():
    rng = np.random.RandomState(0)
    sizes = [300, 10, 2]
    X = np.concatenate(
        [rng.normal(c, 0.5, (n, 2)) for c, n in zip([[0, 0], [4, 0], [0, 4]], sizes, strict=True)]
    )
    model = FlowMixture(3, recipe=quick(), **QUICK).fit(X)
    assert adjusted_rand_score(np.repeat([0, 1, 2], sizes), model.labels_) == 1.0
    assert "empty components" not in model.recipe_trace_
