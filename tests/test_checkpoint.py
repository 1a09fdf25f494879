"""Checkpoint and resume inside a fit, and early stopping (flowmix.checkpoint, flowmix.training)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons

from flowmix import Checkpointing, EarlyStopping, FlowMixture, _params
from flowmix.checkpoint import CHECKPOINT_FILE, FitCheckpoint
from flowmix.recipes import SingleFit
from flowmix.recipes import resolve as resolve_recipe
from flowmix.validation import in_float32

X, _ = make_moons(300, noise=0.05, random_state=0)
# One fit (diagonal bases, graph cut): the default's two fits checkpoint apart (tests/test_estimator.py).
TRAINING = {"selection": "graph-cut", "pretrain_epochs": 8}
SETTINGS = {"n_epochs": 24, "n_init": 2, "batch_size": 100, "random_state": 0, "covariance_type": "diag",
            "recipe": SingleFit(**TRAINING)}  # fmt: skip


def trained(**training) -> SingleFit:
    """SETTINGS' recipe with other settings of its training."""
    return SingleFit(**{**TRAINING, **training})


def every(folder: Path, epochs: int) -> Checkpointing:
    return Checkpointing(folder, every_epochs=epochs)


class Interrupt(Exception):
    """Stands for a crash: raised from inside the fit."""


def fitted_state(model: FlowMixture) -> dict[str, np.ndarray]:
    state = {f"density.{k}": v.numpy() for k, v in model.density_.state_dict().items()}
    state.update(losses=model.losses_, labels=model.labels_, scores=model.selection_scores_)
    state["batch_mean_losses"] = model.batch_mean_losses_
    return state


