"""Progress (flowmix.progress): a bar on a terminal, a few log lines anywhere else, nothing unless asked."""

from __future__ import annotations

import dataclasses
import io
import logging

import numpy as np
import torch

from flowmix import FlowMixture, progress, training
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _stderr_without_logging(monkeypatch) -> io.StringIO:
    """sys.stderr as a StringIO (no terminal), in a program that configured no logging.

    Called in the test itself: pytest puts its own stderr and log handlers back between a
    fixture and the test.
    """
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(progress.logger, "hasHandlers", lambda: False)
    return stream


def _hard_em_run(verbose: bool) -> None:
    """Pretraining for 5 epochs, then hard EM that stops once its partition holds (8 of 30 epochs)."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.3, (32, 2)), rng.normal(5, 0.3, (32, 2))])
    columns = torch.as_tensor(X.T, dtype=torch.float32)
    flows = make_flow("maf", 2, 2, hidden_units=(4,), generator=torch.Generator().manual_seed(0))
    density = MixtureOfFlows(flows, torch.tensor([[[0.0, 0.0], [5.0, 5.0]]]), 1.0)
    config = training.TrainConfig(
        n_epochs=30, batch_size=16, learning_rate=1e-3, shuffle=True, batch_order="shared", shuffle_buffer=None,
        callback_every=50, n_iter_no_change=10, tol=1e-4, stable_e_steps=2, verbose=verbose,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    clusters = torch.nn.functional.one_hot(torch.arange(64) // 32, 2).T[None].float()
    training.pretrain(density, columns, clusters, dataclasses.replace(config, n_epochs=5, phase="pretrain"))
    training.hard_em(density, columns, config)


def test_training_off_a_terminal_writes_one_line_as_each_stage_starts_and_ends(monkeypatch):
    stderr = _stderr_without_logging(monkeypatch)
    _hard_em_run(verbose=True)
    text = stderr.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "flowmix: pretrain: 5 epochs",
        "flowmix: pretrain: 5 epochs done",
        "flowmix: train: 30 epochs",
        "flowmix: train: stopped at epoch 8 of 30",
    ]
    assert all(", loss=" in line and "alive=1" in line for line in lines[1::2])


def test_a_fit_off_a_terminal_writes_a_handful_of_lines_and_no_bar(monkeypatch, two_tight_blobs):
    X, _ = two_tight_blobs
    stderr = _stderr_without_logging(monkeypatch)
    FlowMixture(2, n_epochs=40, random_state=0, verbose=True).fit(X)
    text = stderr.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 8 and all(line.startswith("flowmix: ") for line in lines), text


def test_the_lines_go_through_logging_where_the_program_configured_it(caplog, capsys):
    _hard_em_run(verbose=True)
    assert [r.name for r in caplog.records] == ["flowmix.progress"] * 4
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert capsys.readouterr().err == ""  # the program's handlers have them, not stderr


def test_on_a_terminal_training_draws_a_bar(monkeypatch, caplog):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _hard_em_run(verbose=True)
    assert "\r" in terminal.getvalue() and "epoch" in terminal.getvalue()
    assert caplog.records == []  # the bar, not lines


def test_without_verbose_nothing_is_shown_or_logged(monkeypatch, caplog):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _hard_em_run(verbose=False)
    assert terminal.getvalue() == "" and caplog.records == []


def test_a_stage_reports_where_it_stopped_once(monkeypatch):
    stderr = _stderr_without_logging(monkeypatch)
    bar = progress.Progress(10, "runs", unit="run", initial=2)
    bar.update(3)
    bar.set_postfix_str("moons/flows")
    bar.close()
    bar.close()
    assert stderr.getvalue().splitlines() == [
        "flowmix: runs: 10 runs, from run 2",
        "flowmix: runs: stopped at run 5 of 10, moons/flows",
    ]
