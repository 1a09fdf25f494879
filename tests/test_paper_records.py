"""Several processes sharing one experiment directory: appends, claims and two concurrent runners.

The processes are real (subprocesses of this interpreter): ``flock`` locks of one process do not
exclude each other the way two processes' do, and a kill must be a kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from flowmix.paper.records import (
    CLAIMS_DIR,
    RECORDS_FILE,
    append_records,
    claim_owner,
    read_records,
    record_key,
    try_claim,
    unit_name,
)
from flowmix.paper.runner import GridSpec, run_grid

pytestmark = [
    pytest.mark.usefixtures("offline"),
    pytest.mark.skipif(sys.platform == "win32", reason="claims and record locks need fcntl (POSIX)"),
]


def _child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _raw_lines(out: Path) -> list[dict]:
    """Every line of the records file parsed strictly: a torn or merged line fails here."""
    text = (out / RECORDS_FILE).read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# ------------------------------------------------------------------------------------------------
# Appending


APPENDER = """
    import sys, time
    from pathlib import Path
    from flowmix.paper.records import append_records
    out, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    pad = tag * 20000  # batches far larger than a pipe buffer or a page
    for i in range(40):
        batch = [
            {"dataset": tag, "method": "m", "run": 3 * i + j, "config_hash": "h", "pad": pad}
            for j in range(3)
        ]
        append_records(out, batch)
"""


def test_concurrent_appends_neither_interleave_nor_lose_records(tmp_path):
    go = tmp_path / "go"
    children = [_spawn(APPENDER, str(tmp_path), tag, str(go)) for tag in ("a", "b", "c")]
    time.sleep(0.5)  # let all three import and wait at the barrier
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err

    lines = _raw_lines(tmp_path)
    assert len(lines) == 3 * 40 * 3
    keys = Counter(record_key(r) for r in lines)
    assert set(keys.values()) == {1}
    assert {r["dataset"] for r in lines} == {"a", "b", "c"}
    assert all(r["pad"] == r["dataset"] * 20000 for r in lines)
    # A batch is written in one piece: its three records are adjacent in the file.
    for start in range(0, len(lines), 3):
        batch = lines[start : start + 3]
        assert len({r["dataset"] for r in batch}) == 1
        assert [r["run"] % 3 for r in batch] == [0, 1, 2]


def test_append_after_a_torn_line_starts_a_new_line(tmp_path):
    append_records(tmp_path, [{"dataset": "d", "method": "m", "run": 0, "config_hash": "h"}])
    with (tmp_path / RECORDS_FILE).open("a", encoding="utf-8") as fh:
        fh.write('{"dataset": "d", "method": "m", "ru')  # a kill in the middle of a write
    append_records(tmp_path, [{"dataset": "d", "method": "m", "run": 1, "config_hash": "h"}])
    assert [r["run"] for r in read_records(tmp_path)] == [0, 1]


# ------------------------------------------------------------------------------------------------
# Claims


HOLDER = """
    import sys, time
    from flowmix.paper.records import try_claim
    claim = try_claim(sys.argv[1], sys.argv[2])
    print("claimed" if claim is not None else "refused", flush=True)
    time.sleep(120)