def assert_same_fit(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted() -> dict[str, np.ndarray]:
    return fitted_state(FlowMixture(2, **SETTINGS).fit(X))


def test_resume_after_a_crash_between_checkpoints_is_bit_identical(tmp_path, uninterrupted):
    def crash(epoch, density):
        if epoch == 18:  # after the checkpoint of epoch 15, before the one of epoch 20
            raise Interrupt

    with pytest.raises(Interrupt):
        FlowMixture(2, checkpoint=every(tmp_path, 5), **SETTINGS).fit(X, callback=crash, callback_every=6)
    saved = FitCheckpoint(tmp_path, "").path
    assert saved.exists()
    resumed = FlowMixture(2, checkpoint=every(tmp_path, 5), **SETTINGS).fit(X)
    assert_same_fit(fitted_state(resumed), uninterrupted)


@pytest.mark.parametrize("crash_after_writes", [1, 2, 4])
def test_resume_from_the_nth_checkpoint_is_bit_identical(
    tmp_path, monkeypatch, uninterrupted, crash_after_writes
):
    """A crash right after the n-th write: n = 1, 2 land in pretraining (every 4 of 8 epochs), 4 in training."""
    original = FitCheckpoint.save
    writes = []

    def save_then_crash(self, phase, tensors, meta):
        original(self, phase, tensors, meta)
        writes.append(phase)
        if len(writes) == crash_after_writes:
            raise Interrupt

    monkeypatch.setattr(FitCheckpoint, "save", save_then_crash)
    with pytest.raises(Interrupt):
        FlowMixture(2, checkpoint=every(tmp_path, 4), **SETTINGS).fit(X)
    monkeypatch.setattr(FitCheckpoint, "save", original)
    assert writes[-1] == ("pretrain" if crash_after_writes <= 2 else "train")
    resumed = FlowMixture(2, checkpoint=every(tmp_path, 4), **SETTINGS).fit(X)
    assert_same_fit(fitted_state(resumed), uninterrupted)


def test_per_restart_orders_through_a_shuffle_buffer_resume_bit_identically(tmp_path):
    orders = {"recipe": trained(batch_order="per-restart", shuffle_buffer=32, algorithm="mle")}
    settings = {**SETTINGS, "algorithm": "mle", "init": "unit", "flow": "maf"}
    expected = fitted_state(FlowMixture(2, **{**settings, **orders}).fit(X))

    def crash(epoch, density):
        if epoch == 18:
            raise Interrupt

    with pytest.raises(Interrupt):
        FlowMixture(2, checkpoint=every(tmp_path, 5), **{**settings, **orders}).fit(
            X, callback=crash, callback_every=6
        )
    resumed = FlowMixture(2, checkpoint=every(tmp_path, 5), **{**settings, **orders}).fit(X)
    assert_same_fit(fitted_state(resumed), expected)


def test_a_checkpoint_written_before_the_batch_mean_losses_existed_still_resumes(
    tmp_path, monkeypatch, uninterrupted
):
    from flowmix import training

    original = training.LoopState.tensors

    def without_batch_means(self):
        return {k: v for k, v in original(self).items() if k != "loop.batch_mean_losses"}

    def crash(epoch, density):
        if epoch == 18:
            raise Interrupt

    monkeypatch.setattr(training.LoopState, "tensors", without_batch_means)
    with pytest.raises(Interrupt):
        FlowMixture(2, checkpoint=every(tmp_path, 5), **SETTINGS).fit(X, callback=crash, callback_every=6)
    monkeypatch.setattr(training.LoopState, "tensors", original)
    resumed = fitted_state(FlowMixture(2, checkpoint=every(tmp_path, 5), **SETTINGS).fit(X))
    # The fit is the same; the batch means of the epochs before the checkpoint are unknown (NaN).
    batch_means = resumed.pop("batch_mean_losses")
    expected = dict(uninterrupted)
    assert_same_fit(resumed, {k: v for k, v in expected.items() if k != "batch_mean_losses"})
    assert np.isnan(batch_means[:, :15]).all()
    np.testing.assert_array_equal(batch_means[:, 15:], expected["batch_mean_losses"][:, 15:])


def checkpoint_header(folder: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(folder / CHECKPOINT_FILE), "pt") as handle:
        return json.loads(handle.metadata()["flowmix_checkpoint"])


def test_the_fingerprint_is_the_fingerprinted_settings_the_resolved_fit_and_the_behaviour(tmp_path):
    """The settings table's fingerprinted settings and what the recipe resolved: another value is another fit."""
    from flowmix.checkpoint import fingerprint

    model = FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    params = model.get_params()
    settings = _params.fingerprinted(params)
    assert settings["behaviour"] == _params.BEHAVIOUR_VERSION and "flowmix" not in settings
    unfingerprinted = {name for name, setting in _params.SETTINGS.items() if not setting.fingerprinted}
    assert {"device", "checkpoint", "random_state", "verbose"} <= unfingerprinted
    assert not unfingerprinted & set(settings)
    fit = resolve_recipe(model.recipe, params).fit
    data = in_float32(model.feature_scaling_.transform(X))  # the points the fit trained on
    assert checkpoint_header(tmp_path)["fingerprint"] == fingerprint({**settings, **fit.describe()}, data)
    # The training's own settings are the fit's: another shuffle buffer is another fit.
    with pytest.raises(ValueError, match="other settings or other data"):
        FlowMixture(2, checkpoint=tmp_path, **{**SETTINGS, "recipe": trained(shuffle_buffer=64)}).fit(X)


def test_a_checkpoint_written_under_other_rules_of_fitting_is_refused(tmp_path, monkeypatch):
    FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    monkeypatch.setattr(_params, "BEHAVIOUR_VERSION", _params.BEHAVIOUR_VERSION + 1)
    with pytest.raises(ValueError, match="other settings or other data"):
        FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)


def test_an_automatic_batch_checkpoint_records_the_rule_it_stood_for(tmp_path, monkeypatch):
    """A checkpoint of batch_size="auto" written under another batch rule is refused, not resumed with other batches."""
    from flowmix import fitting, memory_budget

    settings = {**SETTINGS, "batch_size": "auto", "n_epochs": 2, "recipe": trained(pretrain_epochs=1)}
    FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)
    FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)  # the same rule resumes
    other_rule = "auto: 1/4 of the points within [512, 1024]"
    assert (
        fitting.AUTO_BATCH_RULE == memory_budget.AUTO_BATCH_RULE != other_rule
    )  # the rule the trainer records
    monkeypatch.setattr(fitting, "AUTO_BATCH_RULE", other_rule)
    with pytest.raises(ValueError, match="other settings or other data"):
        FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)


