"""Ctrl-C (SIGINT) during `flowmix fit --out DIR` leaves no partial model directory.

The command runs in a subprocess with enough epochs to still be training when the signal comes;
the signal is sent once it has logged the start of training. The process must then stop with
a non-zero status and a short message (no traceback), and DIR must be as before: absent, or the
earlier model byte for byte. No hidden temporary directory may be left beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowmix.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fit_command(data: Path, out: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "flowmix", "fit", str(data), "-k", "2", "--preset", "paper-toy",
            "--epochs", str(epochs), "--n-init", "1", "--out", str(out), "--verbose"]  # fmt: skip


def _interrupt_when_training(process: subprocess.Popen, timeout: float = 120.0) -> str:
    """Wait for the line that starts a training stage, send SIGINT, return all of stderr."""
    os.set_blocking(process.stderr.fileno(), False)
    seen = b""
    deadline = time.monotonic() + timeout
    # stderr is a pipe, so no bar: one line as a stage starts ("flowmix: train: 1000000 epochs").
    while b"train: " not in seen:
        assert process.poll() is None, f"fit ended before it was interrupted:\n{seen.decode()}"
        assert time.monotonic() < deadline, f"no progress within {timeout} s:\n{seen.decode()}"
        seen += process.stderr.read() or b""
        time.sleep(0.05)
    assert process.poll() is None, "fit finished before the signal: raise --epochs"
    process.send_signal(signal.SIGINT)
    os.set_blocking(process.stderr.fileno(), True)
    try:
        rest = process.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return (seen + rest).decode(errors="replace")


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "points.csv"
    rows = np.random.RandomState(0).rand(300, 2)
    path.write_text("a,b\n" + "".join(f"{x:.5f},{y:.5f}\n" for x, y in rows))
    return path


def test_sigint_during_fit_leaves_no_partial_model(data, tmp_path):
    """Two fits interrupted at once (one interpreter start of wall time): into a new directory,
    and over an existing model."""
    new, existing = tmp_path / "new" / "model", tmp_path / "existing" / "model"
    new.parent.mkdir()
    # The earlier model, written in this process (no extra interpreter start).
    done = CliRunner().invoke(main, _fit_command(data, existing, 1)[3:])
    assert done.exit_code == 0, done.output
    before = _snapshot(existing)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    processes = [
        subprocess.Popen(
            _fit_command(data, out, 10**6), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for out in (new, existing)
    ]
    try:
        stderrs = [_interrupt_when_training(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, stderr in zip(processes, stderrs, strict=True):
        assert process.returncode != 0
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        last = stderr.strip().replace("\r", "\n").splitlines()[-1]
        assert 0 < len(last) <= 80, last  # one short line (click: "Aborted!")
    assert not new.exists() and list(new.parent.iterdir()) == []
    assert _snapshot(existing) == before
    assert [p.name for p in existing.parent.iterdir()] == ["model"]  # no temporary directory left