"""


def test_a_claim_excludes_other_processes_until_its_holder_is_killed(tmp_path):
    unit = unit_name("moons", "kmeans", "0123456789ab", 0)
    holder = _spawn(HOLDER, str(tmp_path), unit)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        assert try_claim(tmp_path, unit) is None
        assert claim_owner(tmp_path, unit)["pid"] == holder.pid
        # Another unit is free meanwhile.
        other = try_claim(tmp_path, unit_name("moons", "kmeans", "0123456789ab", 1))
        assert other is not None
        other.release()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The killed holder's claim file is still there, but its lock died with it.
    assert (tmp_path / CLAIMS_DIR / f"{unit}.lock").exists()
    reclaimed = try_claim(tmp_path, unit)
    assert reclaimed is not None
    assert claim_owner(tmp_path, unit)["pid"] == os.getpid()
    reclaimed.release()
    assert not (tmp_path / CLAIMS_DIR / f"{unit}.lock").exists()
    assert not reclaimed.held


def test_unit_names_refuse_path_characters():
    with pytest.raises(ValueError, match="only letters, digits"):
        unit_name("../moons", "kmeans", "abc", 0)


# ------------------------------------------------------------------------------------------------
# The runner


def test_runner_leaves_a_claimed_unit_to_its_holder_and_runs_it_later(tmp_path):
    spec = GridSpec(datasets=["smile"], methods=["random", "kmeans"], runs=3, quick=True)
    first = run_grid(spec, tmp_path, progress=False)
    assert first.new_records == 6
    digest = next(r["config_hash"] for r in read_records(tmp_path) if r["method"] == "kmeans")
    # Another configuration of the same grid (more runs): runs 3 and 4 of k-means are new.
    more = GridSpec(datasets=["smile"], methods=["kmeans"], runs=5, quick=True)
    held = try_claim(tmp_path, unit_name("smile", "kmeans", digest, 3))
    assert held is not None
    messages: list[str] = []
    try:
        summary = run_grid(more, tmp_path, progress=False, echo=messages.append)
    finally:
        held.release()
    assert summary.new_records == 1 and summary.claimed_elsewhere == 1
    assert any("smile/kmeans run 3: being run by another process" in m for m in messages)
    runs = sorted(r["run"] for r in read_records(tmp_path) if r["method"] == "kmeans")
    assert runs == [0, 1, 2, 4]
    again = run_grid(more, tmp_path, progress=False)
    assert again.new_records == 1 and again.claimed_elsewhere == 0
    assert sorted(r["run"] for r in read_records(tmp_path) if r["method"] == "kmeans") == [0, 1, 2, 3, 4]


RUNNER = """
    import json, sys, time
    from pathlib import Path
    from types import SimpleNamespace
    import numpy as np
    from flowmix.paper.runner import GridSpec, run_grid
    out, go = sys.argv[1], Path(sys.argv[2])
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.05, (30, 4)) for c in (0.2, 0.4, 0.6, 0.8, 1.0)]).astype(np.float32)
    data = SimpleNamespace(X=X, y=np.repeat(np.arange(5), 30))
    spec = GridSpec(**json.loads(sys.argv[3]))
    while not go.exists():
        time.sleep(0.005)
    s = run_grid(spec, out, progress=False, loader=lambda name: data)
    print(json.dumps({"new": s.new_records, "skipped": s.skipped_records, "elsewhere": s.claimed_elsewhere}))
"""
# Two small "image" rows (no figures, no saved models) served by a loader: 2 flows fits (one unit each)
# and 18 baseline runs (one unit each).
GRID = {
    "datasets": ["mnist5", "mnist5_pca"],
    "methods": ["flows", "random", "kmeans", "gmm"],
    "runs": 3,
    "epochs": 2,
    "quick": True,
}


def test_two_runner_processes_write_every_record_exactly_once(tmp_path):
    out = tmp_path / "grid"
    go = tmp_path / "go"
    children = [_spawn(RUNNER, str(out), str(go), json.dumps(GRID)) for _ in range(2)]
    time.sleep(1.0)  # both import flowmix and torch, then wait at the barrier
    go.touch()
    summaries = []
    for child in children:
        stdout, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))

    total = 2 * 4 * 3  # data sets x methods x runs
    lines = _raw_lines(out)
    keys = Counter(record_key(r) for r in lines)
    assert len(keys) == total and set(keys.values()) == {1}, keys.most_common(3)
    assert {(r["dataset"], r["method"]) for r in lines} == {
        (d, m) for d in GRID["datasets"] for m in GRID["methods"]
    }
    assert sum(s["new"] for s in summaries) == total
    # Each process accounted for every record of the grid: run, found done, or left to the other.
    assert all(s["new"] + s["skipped"] + s["elsewhere"] == total for s in summaries)
    assert not list((out / CLAIMS_DIR).glob("*.lock"))
