"""The batched mixture density (flowmix.density)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from flowmix import init
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow


def _correlated(n=400, seed=0):
    rng = np.random.RandomState(seed)
    return rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 1.2, 0.3], [1.2, 1.5, -0.4], [0.3, -0.4, 0.8]], n)


@pytest.mark.parametrize("family", ["spline", "maf"])
def test_identity_flows_with_a_full_base_are_the_gaussian_mixture(family):
    X = _correlated()
    start = init.start_from_responsibilities(X, np.ones((1, len(X), 1)))
    covariances = init.shrunk_covariances(X, np.ones((1, len(X), 1)))
    tril = torch.linalg.cholesky(torch.as_tensor(covariances))
    flows = make_flow(family, 1, 3, generator=torch.Generator().manual_seed(0))
    if family == "maf":  # a MAF starts random; zero its outputs to make it the identity
        for p in flows.mades[0].layers[-1].parameters():
            p.data.zero_()
    flows.prepare(torch.as_tensor(X, dtype=torch.float32))
    density = MixtureOfFlows(flows, torch.as_tensor(start.means), 1.0, None, tril).double()
    ours = density.log_prob(torch.as_tensor(X)).detach().numpy()[0]
    expected = multivariate_normal(start.means[0, 0], covariances[0, 0]).logpdf(X)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
