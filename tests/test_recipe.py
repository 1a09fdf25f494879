"""flowmix's clustering recipe: cluster starts, EM algorithms, selection rules and the default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs, make_circles
from sklearn.metrics import adjusted_rand_score

from flowmix import FlowMixture, init, selection, training
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow


@pytest.fixture(scope="module")
def circles():
    X, y = make_circles(400, noise=0.03, factor=0.5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=1.0, random_state=0)
    return X, y


def test_start_from_responsibilities_locates_scales_and_weights_clusters():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, [1, 2], (300, 2)), rng.normal(10, 0.5, (100, 2))])
    labels = np.repeat([0, 1], [300, 100])
    start = init.start_from_responsibilities(X, init.one_hot(labels[None], 2))
    np.testing.assert_allclose(start.weights[0], [0.75, 0.25])
    np.testing.assert_allclose(start.means[0], [X[:300].mean(0), X[300:].mean(0)], rtol=1e-5)
    np.testing.assert_allclose(start.scales[0], [X[:300].std(0), X[300:].std(0)], rtol=1e-4)
    assert start.responsibilities.shape == (1, 400, 2)


def test_spectral_start_separates_the_circles(circles):
    X, y = circles
    start = init.spectral_partition(X.astype(np.float32), 2, 2, np.random.RandomState(0))
    for r in start.responsibilities:
        assert adjusted_rand_score(y, r.argmax(1)) == 1.0


def test_spectral_start_on_a_subsample_labels_every_point(circles, monkeypatch):
    X, y = circles
    monkeypatch.setattr(init, "SPECTRAL_MAX_POINTS", 200)
    start = init.spectral_partition(X.astype(np.float32), 1, 2, np.random.RandomState(0))
    assert adjusted_rand_score(y, start.responsibilities[0].argmax(1)) > 0.95


def test_auto_start_cycles_through_the_strategies(blobs):
    X, _ = blobs
    start = init.automatic(X.astype(np.float32), 4, 3, np.random.RandomState(0))
    assert start.means.shape == (4, 3, 2) and start.responsibilities.shape == (4, 300, 3)
    # Restart 1 starts from GMM posteriors (soft); restarts 0, 2 and 3 from hard partitions.
    assert set(np.unique(start.responsibilities[0])) <= {0.0, 1.0}
    assert set(np.unique(start.responsibilities[2])) <= {0.0, 1.0}
    assert not set(np.unique(start.responsibilities[1])) <= {0.0, 1.0}


def test_user_labels_start_the_fit(blobs):
    X, y = blobs
    model = FlowMixture(
        3,
        init=y,
        algorithm="hard-em",
        selection="likelihood",
        n_init=1,
        n_epochs=5,
        pretrain_epochs=20,
        random_state=0,
    )  # hard EM keeps the start's partition; soft EM may move a point the blobs share (tested below)
    assert adjusted_rand_score(y, model.fit(X).labels_) == 1.0
    soft = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert adjusted_rand_score(y, model.set_params(init=soft).fit(X).labels_) == 1.0


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (np.zeros(5, dtype=int), r"integer array of shape \(300,\)"),
        (np.full(300, 3), r"init labels must lie in 0..2"),
        (np.full((300, 3), 0.5), "sum to 1 in every row"),
        (np.zeros((300, 2)), r"shape \(n_samples, n_components\) = \(300, 3\)"),
    ],
)
def test_bad_user_assignments_say_what_is_expected(blobs, assignments, message):
    with pytest.raises(ValueError, match=message):
        FlowMixture(3, init=assignments, selection="likelihood", n_epochs=1).fit(blobs[0])


def test_array_init_labels_every_point_and_the_held_out_rows_are_left_out(blobs):
    X, y = blobs
    model = FlowMixture(3, init=y, early_stopping=True, selection="auto", n_init=1, n_epochs=3,
                        pretrain_epochs=5, random_state=0).fit(X)  # fmt: skip
    assert adjusted_rand_score(y, model.labels_) == 1.0


@pytest.mark.parametrize("algorithm", ["hard-em", "soft-em", "annealed-em", "mle"])
def test_every_algorithm_keeps_a_correct_start_and_lowers_its_loss(blobs, algorithm):
    X, y = blobs
    model = FlowMixture(3, init=y, algorithm=algorithm, selection="likelihood", n_init=1, n_epochs=15,
                        pretrain_epochs=10, batch_size=100, random_state=0).fit(X)  # fmt: skip
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.empty_components_.size == 0


def _two_component_density(dim=2):
    flows = make_flow("maf", 2, dim, hidden_units=(4,), generator=torch.Generator().manual_seed(0))
    return MixtureOfFlows(flows, torch.tensor([[[0.0, 0.0], [5.0, 5.0]]]), 1.0)


def test_hard_em_weights_are_the_shares_held_above_the_floor():
    density = _two_component_density()
    training._set_weights(density, torch.tensor([[100.0, 0.0]]))
    weights = density.log_weights().exp()[0]
    floor = training.WEIGHT_FLOOR / 2
    np.testing.assert_allclose(weights.detach().numpy(), [1 / (1 + floor), floor / (1 + floor)], rtol=1e-6)


@pytest.mark.parametrize(
    ("n_samples", "batch_size", "interval"),
    [(64, 16, 4), (2048, 512, 4), (3200, 800, 4), (1000, 512, 8), (10_000, 512, 1), (50, 512, 16)],
)
def test_an_e_step_comes_every_sixteen_steps_at_least(n_samples, batch_size, interval):
    assert training.e_step_interval(n_samples, batch_size) == interval


@pytest.mark.parametrize("algorithm", ["hard-em", "soft-em", "annealed-em"])
def test_em_runs_its_e_steps_at_the_interval(monkeypatch, algorithm):
    X = torch.as_tensor(np.random.RandomState(0).normal(size=(64, 2)).T, dtype=torch.float32)
    density = _two_component_density()
    passes = []
    original = training.joint_log_prob_in_chunks

    def counted(model, columns):
        passes.append(columns.shape[1])
        return original(model, columns)

    monkeypatch.setattr(training, "joint_log_prob_in_chunks", counted)
    config = training.TrainConfig(n_epochs=10, batch_size=16, generator=torch.Generator().manual_seed(0))
    training.get_algorithm(algorithm)(density, X, config)
    assert passes == [64] * 3  # epochs 0, 4 and 8 at 4 steps an epoch


@pytest.mark.parametrize(("n_samples", "expected"), [(100, 512), (1024, 512), (2048, 1024), (3201, 1601),
                                                     (4096, 2048), (100_000, 2048)])  # fmt: skip
def test_the_automatic_batch_is_half_of_the_points_within_bounds(n_samples, expected):
    from flowmix.estimator import resolve_batch_size

    assert resolve_batch_size("auto", n_samples) == expected
    assert resolve_batch_size(300, n_samples) == 300


def test_graph_cut_prefers_the_partition_along_the_gap(circles, monkeypatch):
    X, y = circles
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 4, 2), torch.zeros(2, 2, 2), 1.0)

    halves = (X[:, 0] > 0).astype(int)
    monkeypatch.setattr(selection, "restart_labels", lambda density, columns: np.stack([y, halves]))
    scores = selection.graph_cut(None, density, columns, None)
    assert scores[0] == 0 < scores[1]


def test_spectral_objective_ranks_the_rings_above_halves_and_an_emptied_component_last(circles, monkeypatch):
    X, y = circles
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    density = MixtureOfFlows(make_flow("maf", 6, 2), torch.zeros(3, 2, 2), 1.0)
    halves = (X[:, 0] > 0).astype(int)
    parts = np.stack([halves, y, np.zeros_like(y)])
    monkeypatch.setattr(selection, "restart_labels", lambda density, columns: parts)
    scores = selection.spectral_objective(None, density, columns, None)
    assert np.argsort(scores).tolist() == [1, 0, 2]
    best, _ = selection.select("spectral", _unstopped(3), density, columns, None)
    assert best == 1


def _unstopped(n_restarts):
    """A training result whose restarts all ran to the end (select() reads stopped_epoch only)."""
    from types import SimpleNamespace

    return SimpleNamespace(stopped_epoch=np.full(n_restarts, -1))


def test_default_recipe_separates_the_circles_and_predicts_new_points(circles):
    X, y = circles
    model = FlowMixture(2, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    # Rings are far from Gaussian: the full-covariance fit's gain over a GMM sends it to diagonal bases.
    assert model.gaussian_gain_ > selection.GAUSSIAN_GAIN and model.covariance_type_ == "diag"
    X_new, y_new = make_circles(200, noise=0.03, factor=0.5, random_state=1)
    assert adjusted_rand_score(y_new, model.predict(X_new)) > 0.95
    assert np.isfinite(model.score_samples(X_new)).all()


def test_a_model_fitted_from_user_labels_saves_loads_and_asks_for_them_to_refit(blobs, tmp_path):
    X, y = blobs
    model = FlowMixture(
        3, init=y, selection="likelihood", n_init=1, n_epochs=2, pretrain_epochs=5, random_state=0
    )
    loaded = FlowMixture.load(model.fit(X).save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="pass init= .a strategy name or the labels. to fit it again"):
        loaded.fit(X)


QUICK = {"n_epochs": 4, "pretrain_epochs": 4, "n_init": 2, "random_state": 0}


def test_automatic_bases_keep_the_gaussian_fit_on_blobs(blobs, tmp_path):
    X, y = blobs
    model = FlowMixture(3, **QUICK).fit(X)
    assert model.covariance_type_ == "full" and model.base_covariances_ is not None
    assert model.gaussian_gain_ <= selection.GAUSSIAN_GAIN and model.algorithm_ == "soft-em"
    assert model.best_epoch_ is not None  # early_stopping="auto" stopped the full-covariance fit
    assert adjusted_rand_score(y, model.labels_) > 0.95
    # Its loss curves are views into the restarts' table: saving must still write them.
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    assert loaded.covariance_type_ == "full" and loaded.gaussian_gain_ is None
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("threshold", [np.inf, -np.inf])
def test_automatic_bases_are_exactly_the_chosen_stage_fit(blobs, monkeypatch, threshold):
    X, _ = blobs
    monkeypatch.setattr("flowmix.estimator.GAUSSIAN_GAIN", threshold)
    automatic = FlowMixture(3, **QUICK).fit(X)
    full = FlowMixture(3, **QUICK, covariance_type="full").fit(X)
    diag = FlowMixture(3, **QUICK, covariance_type="diag", selection="spectral").fit(X)
    # Gaussian clusters: algorithm="auto" fits them once more with soft EM, and keeps that fit's
    # refinement of the restart the first fit kept.
    expected = FlowMixture(3, **QUICK, covariance_type="full", algorithm="soft-em")
    expected._refit_restart = full.best_restart_
    expected.fit(X)
    if threshold < 0:  # both fitted; spectral clustering's objective picks a kept partition, diag on a tie
        inertias = selection.spectral_inertias(X, np.stack([diag.labels_, full.labels_]), 3)
        expected = full if inertias[1] < inertias[0] else diag
    assert automatic.covariance_type_ == expected.covariance_type_ and np.isfinite(automatic.gaussian_gain_)
    np.testing.assert_array_equal(automatic.labels_, expected.labels_)
    np.testing.assert_array_equal(automatic.losses_, expected.losses_)
    np.testing.assert_array_equal(automatic.score_samples(X), expected.score_samples(X))
    assert full.gaussian_gain_ is None  # measured by covariance_type="auto" only


def test_the_soft_em_refit_keeps_the_first_fits_restart_whatever_its_own_scores(blobs, monkeypatch):
    X, _ = blobs
    monkeypatch.setattr("flowmix.estimator.GAUSSIAN_GAIN", np.inf)
    calls = []

    def first_then_last(result, density, train, validation):
        """Ranks restart 0 best in the first fit and the last one best in the refit."""
        calls.append(density.n_restarts)
        order = np.arange(density.n_restarts, dtype=float)
        return order if len(calls) == 1 else -order

    monkeypatch.setitem(selection.SELECTIONS, "auto", first_then_last)
    automatic = FlowMixture(3, **QUICK).fit(X)
    assert len(calls) == 2 and automatic.algorithm_ == "soft-em"
    assert np.argmin(automatic.selection_scores_) == QUICK["n_init"] - 1  # the refit's own choice...
    assert automatic.best_restart_ == 0  # ...is overruled by the first fit's


def test_a_chosen_algorithm_keeps_the_first_gaussian_fit(blobs, monkeypatch):
    X, _ = blobs
    monkeypatch.setattr("flowmix.estimator.GAUSSIAN_GAIN", np.inf)
    automatic = FlowMixture(3, **QUICK, algorithm="hard-em").fit(X)
    full = FlowMixture(3, **QUICK, covariance_type="full", algorithm="hard-em").fit(X)
    np.testing.assert_array_equal(automatic.losses_, full.losses_)
    np.testing.assert_array_equal(automatic.score_samples(X), full.score_samples(X))


def test_soft_em_trains_each_flow_on_the_points_it_has_a_share_of():
    shares = torch.tensor([[[0.9995, 0.2, 0.0004], [0.0005, 0.8, 0.0004], [0.0, 0.0, 0.9992]]])
    kept = training.truncate_posteriors(shares)
    np.testing.assert_allclose(kept[0].numpy(), [[1, 0.2, 0], [0, 0.8, 0], [0, 0, 1]], atol=1e-7)
    # K > 1000: every share can lie below the floor; the largest is kept, so no point is left out.
    many = torch.softmax(torch.linspace(0, 1, 2000), dim=0)[None, :, None]
    assert (many < training.POSTERIOR_FLOOR).all()
    kept = training.truncate_posteriors(many)[0, :, 0]
    assert kept[-1] == 1 and (kept[:-1] == 0).all()


def test_automatic_bases_on_too_few_points_to_hold_out_fit_the_shapes_alone():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    model = FlowMixture(2, **QUICK).fit(X)
    assert model.gaussian_gain_ is None and model.covariance_type_ == "diag"
    assert len(np.unique(model.labels_)) == 2


def test_automatic_bases_checkpoint_each_stage_apart_and_resume(circles, tmp_path, monkeypatch):
    X, _ = circles
    monkeypatch.setattr("flowmix.estimator.GAUSSIAN_GAIN", -np.inf)  # both stages run
    settings = {**QUICK, "checkpoint_dir": tmp_path / "fit"}
    first = FlowMixture(2, **settings).fit(X)
    assert first.covariance_type_ == "diag"
    assert {p.name for p in (tmp_path / "fit").iterdir()} == {"full-covariance", "diag-covariance"}
    again = FlowMixture(2, **settings).fit(X)  # both stages continue from their finished checkpoints
    np.testing.assert_array_equal(again.labels_, first.labels_)
    np.testing.assert_array_equal(again.losses_, first.losses_)
    monkeypatch.setattr("flowmix.estimator.GAUSSIAN_GAIN", np.inf)  # the Gaussian refit has its own
    gaussian = FlowMixture(2, **{**settings, "checkpoint_dir": tmp_path / "gaussian"}).fit(X)
    assert {p.name for p in (tmp_path / "gaussian").iterdir()} == {
        "full-covariance",
        "full-covariance-soft-em",
    }
    again = FlowMixture(2, **{**settings, "checkpoint_dir": tmp_path / "gaussian"}).fit(X)
    np.testing.assert_array_equal(again.losses_, gaussian.losses_)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"covariance_type": "spherical"}, "covariance_type must be 'auto', 'full' or 'diag'"),
        ({"early_stopping": "yes"}, "early_stopping must be True, False or 'auto'"),
    ],
)
def test_bad_automatic_settings_say_what_is_allowed(blobs, params, message):
    with pytest.raises(ValueError, match=message):
        FlowMixture(3, **params).fit(blobs[0])
