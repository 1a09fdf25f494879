"""The estimator's seams: flow families, initialisations, training algorithms and selection rules
are registries of small functions that ``fit`` calls by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmix import FlowMixture, flows, init, selection, training
from flowmix.flows.base import StackedFlow


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.05, (100, 2)), rng.normal(1, 0.05, (100, 2))])
    return X, np.repeat([0, 1], 100)


# Diagonal bases, chosen by the graph cut: one fit on every point, where the default recipe
# (covariance_type="auto") may fit twice and holds points out.
ONE_FIT_ON_ALL_POINTS = {"covariance_type": "diag", "selection": "graph-cut"}


def test_an_initialisation_sets_scales_weights_and_pretrains_the_flows(blobs, monkeypatch):
    X, y = blobs
    calls = {}

    def true_clusters(X, n_init, n_components, rng):
        calls["shape"] = (X.shape, n_init, n_components)
        means = np.stack([X[y == k].mean(0) for k in range(2)])[None].repeat(n_init, 0)
        responsibilities = np.eye(2)[y][None].repeat(n_init, 0)
        return init.Start(
            means=means.astype(np.float32),
            scales=np.full((n_init, 2, 2), 0.05, dtype=np.float32),
            weights=np.tile([0.3, 0.7], (n_init, 1)),
            responsibilities=responsibilities,
        )

    monkeypatch.setitem(init.INITIALISATIONS, "true-clusters", true_clusters)
    model = FlowMixture(2, init="true-clusters", n_init=2, n_epochs=20, batch_size=50, random_state=0,
                        **ONE_FIT_ON_ALL_POINTS).fit(X)  # fmt: skip
    assert calls["shape"] == ((200, 2), 2, 2)
    np.testing.assert_array_equal(model.base_scales_, np.full((2, 2), 0.05, dtype=np.float32))
    assert (model.predict(X) == y).all()
    # Each component was pretrained on its own blob: it gives its blob the higher density.
    with torch.no_grad():
        own = model.density_.component_log_prob(torch.as_tensor(X, dtype=torch.float32))[0].numpy()
    assert own[0, y == 0].mean() > own[1, y == 0].mean() + 10
    assert own[1, y == 1].mean() > own[0, y == 1].mean() + 10


def test_weights_from_an_initialisation_are_the_starting_weights(blobs, monkeypatch):
    X, _ = blobs

    def lopsided(X, n_init, n_components, rng):
        start = init.bounding_box(X, n_init, n_components, rng)
        start.weights = np.tile([0.9, 0.1], (n_init, 1))
        return start

    monkeypatch.setitem(init.INITIALISATIONS, "lopsided", lopsided)
    seen = []

    def record(epoch, density):
        seen.append(density.log_weights().exp().detach().numpy().copy())

    FlowMixture(2, init="lopsided", n_epochs=1, random_state=0).fit(X, callback=record)
    np.testing.assert_allclose(seen[0][0], [0.9, 0.1], rtol=1e-6)


def test_a_training_algorithm_is_called_by_name(blobs, monkeypatch):
    X, _ = blobs
    seen = {}

    def one_epoch_mle(density, columns, config):
        seen["columns"], seen["epochs"] = tuple(columns.shape), config.n_epochs
        config.n_epochs = 1
        return training.maximum_likelihood(density, columns, config)

    monkeypatch.setitem(training.ALGORITHMS, "one-epoch", one_epoch_mle)
    model = FlowMixture(2, algorithm="one-epoch", n_epochs=30, random_state=0, **ONE_FIT_ON_ALL_POINTS).fit(X)
    assert seen == {"columns": (2, 200), "epochs": 30}
    assert model.n_iter_ == 1 and model.loss_curve_.shape == (1,)


def test_a_selection_rule_picks_the_kept_restart(blobs, monkeypatch):
    X, _ = blobs

    def highest_loss(result, density, train, validation):
        return -result.losses[:, -1]

    monkeypatch.setitem(selection.SELECTIONS, "worst", highest_loss)
    model = FlowMixture(2, selection="worst", n_init=3, n_epochs=5, random_state=0).fit(X)
    assert model.best_restart_ == int(np.argmax(model.losses_[:, -1]))
    assert model.best_restart_ != int(np.argmin(model.losses_[:, -1]))


class _DiagonalAffine(StackedFlow):
    """A minimal family for the test: z = (x - shift) * exp(-log_scale), per flow and dimension."""

    family = "diagonal-affine"

    def __init__(self, n_stack, dim, hidden_units=(1,), n_layers=1, activation="tanh", generator=None):
        super().__init__(n_stack, dim)
        self.shift = torch.nn.Parameter(torch.zeros(n_stack, dim))
        self.log_scale = torch.nn.Parameter(torch.zeros(n_stack, dim))

    def to_latent_columns(self, x):
        z = (x - self.shift[:, :, None]) * torch.exp(-self.log_scale)[:, :, None]
        return z, -self.log_scale.sum(1, keepdim=True).expand(-1, z.shape[-1])

    def to_data(self, z):
        return z * torch.exp(self.log_scale)[:, None, :] + self.shift[:, None, :]

    def floats_per_point(self):
        return 3 * self.dim

    def config(self):
        return {}


def test_a_new_flow_family_needs_only_its_class_and_a_registry_entry(blobs, monkeypatch, tmp_path):
    X, y = blobs
    monkeypatch.setitem(flows.FLOW_FAMILIES, "diagonal-affine", _DiagonalAffine)
    model = FlowMixture(2, flow="diagonal-affine", init="kmeans", n_epochs=50, random_state=0).fit(X)
    assert model.n_parameters() == 2 * 4 + 1
    assert abs(np.corrcoef(model.predict(X), y)[0, 1]) == pytest.approx(1)
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"flow": "glow"}, r"flow must be one of \['maf', 'spline'\], got 'glow'"),
        (
            {"algorithm": "sgd"},
            r"algorithm must be one of \['auto', 'mle', 'hard-em', 'soft-em', 'annealed-em'\]",
        ),
        (
            {"selection": "best"},
            r"selection must be one of \['auto', 'loss', 'likelihood', 'validation', 'graph-cut', 'spectral'\]",
        ),
        (
            {"flow": "spline", "flow_params": {"bins": 4}},
            r"flow_params \['bins'\] are not options of flow='spline'",
        ),
        (
            {"flow": "maf", "flow_params": {"n_bins": 4}},
            r"flow_params \['n_bins'\] are not options of flow='maf'; it accepts none",
        ),
        ({"flow": "spline", "flow_params": {"n_bins": 1}}, "n_bins must be an integer >= 2"),
        ({"n_layers": 0}, "n_layers must be a positive integer"),
    ],
)
def test_bad_seam_parameters_say_what_to_use(blobs, params, message):
    with pytest.raises(ValueError, match=message):
        FlowMixture(2, n_epochs=1, **params).fit(blobs[0])


def test_family_defaults_fill_unset_architecture(blobs):
    model = FlowMixture(2, flow="spline", n_epochs=1, random_state=0).fit(blobs[0])
    flow = model.density_.flows
    assert (flow.hidden_units, flow.n_layers, flow.n_bins) == ((64,), 3, 8)
    assert model.get_params()["hidden_units"] is None
