"""flush_denormals: set inside, restored after, nested uses counted, and an opt-out."""

from __future__ import annotations

import pytest
import torch

from flowmix._denormals import flush_denormals

SUPPORTED = torch.set_flush_denormal(False)  # False where the CPU has no flush-to-zero mode


def _denormal_survives() -> bool:
    return (torch.tensor([1e-39], dtype=torch.float32) * 2).item() != 0


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_denormals_are_flushed_inside_and_kept_after():
    assert _denormal_survives()
    with flush_denormals():
        assert not _denormal_survives()
        with flush_denormals():
            assert not _denormal_survives()
        assert not _denormal_survives()  # the outer use still holds
    assert _denormal_survives()


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_the_environment_can_leave_denormals_alone(monkeypatch):
    monkeypatch.setenv("FLOWMIX_FLUSH_DENORMALS", "0")
    with flush_denormals():
        assert _denormal_survives()


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_a_fit_leaves_the_setting_as_torch_defaults_it():
    from sklearn.datasets import make_blobs

    from flowmix import FlowMixture

    X, _ = make_blobs(60, centers=2, random_state=0)
    FlowMixture(2, n_epochs=2, pretrain_epochs=1, n_init=1, random_state=0).fit(X).predict(X)
    assert _denormal_survives()