def test_a_finished_checkpoint_refits_to_the_same_model(tmp_path, uninterrupted):
    FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    again = FlowMixture(2, checkpoint=tmp_path, **{**SETTINGS, "random_state": None})
    assert_same_fit(fitted_state(again.fit(X)), uninterrupted)  # the checkpoint's seed is reused


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rate": 1e-3}, "other settings or other data"),
        ({"n_epochs": 30}, "other settings or other data"),
        ({"random_state": 1}, "another random_state"),
        ({"data": X[::-1]}, "other settings or other data"),
    ],
)
def test_a_checkpoint_of_another_fit_is_refused(tmp_path, change, message):
    FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    change = dict(change)
    data = change.pop("data", X)
    with pytest.raises(ValueError, match=message):
        FlowMixture(2, checkpoint=tmp_path, **{**SETTINGS, **change}).fit(data)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before  # left as it was


def test_a_corrupt_checkpoint_is_refused_with_what_to_do(tmp_path):
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable flowmix checkpoint.*Delete it"):
        FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)


def test_checkpoint_settings_are_validated(tmp_path):
    with pytest.raises(ValueError, match="every_epochs must be a positive integer"):
        Checkpointing(tmp_path, every_epochs=0)
    with pytest.raises(ValueError, match="every_seconds must be a positive number"):
        Checkpointing(tmp_path, every_seconds=-1.0)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file; pass a directory"):
        FlowMixture(2, checkpoint=afile).fit(X)
    with pytest.raises(ValueError, match="is a file; pass a directory"):
        Checkpointing(afile)


# ------------------------------------------------------------------- SIGKILL

CHILD = """
import sys, time
import numpy as np
from sklearn.datasets import make_moons
from flowmix import FlowMixture
X, _ = make_moons(400, noise=0.05, random_state=0)
out, folder = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
from flowmix import Checkpointing
from flowmix.recipes import SingleFit
model = FlowMixture(2, n_epochs=40, n_init=2, batch_size=100, random_state=0, covariance_type="diag",
                    recipe=SingleFit(selection="graph-cut", pretrain_epochs=10),
                    checkpoint=None if folder is None else Checkpointing(folder, every_epochs=1))
print("fitting", flush=True)
started = time.perf_counter()
model.fit(X)
state = {"density." + k: v.numpy() for k, v in model.density_.state_dict().items()}
np.savez(out, labels=model.labels_, losses=model.losses_, seconds=time.perf_counter() - started, **state)
"""


