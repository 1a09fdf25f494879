"""benchmarks/gpu_check.sh where there is no GPU: it says so, writes its summary and exits 0.

The GPU path itself runs on a GPU machine only (see the script's header); here the script is run
with a tiny budget, as CI would, and its data-staging helper on a fake data folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the GPU check is a bash script")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, GPU_CHECK_PYTHON=sys.executable, OMP_NUM_THREADS="1", **env)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the real check")
def test_without_a_gpu_it_reports_no_gpu_and_exits_0(tmp_path):
    out = tmp_path / "out"
    # 50 s leaves the environment probe 30 s (importing torch and flowmix took 4.6-4.8 s on the
    # 2-core machine, too close to the 5 s a 25 s budget left) and nothing else room to run.
    done = _run(tmp_path, OUT=str(out), GPU_CHECK_BUDGET_S="50", GPU_CHECK_WORK=str(tmp_path / "work"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no GPU: torch sees no CUDA device for 'cuda'" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gpu"] is False
    # The probe ran (and found no GPU); with 50 s nothing else fits, so nothing else ran.
    assert [(s["step"], s["status"]) for s in summary["steps"]] == [("env", "no_gpu")]
    assert summary["env"]["torch"] == torch.__version__ and summary["env"]["cuda"] is None
    assert summary["table1"] == []
    assert summary["elapsed_s"] <= 50
    assert (out / "summary.md").read_text().startswith("# flowmix GPU check")
    assert "no GPU" in (out / "gpu_check.log").read_text()
    # At most 8 files come back from a device call; the script leaves fewer, none in subfolders.
    assert len(list(out.iterdir())) <= 8 and all(p.is_file() for p in out.iterdir())


def test_a_budget_that_is_not_a_number_is_refused(tmp_path):
    done = _run(tmp_path, OUT=str(tmp_path / "out"), GPU_CHECK_BUDGET_S="9m")
    assert done.returncode == 2
    assert "GPU_CHECK_BUDGET_S must be a whole number of seconds, got '9m'" in done.stderr


def _fake_shared(root: Path) -> Path:
    for folder in ("mnist", "fashion-mnist"):
        (root / folder).mkdir(parents=True)
        for name in FILES:
            (root / folder / name).write_bytes(f"{folder}/{name}".encode())
    return root


def test_stage_copies_the_image_files_and_prints_the_carry_list(tmp_path):
    shared = _fake_shared(tmp_path / "shared")
    records = tmp_path / "old.jsonl"
    records.write_text('{"a": 1}\n{"a": 2}\n')
    staged = tmp_path / "staged"
    done = _run(
        tmp_path,
        "--stage",
        "--resume",
        str(records),
        FLOWMIX_SHARED_DATA=str(shared),
        GPU_CHECK_DATA=str(staged),
    )
    assert done.returncode == 0, done.stderr
    for folder in ("mnist", "fashion-mnist"):
        for name in FILES:
            assert (staged / folder / name).read_bytes() == f"{folder}/{name}".encode()
            assert not (staged / folder / name).is_symlink()
    assert (staged / "resume" / "records.jsonl").read_text() == records.read_text()
    assert "staged 8 file(s)" in done.stdout
    assert "resume: 2 record(s)" in done.stdout
    assert f"carry: {staged}" in done.stdout
    # A folder outside the repository cannot travel with it: the helper says so.
    assert "is outside the repository" in done.stderr


def test_stage_names_a_missing_file(tmp_path):
    shared = _fake_shared(tmp_path / "shared")
    (shared / "fashion-mnist" / FILES[0]).unlink()
    done = _run(tmp_path, "--stage", FLOWMIX_SHARED_DATA=str(shared), GPU_CHECK_DATA=str(tmp_path / "s"))
    assert done.returncode == 1
    assert f"{shared}/fashion-mnist/{FILES[0]} is missing" in done.stderr
