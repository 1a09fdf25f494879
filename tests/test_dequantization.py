"""Dequantisation of lattice-valued features (flowmix.dequantization) and its use by FlowMixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from flowmix import FlowMixture
from flowmix.dequantization import Jitter, jittered, lattice_steps, snap_to_lattice
from flowmix.memory_budget import FLOAT_BYTES, fit_plan
from flowmix.recipes import Candidates, SingleFit
from flowmix.training import TrainConfig, minimise

FAST = {"n_epochs": 30, "recipe": Candidates().with_settings(pretrain_epochs=20), "random_state": 0}


def ratings(n_per_cluster: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three groups answering three questions on a 1-5 scale, plus one continuous feature."""
    rng = np.random.RandomState(seed)
    answers = [(0.6, 0.3, 0.1, 0.0, 0.0), (0.0, 0.1, 0.3, 0.6, 0.0), (0.1, 0.1, 0.1, 0.2, 0.5)]
    blocks, labels = [], []
    for label, (shares, centre) in enumerate(zip(answers, (0.0, 2.0, -2.0), strict=True)):
        scale = rng.choice(5, size=(n_per_cluster, 3), p=shares) + 1
        blocks.append(np.c_[scale, rng.normal(centre, 1.0, n_per_cluster)])
        labels.append(np.full(n_per_cluster, label))
    order = rng.permutation(3 * n_per_cluster)
    return np.vstack(blocks)[order].astype(np.float64), np.concatenate(labels)[order]


def test_auto_takes_the_integer_features_that_vary():
    X = np.array([[0.0, 0.5, 3.0, -2.0], [1.0, 1.5, 3.0, 7.0], [5.0, 0.25, 3.0, 1e6]])
    assert lattice_steps("auto", X).tolist() == [1.0, 0.0, 0.0, 1.0]
    assert lattice_steps("auto", X[:, 1:3]) is None  # a fraction and a constant: nothing to do
    assert lattice_steps(None, X) is None and lattice_steps(False, X) is None
    assert lattice_steps([0, 0.5, 0, 0], X).tolist() == [0.0, 0.5, 0.0, 0.0]
    assert lattice_steps([0, 0, 0, 0], X) is None


@pytest.mark.parametrize(
    "given", [[1.0, 1.0], [1.0, -1.0, 0.0, 0.0], [np.inf, 0, 0, 0], "every", [[1.0] * 4]]
)
def test_steps_of_the_wrong_shape_or_sign_are_refused(given):
    expected = (
        r"dequantize must be 'auto', None, or one non-negative finite lattice step per feature \(shape \(4,\)"
    )
    with pytest.raises(ValueError, match=expected):
        lattice_steps(given, np.zeros((3, 4)))


@pytest.mark.parametrize("given", ["yes", True])
def test_the_estimator_refuses_a_bad_dequantize_before_fitting(given):
    expected = (
        r"dequantize must be 'auto', None, or one non-negative finite lattice step per feature \(0 for a"
    )
    with pytest.raises(ValueError, match=expected):
        FlowMixture(2, dequantize=given).fit(np.zeros((10, 2)))


def test_the_estimator_refuses_steps_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        FlowMixture(2, dequantize=[1.0, 1.0, 1.0]).fit(np.random.RandomState(0).rand(20, 2))


def test_each_draw_moves_lattice_features_within_half_a_step_and_nothing_else():
    columns = torch.arange(12.0).reshape(3, 4)
    jitter = Jitter(columns, np.array([2.0, 0.0, 0.5]), torch.Generator().manual_seed(0))
    first = jitter.draw().clone()
    second = jitter.draw().clone()
    assert torch.equal(first[1], columns[1]) and torch.equal(second[1], columns[1])
    for row, width in ((0, 2.0), (2, 0.5)):
        moved = first[row] - columns[row]
        assert (moved.abs() <= width / 2).all() and (moved != 0).all()
    assert not torch.equal(first, second)  # fresh noise every epoch
    again = Jitter(columns, np.array([2.0, 0.0, 0.5]), torch.Generator().manual_seed(0)).draw()
    assert torch.equal(again, first)  # the generator decides the noise
    assert torch.equal(columns, torch.arange(12.0).reshape(3, 4))  # the points themselves are kept


def test_one_fixed_draw_spreads_each_cell_uniformly():
    moved = jittered(np.zeros((20000, 2)), np.array([1.0, 0.0]), seed=3)
    assert np.all(moved[:, 1] == 0) and np.all(np.abs(moved[:, 0]) <= 0.5)
    counts, _ = np.histogram(moved[:, 0], bins=10, range=(-0.5, 0.5))
    assert counts.min() > 1800 and counts.max() < 2200
    assert np.array_equal(moved, jittered(np.zeros((20000, 2)), np.array([1.0, 0.0]), seed=3))


def test_samples_are_rounded_to_each_features_lattice():
    X = np.array([[0.26, 0.26, 7.4], [-1.6, 0.74, 7.6]])
    snapped = snap_to_lattice(X, np.array([0.5, 0.0, 1.0]))
    assert snapped.tolist() == [[0.5, 0.26, 7.0], [-1.5, 0.74, 8.0]]
    assert snap_to_lattice(X, None) is X


