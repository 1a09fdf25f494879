"""device='cuda' end to end: fit, predict, score, sample, save/load, against the CPU.

These run only where torch sees a CUDA GPU (CI has none); elsewhere they skip with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmix import FlowMixture

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")


@pytest.fixture(scope="module")
def data():
    return np.random.RandomState(0).rand(500, 3)


@pytest.mark.parametrize("hidden", [(16,), (16, 16)])
def test_fit_predict_save_load_on_cuda(data, hidden, tmp_path):
    params = {"flow_params": {"hidden_units": hidden}, "n_epochs": 50, "random_state": 0, "batch_size": 128}
    gpu = FlowMixture(3, device="cuda", **params).fit(data)
    assert gpu.density_.logits.device.type == "cuda"
    assert np.isfinite(gpu.losses_[:, -1]).all()

    labels = gpu.predict(data)
    log_density = gpu.score_samples(data)
    assert labels.shape == (500,) and np.isfinite(log_density).all()
    samples = gpu.sample(50)[0]
    assert samples.shape == (50, 3) and np.isfinite(samples).all()

    gpu.save(tmp_path / "model")
    on_gpu = FlowMixture.load(tmp_path / "model")
    np.testing.assert_array_equal(on_gpu.predict(data), labels)
    on_cpu = FlowMixture.load(tmp_path / "model", device="cpu")
    # The same float64 weights evaluated on another device: equal up to rounding.
    np.testing.assert_allclose(on_cpu.score_samples(data), log_density, rtol=1e-9, atol=1e-9)


def test_cuda_training_matches_cpu_training(data):
    # Same seed, same data: the two devices follow the same optimisation up to float32 rounding.
    params = {"flow_params": {"hidden_units": (16,)}, "n_epochs": 30, "random_state": 0, "batch_size": 500}
    cpu = FlowMixture(3, device="cpu", **params).fit(data)
    gpu = FlowMixture(3, device="cuda", **params).fit(data)
    np.testing.assert_allclose(gpu.losses_, cpu.losses_, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_device_baselines_on_cuda_match_cpu(data, method):
    from flowmix.paper.baselines import run_baseline

    # Same seeding draws (a CPU generator), float64 on both devices: the same runs.
    on_cpu = run_baseline(method, data, 3, 0, device="cpu")
    on_gpu = run_baseline(method, data, 3, 0, device="cuda")
    np.testing.assert_array_equal(on_gpu.labels, on_cpu.labels)
    np.testing.assert_allclose(on_gpu.objective, on_cpu.objective, rtol=1e-9)
