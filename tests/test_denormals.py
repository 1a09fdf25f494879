"""flush_denormals: set inside, the caller's setting restored after, nested uses counted, and an opt-out."""

from __future__ import annotations

import threading

import pytest
import torch

from flowmix._denormals import flush_denormals, flushing

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
    from flowmix.recipes import Candidates

    X, _ = make_blobs(60, centers=2, random_state=0)
    recipe = Candidates().with_settings(pretrain_epochs=1)
    FlowMixture(2, n_epochs=2, recipe=recipe, n_init=1, random_state=0).fit(X).predict(X)
    assert _denormal_survives()


@pytest.fixture
def users_setting():
    """Whatever a test sets, this thread's setting is as it was once the test ends."""
    before = flushing()
    yield
    torch.set_flush_denormal(before)


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_the_probe_reads_the_setting(users_setting):
    torch.set_flush_denormal(True)
    assert flushing() and not _denormal_survives()
    torch.set_flush_denormal(False)
    assert not flushing() and _denormal_survives()


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_a_caller_who_flushes_denormals_still_does_after(users_setting):
    torch.set_flush_denormal(True)  # the user's own choice, before flowmix runs
    with flush_denormals():
        with flush_denormals():
            assert flushing()
        assert flushing()
    assert flushing()


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_a_caller_who_does_not_flush_gets_it_off_again(users_setting):
    torch.set_flush_denormal(False)
    with flush_denormals():
        assert flushing()
    assert not flushing()


@pytest.mark.skipif(not SUPPORTED, reason="this CPU has no flush-to-zero mode")
def test_each_thread_flushes_inside_and_gets_its_own_setting_back(users_setting):
    # The setting is per thread: a thread already running when another enters the context gets
    # flushing only from its own use, and its own setting back after.
    torch.set_flush_denormal(False)
    entered, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        entered.wait(timeout=30)
        with flush_denormals():
            seen["inside"] = flushing()
        seen["after"] = flushing()
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with flush_denormals():
        entered.set()
        assert done.wait(timeout=30)
        assert flushing()  # the other thread's exit left this one's use alone
    worker.join()
    assert seen == {"inside": True, "after": False}
    assert not flushing()
