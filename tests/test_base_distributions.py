"""Base distributions (flowmix.flows.base_distributions)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import multivariate_normal

from flowmix.flows.base_distributions import full_normal_log_prob_columns


def test_full_normal_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    a = rng.normal(size=(2, 3, 3))
    cov = a @ a.transpose(0, 2, 1) + np.eye(3)
    loc, z = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 7))
    tril = torch.linalg.cholesky(torch.as_tensor(cov))
    ours = full_normal_log_prob_columns(torch.as_tensor(z), torch.as_tensor(loc), tril).numpy()
    for s in range(2):
        np.testing.assert_allclose(ours[s], multivariate_normal(loc[s], cov[s]).logpdf(z[s].T), rtol=1e-10)
