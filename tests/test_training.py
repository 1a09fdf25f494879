"""Training algorithms (flowmix.training): EM and maximum likelihood over the whole stack."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from flowmix import FlowMixture, training
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.recipes import SingleFit
from flowmix.training import algorithms


def _config(n_epochs, stable_e_steps=None, **settings):
    """A training config on 16-point batches that states every setting the estimator would give."""
    return training.TrainConfig(
        n_epochs=n_epochs, batch_size=16, learning_rate=1e-3, shuffle=True, batch_order="shared",
        shuffle_buffer=None, callback_every=50, n_iter_no_change=10, tol=1e-4, stable_e_steps=stable_e_steps,
        generator=torch.Generator().manual_seed(0), **settings,
    )  # fmt: skip


@pytest.mark.parametrize("algorithm", ["hard-em", "soft-em", "annealed-em", "mle"])
def test_every_algorithm_keeps_a_correct_start_and_lowers_its_loss(three_blobs, algorithm):
    X, y = three_blobs
    recipe = SingleFit(init=y, algorithm=algorithm, selection="likelihood", n_init=1, pretrain_epochs=10)
    model = FlowMixture(3, recipe=recipe, n_epochs=15, batch_size=100, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.empty_components_.size == 0


def _two_component_density(dim=2):
    flows = make_flow("maf", 2, dim, hidden_units=(4,), generator=torch.Generator().manual_seed(0))
    return MixtureOfFlows(flows, torch.tensor([[[0.0, 0.0], [5.0, 5.0]]]), 1.0)


def test_hard_em_weights_are_the_shares_held_above_the_floor():
    density = _two_component_density()
    training.set_weights(density, torch.tensor([[100.0, 0.0]]))
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
    original = algorithms.joint_log_prob_in_chunks

    def counted(model, columns):
        passes.append(columns.shape[1])
        return original(model, columns)

    monkeypatch.setattr(algorithms, "joint_log_prob_in_chunks", counted)
    training.get_algorithm(algorithm)(density, X, _config(10))
    assert passes == [64] * 3  # epochs 0, 4 and 8 at 4 steps an epoch


@pytest.mark.parametrize(("n_samples", "expected"), [(100, 512), (1024, 512), (2048, 1024), (3201, 1601),
                                                     (4096, 2048), (100_000, 2048)])  # fmt: skip
def test_the_automatic_batch_is_half_of_the_points_within_bounds(n_samples, expected):
    from flowmix.memory_budget import resolve_batch_size

    assert resolve_batch_size("auto", n_samples) == expected
    assert resolve_batch_size(300, n_samples) == 300


def test_soft_em_trains_each_flow_on_the_points_it_has_a_share_of():
    shares = torch.tensor([[[0.9995, 0.2, 0.0004], [0.0005, 0.8, 0.0004], [0.0, 0.0, 0.9992]]])
    kept = training.truncate_posteriors(shares)
    np.testing.assert_allclose(kept[0].numpy(), [[1, 0.2, 0], [0, 0.8, 0], [0, 0, 1]], atol=1e-7)
    # K > 1000: every share can lie below the floor; the largest is kept, so no point is left out.
    many = torch.softmax(torch.linspace(0, 1, 2000), dim=0)[None, :, None]
    assert (many < training.POSTERIOR_FLOOR).all()
    kept = training.truncate_posteriors(many)[0, :, 0]
    assert kept[-1] == 1 and (kept[:-1] == 0).all()


# Diagonal bases, chosen by the graph cut: one fit on every point, where the default recipe
# (covariance_type="auto") may fit twice and holds points out.
ONE_FIT_ON_ALL_POINTS = {"covariance_type": "diag", "selection": "graph-cut"}


def _one_fit_on_all_points(**training) -> SingleFit:
    return SingleFit(**ONE_FIT_ON_ALL_POINTS, **training)


def test_a_training_algorithm_is_called_by_name(two_tight_blobs, monkeypatch):
    X, _ = two_tight_blobs
    seen = {}

    def one_epoch_mle(density, columns, config):
        seen["columns"], seen["epochs"] = tuple(columns.shape), config.n_epochs
        config.n_epochs = 1
        return training.maximum_likelihood(density, columns, config)

    monkeypatch.setitem(training.ALGORITHMS, "one-epoch", one_epoch_mle)
    recipe = _one_fit_on_all_points(algorithm="one-epoch")
    model = FlowMixture(2, recipe=recipe, n_epochs=30, random_state=0).fit(X)
    assert seen == {"columns": (2, 200), "epochs": 30}
    assert model.n_iter_ == 1 and model.loss_curve_.shape == (1,)


def test_assigned_nll_is_each_points_own_component_nll():
    from flowmix.training import mean_assigned_nll

    density = MixtureOfFlows(make_flow("maf", 2, 2), torch.tensor([[[0.0, 0.0], [3.0, 3.0]]]), 1.0)
    points = torch.randn(2, 9)
    r = torch.nn.functional.one_hot(torch.arange(9) % 2, 2).T[None].float()
    component = density.component_log_prob_columns(points).detach()[0]
    expected = -component[torch.arange(9) % 2, torch.arange(9)].double().mean()
    assert mean_assigned_nll(density, points, r)[0] == pytest.approx(float(expected), rel=1e-6)


def _two_blobs_and_two_restarts():
    """64 points in two tight blobs; restart 0 starts on the blobs, restart 1 with both means between them."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.3, (32, 2)), rng.normal(5, 0.3, (32, 2))])
    flows = make_flow("maf", 4, 2, hidden_units=(4,), generator=torch.Generator().manual_seed(0))
    means = torch.tensor([[[0.0, 0.0], [5.0, 5.0]], [[2.4, 2.4], [2.6, 2.6]]])
    return torch.as_tensor(X.T, dtype=torch.float32), MixtureOfFlows(flows, means, 1.0)


