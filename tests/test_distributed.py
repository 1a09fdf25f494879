"""Fits across processes (flowmix.distributed): 2 gloo processes launched by torchrun against one process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons

from flowmix import FlowMixture
from flowmix.distributed import leave_group, restart_block, world

pytest.importorskip("torch.distributed")

SCRIPT = """
import os, sys
import numpy as np
import torch.distributed as dist
from sklearn.datasets import make_moons
from flowmix import FlowMixture
from flowmix.recipes import Candidates, SingleFit

mode, out, algorithm, flow, batch_order = sys.argv[1:6]
X, _ = make_moons(400, noise=0.05, random_state=0)
recipe = SingleFit(algorithm=algorithm if algorithm != "default" else "hard-em", n_init=3, pretrain_epochs=4,
                   selection="likelihood", batch_order=batch_order,
                   shuffle_buffer=64 if batch_order == "per-restart" else None)
settings = dict(n_epochs=8, batch_size=96, random_state=0, flow=flow, recipe=recipe)
if algorithm == "default":  # the candidates recipe, its restarts all from the partition it keeps
    settings.update(recipe=Candidates().with_settings(pretrain_epochs=4), n_init=3)
if mode != "single":
    dist.init_process_group("gloo")
    settings["distributed"] = mode
model = FlowMixture(2, **settings).fit(X)
rank = dist.get_rank() if mode != "single" else 0
state = {"density." + k: v.numpy() for k, v in model.density_.state_dict().items()}
np.savez(f"{out}.{rank}.npz", labels=model.labels_, losses=model.losses_, scores=model.selection_scores_,
         best=model.best_restart_, batch_mean=model.batch_mean_losses_, **state)
if mode != "single":
    dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(
    tmp_path: Path, mode: str, algorithm: str, flow: str, batch_order: str = "shared"
) -> list[dict[str, np.ndarray]]:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / mode
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
    command = [sys.executable]
    if mode != "single":
        command += [
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
        ]
    # A session of its own, so that a hang is killed with its workers.
    process = subprocess.Popen(
        [*command, str(script), mode, str(out), algorithm, flow, batch_order],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]
    ranks = 1 if mode == "single" else 2
    return [dict(np.load(f"{out}.{rank}.npz")) for rank in range(ranks)]


@pytest.mark.parametrize(
    ("algorithm", "flow", "batch_order"),
    [
        ("hard-em", "spline", "shared"),
        ("mle", "maf", "shared"),
        ("mle", "maf", "per-restart"),
        ("default", "spline", "shared"),  # it used to refuse: the candidates recipe trained one restart
    ],
)
def test_restart_parallel_equals_one_process_exactly(tmp_path, algorithm, flow, batch_order):
    (single,) = _launch(tmp_path, "single", algorithm, flow, batch_order)
    ranks = _launch(tmp_path, "restarts", algorithm, flow, batch_order)
    for result in ranks:  # every rank ends with the single process's model, bit for bit
        assert sorted(result) == sorted(single)
        for key in single:
            np.testing.assert_array_equal(result[key], single[key], err_msg=key)


def test_data_parallel_equals_one_process_within_float_tolerance(tmp_path):
    (single,) = _launch(tmp_path, "single", "mle", "maf")
    first, second = _launch(tmp_path, "data", "mle", "maf")
    for key in single:  # the ranks agree exactly: they took the same averaged steps
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    np.testing.assert_allclose(first["losses"], single["losses"], rtol=1e-4)
    np.testing.assert_allclose(first["batch_mean"], single["batch_mean"], rtol=1e-4)
    for key in single:
        if key.startswith("density."):
            np.testing.assert_allclose(first[key], single[key], atol=1e-4, err_msg=key)
    assert int(first["best"]) == int(single["best"])
    np.testing.assert_array_equal(first["labels"], single["labels"])


def test_distributed_without_a_process_group_says_how_to_start_one():
    X, _ = make_moons(50, random_state=0)
    with pytest.raises(ValueError, match="launch with torchrun"):
        FlowMixture(2, distributed="restarts", n_epochs=1).fit(X)
    with pytest.raises(ValueError, match="distributed must be None or one of"):
        FlowMixture(2, distributed="ranks", n_epochs=1).fit(X)


def test_leaving_without_a_process_group_does_nothing():
    leave_group()  # the command line calls it after every --distributed fit; here no group exists
    assert world() == (0, 1)


def test_restart_blocks_cover_every_restart_once():
    blocks = [restart_block(7, rank, 3) for rank in range(3)]
    assert np.concatenate(blocks).tolist() == list(range(7))
    assert [len(b) for b in blocks] == [3, 2, 2]
    with pytest.raises(ValueError, match="use n_init >= 4"):
        restart_block(3, 0, 4)


def test_flowmix_fit_under_torchrun_writes_the_single_process_model(tmp_path):
    X, _ = make_moons(200, noise=0.05, random_state=0)
    table = tmp_path / "points.csv"
    np.savetxt(table, X, delimiter=",")
    fit = ["fit", str(table), "-k", "2", "--preset", "paper-toy", "--epochs", "20", "--n-init", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "flowmix", *fit, "--out", str(tmp_path / "single")]
    subprocess.run(single, env=env, check=True, capture_output=True, timeout=180)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-port", str(_free_port()), "-m", "flowmix"]
    shared = [*launcher, *fit, "--distributed", "restarts", "--out", str(tmp_path / "two")]
    done = subprocess.run(
        shared, env=env, capture_output=True, text=True, timeout=180, start_new_session=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model saved to") == 1  # the first process writes, the other stays quiet
    one, two = FlowMixture.load(tmp_path / "single"), FlowMixture.load(tmp_path / "two")
    np.testing.assert_array_equal(one.score_samples(X), two.score_samples(X))
