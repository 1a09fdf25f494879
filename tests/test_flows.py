"""The flow-family registry (flowmix.flows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmix import FlowMixture, flows
from flowmix.flows.base import StackedFlow


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


def test_a_new_flow_family_needs_only_its_class_and_a_registry_entry(two_tight_blobs, monkeypatch, tmp_path):
    X, y = two_tight_blobs
    monkeypatch.setitem(flows.FLOW_FAMILIES, "diagonal-affine", _DiagonalAffine)
    model = FlowMixture(2, flow="diagonal-affine", init="kmeans", n_epochs=50, random_state=0).fit(X)
    assert model.n_parameters() == 2 * 4 + 1
    assert abs(np.corrcoef(model.predict(X), y)[0, 1]) == pytest.approx(1)
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