def test_training_steps_see_noisy_points_and_epochs_see_fresh_noise():
    columns = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4]])
    seen = []

    def objective(model, batch, index):
        seen.append(batch.detach().clone())
        return model.log_prob_columns(batch).mean(dim=-1) * 0  # a zero loss: only the batches matter

    model = FlowMixture(
        1,
        flow="maf",
        n_init=1,
        flow_params={"hidden_units": (2,)},
        recipe=Candidates().with_settings(pretrain_epochs=0),
        n_epochs=1,
        random_state=0,
    )
    model.fit(np.random.RandomState(0).rand(8, 2))
    config = TrainConfig(
        n_epochs=3, batch_size=4, learning_rate=1e-3, shuffle=False, batch_order="shared", shuffle_buffer=None,
        callback_every=50, n_iter_no_change=10, tol=1e-4, stable_e_steps=None,
        generator=torch.Generator().manual_seed(0), dequantization=np.array([1.0, 0.0]),
    )  # fmt: skip
    minimise(model.density_, columns, objective, config)
    assert len(seen) == 3
    for batch in seen:
        assert torch.equal(batch[1], columns[1])
        assert ((batch[0] - columns[0]).abs() <= 0.5).all() and not torch.equal(batch[0], columns[0])
    assert not torch.equal(seen[0], seen[1])


def test_memory_plan_counts_the_copies_of_the_points():
    settings = {"n_samples": 1000, "dim": 8, "n_stack": 3, "flow_parameters": 100, "floats_per_point": 10,
                "batch_size": 100, "auto_batch": False, "budget": 2**30}  # fmt: skip
    assert fit_plan(**settings, data_copies=3).data - fit_plan(**settings).data == 2 * FLOAT_BYTES * 1000 * 8


def test_ratings_are_clustered_and_their_density_stays_finite():
    """On a 1-5 scale, undequantised flows pile density onto the answers and their loss runs away.

    The held-out log-likelihood is measured as dequantisation defines it: the log density at
    the points moved uniformly within their cells, averaged over draws.
    """
    X, y = ratings()
    held_X, _ = ratings(seed=1)
    steps = np.array([1.0, 1.0, 1.0, 0.0])

    def held_out_log_likelihood(model: FlowMixture) -> float:
        rng = np.random.RandomState(0)
        return float(
            np.mean([model.score(held_X + (rng.rand(*held_X.shape) - 0.5) * steps) for _ in range(5)])
        )

    dequantised = FlowMixture(3, **FAST).fit(X)
    as_given = FlowMixture(3, dequantize=None, **FAST).fit(X)
    assert (
        dequantised.dequantization_steps_.tolist() == steps.tolist()
        and as_given.dequantization_steps_ is None
    )
    assert adjusted_rand_score(y, dequantised.labels_) > 0.8
    assert held_out_log_likelihood(dequantised) > held_out_log_likelihood(as_given) + 3.0
    assert dequantised.loss_curve_[-1] > as_given.loss_curve_[-1] + 3.0  # the spikes' runaway loss
    samples, _ = dequantised.sample(200)
    assert np.array_equal(samples[:, :3], np.round(samples[:, :3]))  # the answers are on the scale
    assert not np.array_equal(samples[:, 3], np.round(samples[:, 3]))


def test_continuous_data_fit_as_before():
    X = np.random.RandomState(0).normal(size=(120, 2))
    auto = FlowMixture(2, **FAST).fit(X)
    off = FlowMixture(2, dequantize=None, **FAST).fit(X)
    assert auto.dequantization_steps_ is None
    np.testing.assert_array_equal(auto.score_samples(X), off.score_samples(X))


def test_dequantisation_is_kept_by_save_and_load(tmp_path):
    X, _ = ratings(40)
    recipe = Candidates().with_settings(pretrain_epochs=2)
    model = FlowMixture(3, dequantize=[1.0, 1.0, 0.0, 0.0], n_epochs=2, recipe=recipe, random_state=0).fit(X)
    model.save(tmp_path / "model")
    loaded = FlowMixture.load(tmp_path / "model")
    assert loaded.dequantization_steps_.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert loaded.get_params()["dequantize"] == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_array_equal(loaded.sample(50)[0], model.sample(50)[0])


def test_a_dequantised_fit_plans_for_its_copies_of_the_points():
    X, _ = ratings(40)  # 120 points, 4 features
    recipe = SingleFit(selection="loss", pretrain_epochs=1)
    settings = {"init": "kmeans", "recipe": recipe, "n_epochs": 1, "random_state": 0}
    dequantised = FlowMixture(3, **settings).fit(X).memory_plan_
    as_given = FlowMixture(3, dequantize=None, **settings).fit(X).memory_plan_
    assert dequantised.data - as_given.data == 2 * FLOAT_BYTES * 120 * 4