def _start(script: Path, *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "fitting", process.stderr.read()
    return process


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns  # every atomic write replaces the file


def _kill_after_writes(process: subprocess.Popen, path: Path, writes: int, delay: float) -> int:
    """SIGKILL the fit ``delay`` seconds after it has written ``writes`` more checkpoints.

    Counting the fit's own writes, not seconds, puts the kill inside the fit however slowly this
    machine runs it (a cold start on a fresh clone once took longer than every later run).
    """
    last, seen = _stamp(path), 0
    while seen < writes and process.poll() is None:
        stamp = _stamp(path)
        if stamp is not None and stamp != last:
            last, seen = stamp, seen + 1
        time.sleep(0.001)
    time.sleep(delay)
    process.kill()
    process.wait()
    return process.returncode


def test_a_fit_killed_at_random_moments_resumes_bit_identically(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    reference = _start(script, str(tmp_path / "reference.npz"))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    expected = dict(np.load(tmp_path / "reference.npz"))
    expected.pop("seconds")
    folder = tmp_path / "checkpoint"
    # The fit writes about 50 checkpoints (one per epoch of pretraining and training).
    draw = random.Random(0)
    killed = [
        _kill_after_writes(
            _start(script, str(tmp_path / "resumed.npz"), str(folder)),
            folder / CHECKPOINT_FILE,
            writes,
            draw.uniform(0, 0.02),
        )
        for writes in draw.sample(range(1, 15), 3)
    ]
    assert killed == [-9, -9, -9]  # every kill landed inside the fit
    final = _start(script, str(tmp_path / "resumed.npz"), str(folder))
    assert final.wait(timeout=300) == 0, final.stderr.read()
    got = dict(np.load(tmp_path / "resumed.npz"))
    got.pop("seconds")
    assert_same_fit(got, expected)
    # A kill during a write may leave a temporary file; the next write deletes it.
    assert [p.name for p in folder.iterdir()] == [CHECKPOINT_FILE]


# ------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_keeps_each_best_epoch():
    model = FlowMixture(
        2,
        early_stopping=EarlyStopping(n_iter_no_change=3),
        validation_fraction=0.2,
        **{**SETTINGS, "n_epochs": 60},
    ).fit(X)
    curve = model.validation_loss_curve_
    assert model.n_iter_ < 60 and len(curve) == model.n_iter_ == len(model.loss_curve_)
    assert model.best_epoch_ == int(np.argmin(curve))
    assert model.n_iter_ >= model.best_epoch_ + 1 + 3
    # The kept parameters are the best epoch's: the validation points score what was recorded then.
    order = np.random.RandomState(np.random.RandomState(0).randint(np.iinfo(np.int32).max) + 2).permutation(
        300
    )
    held_out = X[np.sort(order[:60])]
    # (the curve is in the preprocessed units; score is in the data's)
    log_det = model.feature_scaling_.log_det
    assert model.score(held_out) == pytest.approx(-curve[model.best_epoch_] + log_det, abs=1e-4)


def crash_at_epoch_then_resume(folder: Path, settings: dict, epoch: int, data: np.ndarray = X) -> FlowMixture:
    """Fit with checkpoints every 5 epochs, crash at the start of training epoch ``epoch``, fit again."""

    def crash(done, density):
        if done == epoch:
            raise Interrupt

    with pytest.raises(Interrupt):
        FlowMixture(2, checkpoint=every(folder, 5), **settings).fit(data, callback=crash, callback_every=1)
    return FlowMixture(2, checkpoint=every(folder, 5), **settings).fit(data)


def test_early_stopping_resumes_bit_identically(tmp_path):
    settings = {**SETTINGS, "early_stopping": EarlyStopping(n_iter_no_change=3), "n_epochs": 40}
    expected = fitted_state(FlowMixture(2, **settings).fit(X))
    assert_same_fit(fitted_state(crash_at_epoch_then_resume(tmp_path, settings, 12)), expected)


def test_hard_em_convergence_resumes_bit_identically(tmp_path):
    """A crash after one restart converged (its partition held) and before the last one stopped.

    The restarts' stopping epochs differ from one CPU to another (their rounding), so the crash
    epoch is taken from the uninterrupted fit's own: half-way between the first and the last stop.
    """
    settings = {**SETTINGS, "n_init": 3, "n_epochs": 90, "recipe": trained(stable_e_steps=2)}
    model = FlowMixture(2, **settings).fit(X)
    stops = np.sort(np.isfinite(model.losses_).sum(1))
    assert stops[0] < 90, f"no restart converged within 90 epochs ({stops.tolist()})"
    assert stops[-1] - stops[0] >= 2, (
        f"the restarts stopped together ({stops.tolist()}): nothing to crash between"
    )
    crash = int(stops[0] + stops[-1]) // 2
    resumed = crash_at_epoch_then_resume(tmp_path, settings, crash)
    assert_same_fit(fitted_state(resumed), fitted_state(model))


def test_dequantised_fit_resumes_bit_identically(tmp_path):
    """Every epoch's noise comes from the checkpointed generator, so a resumed fit draws the same."""
    lattice = np.round(X * 4)  # integer features: both are dequantised
    model = FlowMixture(2, **SETTINGS).fit(lattice)
    assert model.dequantization_steps_.tolist() == [1.0, 1.0]
    resumed = crash_at_epoch_then_resume(tmp_path, SETTINGS, 12, lattice)
    assert_same_fit(fitted_state(resumed), fitted_state(model))


def test_early_stopping_needs_points_to_hold_out():
    message = "early_stopping and the held-out selection rules need at least one validation point"
    with pytest.raises(ValueError, match=message):
        FlowMixture(2, early_stopping=True, validation_fraction=0.1).fit(X[:4])
    with pytest.raises(ValueError, match=message):
        FlowMixture(2, early_stopping=True, covariance_type="full", validation_fraction=0.1).fit(X[:4])


def test_checkpoint_header_is_json_with_the_seed(tmp_path):
    FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    header = checkpoint_header(tmp_path)
    assert header["phase"] == "train" and header["meta"]["epochs_run"] == SETTINGS["n_epochs"]
    assert header["context"]["seed"] == np.random.RandomState(0).randint(np.iinfo(np.int32).max)


def test_leftover_temporary_files_of_a_killed_write_are_removed(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    for name in (".tmpYc3WZg", ".checkpoint.0123456789ab.tmp.safetensors"):
        (tmp_path / name).write_bytes(b"half a write")
    (tmp_path / "notes.txt").write_text("kept")
    FlowMixture(2, checkpoint=tmp_path, **SETTINGS).fit(X)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE, "notes.txt"]