def test_hard_em_stops_a_restart_once_its_partition_has_held():
    columns, density = _two_blobs_and_two_restarts()
    alone = density.take_restarts([0])
    result = training.hard_em(density.take_restarts([0]), columns, _config(200, 2))
    # E-steps every 4 epochs (4 steps an epoch): the partition is unchanged at epochs 4 and 8.
    assert result.n_epochs_run == 8 and result.epochs_trained.tolist() == [8]
    assert np.isfinite(result.losses).all() and result.losses.shape == (1, 8)
    everything = training.hard_em(alone, columns, _config(20, None))
    assert everything.n_epochs_run == 20 and everything.epochs_trained is None


def test_a_converged_restart_ends_as_it_would_have_alone():
    columns, density = _two_blobs_and_two_restarts()
    alone = density.take_restarts([0])
    together = training.hard_em(density, columns, _config(200, 2))
    by_itself = training.hard_em(alone, columns, _config(200, 2))
    # Restart 1 starts with both means between the blobs: its partition moves for longer.
    assert together.epochs_trained[0] == 8 < together.epochs_trained[1]
    assert together.n_epochs_run == together.epochs_trained[1]
    assert np.isnan(together.losses[0, 8:]).all() and np.isfinite(together.losses[1]).all()
    kept = density.take_restarts([0])
    for (name, mine), theirs in zip(kept.state_dict().items(), alone.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5, msg=name)
    assert by_itself.epochs_trained.tolist() == [8]
    # The paper's rule reads each restart's last trained epoch, not the NaN after it.
    from flowmix.selection import final_loss

    np.testing.assert_array_equal(final_loss(together, None, None, None), together.losses[[0, 1], [7, -1]])


def _feed_moves(partition, moves, n_points=1000):
    """Give ``partition`` E-steps whose labels move ``moves[i]`` of ``n_points`` points; the epoch it finished."""
    labels = torch.zeros(1, n_points, dtype=torch.int64)
    partition.update(0, labels.clone())
    for epoch, count in enumerate(moves, start=1):
        labels = labels.clone()
        labels[0, :count] = 1 - labels[0, :count]
        partition.update(epoch, labels)
    return int(partition.finished[0])


def test_a_partition_whose_boundary_flickers_for_good_has_converged():
    """Moves that stop falling below 0.9 times their fewest for CHURN_PATIENCE E-steps end the restart."""
    patience = training.CHURN_PATIENCE
    falling = [50, 40, 30, 20] + [19, 21] * patience  # 19 is not below 0.9 x 20: no progress
    assert _feed_moves(training.StablePartition(_two_component_density(), 3, {}), falling) == 4 + patience
    still_falling = [int(50 * 0.85**i) for i in range(20)]  # a 15% drop every E-step: not converged
    assert _feed_moves(training.StablePartition(_two_component_density(), 3, {}), still_falling) == -1
    settled = [50, 1, 1, 0]  # at most one point in a thousand for 3 E-steps: the strict rule
    assert _feed_moves(training.StablePartition(_two_component_density(), 3, {}), settled) == 4


def test_the_estimator_stops_hard_em_once_the_partition_holds_unless_told_not_to(two_tight_blobs):
    X, _ = two_tight_blobs
    stopping = _one_fit_on_all_points(pretrain_epochs=5)
    every_epoch = _one_fit_on_all_points(pretrain_epochs=5, stable_e_steps=None)
    stopped = FlowMixture(2, n_epochs=60, random_state=0, recipe=stopping).fit(X)
    full = FlowMixture(2, n_epochs=60, random_state=0, recipe=every_epoch).fit(X)
    assert stopped.n_iter_ < 60 and full.n_iter_ == 60
    assert stopped.loss_curve_.shape == (stopped.n_iter_,) and np.isfinite(stopped.loss_curve_).all()
    assert adjusted_rand_score(full.labels_, stopped.labels_) == 1.0


def test_a_training_config_states_every_setting_the_estimator_has_a_default_for():
    """One place per default: the estimator's, not a second, different one here (it was 1e-3 vs 3e-3)."""
    with pytest.raises(TypeError, match="'learning_rate', 'shuffle', 'batch_order', 'shuffle_buffer'"):
        training.TrainConfig(n_epochs=1, batch_size=8)


def test_training_leaves_torch_distributed_to_the_caller():
    """The data-parallel group is handed in (TrainConfig.data_parallel): no import of it, anywhere in training."""
    package = Path(training.__file__).parent
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert "flowmix.training.core.TrainConfig" in imported  # the check sees the imports
    assert not [name for name in imported if name.startswith(("flowmix.distributed", "torch.distributed"))]
