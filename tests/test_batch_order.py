"""flowmix.batch_order: shuffle-buffer orders, per-restart orders, and the estimator options using them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons

from flowmix import FlowMixture, training
from flowmix import batch_order as bo
from flowmix.recipes import SingleFit
from flowmix.training import loop

MLE = {"flow": "maf", "algorithm": "mle", "init": "unit", "batch_size": 64, "random_state": 0,
       "covariance_type": "diag", "recipe": SingleFit(selection="loss")}  # fmt: skip


def mle_recipe(**training) -> SingleFit:
    """MLE's recipe with other settings of its training (per-restart orders are built for MLE only)."""
    return SingleFit(selection="loss", algorithm="mle", **training)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("buffer_size", [1, 7, 64, 1000])
def test_a_shuffle_buffer_emits_every_point_once_and_none_before_it_is_read(buffer_size):
    n = 1000
    order = bo.epoch_order(n, _generator(), buffer_size).numpy()
    assert sorted(order.tolist()) == list(range(n))
    # Output position i can only hold a point already read into the buffer: index <= i + size - 1.
    assert np.all(order <= np.arange(n) + buffer_size - 1)


def test_a_small_buffer_keeps_points_near_their_stored_place_and_a_full_one_does_not():
    n = 4000
    near = bo.epoch_order(n, _generator(), 16).numpy()
    full = bo.epoch_order(n, _generator(), None).numpy()
    # Points leave a 16-slot buffer after about 16 steps on average, so they are emitted near
    # where they were read; a permutation scatters them over the whole epoch.
    assert np.median(np.abs(near - np.arange(n))) < 40
    assert np.median(np.abs(full - np.arange(n))) > n / 8


def test_no_buffer_or_one_larger_than_the_data_is_torch_randperm():
    expected = torch.randperm(50, generator=_generator(3))
    assert torch.equal(bo.epoch_order(50, _generator(3)), expected)
    assert torch.equal(bo.epoch_order(50, _generator(3), buffer_size=50), expected)


def test_per_restart_orders_are_independent_and_do_not_depend_on_the_other_restarts():
    orders = bo.per_restart_orders(200, 3, _generator(1))
    assert orders.shape == (3, 200)
    assert not torch.equal(orders[0], orders[1])
    # A process training restarts 1 and 2 only draws their orders of the whole fit.
    tail = bo.per_restart_orders(200, 2, _generator(1), first_restart=1)
    assert torch.equal(tail, orders[1:])


def test_per_restart_batch_gives_each_restarts_flows_its_own_points():
    columns = torch.arange(12.0).reshape(2, 6)  # D=2, N=6
    index = torch.tensor([[0, 1], [4, 5]])  # R=2, n=2
    batch = bo.per_restart_batch(columns, index, n_components=3)
    assert batch.shape == (6, 2, 2)
    for flow in range(6):
        torch.testing.assert_close(batch[flow], columns[:, index[flow // 3]])


def test_per_restart_steps_equal_shared_steps_when_the_orders_agree(monkeypatch):
    """The per-restart path (each restart's flows fed their own batch) computes the shared path's fit."""
    X, _ = make_moons(300, noise=0.05, random_state=0)
    settings = {**MLE, "n_init": 3, "n_epochs": 4}
    shared = FlowMixture(2, **settings).fit(X)

    calls = []

    def the_shared_order(n_samples, n_restarts, generator, buffer_size=None, first_restart=0):
        calls.append(n_restarts)
        return bo.epoch_order(n_samples, generator, buffer_size).expand(n_restarts, n_samples)

    monkeypatch.setattr(loop, "per_restart_orders", the_shared_order)
    per_restart = FlowMixture(2, **{**settings, "recipe": mle_recipe(batch_order="per-restart")}).fit(X)
    assert calls == [3] * 4  # one draw per epoch, for the three restarts
    np.testing.assert_allclose(per_restart.losses_, shared.losses_, rtol=1e-5)


def test_per_restart_orders_change_the_fit_and_stay_deterministic():
    X, _ = make_moons(300, noise=0.05, random_state=0)
    settings = {**MLE, "n_init": 2, "n_epochs": 3}
    shared = FlowMixture(2, **settings).fit(X)
    orders = {**settings, "recipe": mle_recipe(batch_order="per-restart", shuffle_buffer=32)}
    first = FlowMixture(2, **orders).fit(X)
    second = FlowMixture(2, **orders).fit(X)
    np.testing.assert_array_equal(first.losses_, second.losses_)
    assert not np.allclose(first.losses_[:, 1:], shared.losses_[:, 1:])
    assert np.isfinite(first.losses_).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"batch_order": "random"}, "batch_order must be one of"),
        ({"batch_order": "per-restart", "algorithm": "hard-em"}, "built for algorithm='mle'"),
        ({"shuffle_buffer": 0}, "shuffle_buffer must be a positive integer"),
        ({"shuffle_buffer": 2.5}, "shuffle_buffer must be a positive integer"),
    ],
)
def test_bad_batch_order_settings_say_what_to_use(params, message):
    # They are the recipe's training's settings, refused when the recipe is made.
    with pytest.raises(ValueError, match=message):
        SingleFit(**params)


def test_an_estimators_algorithm_that_per_restart_orders_are_not_built_for_is_refused():
    model = FlowMixture(2, n_epochs=1, algorithm="hard-em", recipe=mle_recipe(batch_order="per-restart"))
    with pytest.raises(ValueError, match="built for algorithm='mle'"):
        model.fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_the_batch_mean_epoch_loss_weights_every_batch_equally():
    X, _ = make_moons(300, noise=0.05, random_state=0)
    settings = {**MLE, "n_init": 2, "n_epochs": 3}
    whole = FlowMixture(2, **settings).fit(X[:256])  # four batches of 64: both means agree
    np.testing.assert_allclose(whole.batch_mean_losses_, whole.losses_, rtol=1e-5)
    ragged = FlowMixture(2, **settings).fit(X)  # 4 x 64 + 44: the short batch counts as much as the others
    assert ragged.batch_mean_losses_.shape == ragged.losses_.shape
    assert not np.allclose(ragged.batch_mean_losses_, ragged.losses_, rtol=1e-7, atol=0)
    np.testing.assert_allclose(ragged.batch_mean_losses_, ragged.losses_, rtol=0.2)


def test_a_training_config_refuses_an_unknown_order_and_em_refuses_per_restart_batches():
    with pytest.raises(ValueError, match="batch_order must be one of"):
        training.TrainConfig(
            n_epochs=1, batch_size=8, learning_rate=1e-3, shuffle=True, batch_order="random", shuffle_buffer=None,
            callback_every=50, n_iter_no_change=10, tol=1e-4, stable_e_steps=None,
        )  # fmt: skip
    objective = training.m_step_objective(lambda: torch.ones(2, 2, 10))
    with pytest.raises(ValueError, match="batch_order='shared'"):
        objective(None, torch.zeros(4, 1, 3), torch.zeros(2, 3, dtype=torch.int64))
