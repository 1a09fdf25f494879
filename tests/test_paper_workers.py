"""flowmix.paper.workers, and the grid and the toy comparison shared between worker processes.

The workers are real spawned processes; each test compares what they write with what one
process writes for the same work.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from flowmix.datasets import load_dataset
from flowmix.paper import comparison
from flowmix.paper.records import read_records
from flowmix.paper.runner import GridSpec, run_grid
from flowmix.paper.workers import auto_jobs, check_jobs, threads_per_job, torch_threads, worker_pool


def small_toy_set(name: str):
    """300 points of a toy set (module level: the workers import it by name)."""
    data = load_dataset(name)
    keep = np.random.default_rng(1).choice(len(data.y), 300, replace=False)
    return type("Small", (), {"X": np.asarray(data.X)[keep], "y": np.asarray(data.y)[keep]})


@pytest.mark.parametrize("jobs", [0, -2, 1.5, True, "2"])
def test_a_job_count_must_be_a_whole_number_of_at_least_one(jobs):
    with pytest.raises(ValueError, match="whole number >= 1"):
        check_jobs(jobs)
    assert check_jobs(3) == 3


def test_automatic_jobs_are_one_per_core_at_most_one_per_task_and_one_on_a_gpu():
    assert auto_jobs("cuda:0", 8) == 1
    assert auto_jobs("cpu", 1) == 1
    assert 1 <= auto_jobs("cpu", 100) <= (os.cpu_count() or 1)
    assert threads_per_job(10_000) == 1  # never below one thread


def test_threads_are_restored_after_the_block_and_set_in_every_worker():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with worker_pool(2, 1) as pool:
        counts = [pool.submit(torch.get_num_threads).result() for _ in range(2)]
    assert counts == [1, 1]


def _without_times(records: list[dict]) -> dict:
    """Each record but its times and machine, by (data set, method, run)."""
    return {
        (r["dataset"], r["method"], r["run"]): {
            k: v for k, v in r.items() if "seconds" not in k and not k.endswith("_at") and k != "machine"
        }
        for r in records
    }


def _same_records(shared: list[dict], alone: list[dict]) -> None:
    """Equal, but k-means' objective to 1e-6: scikit-learn sums it in one part per thread, and a worker has fewer."""
    shared_by_key, alone_by_key = _without_times(shared), _without_times(alone)
    assert shared_by_key.keys() == alone_by_key.keys()
    for key, record in shared_by_key.items():
        expected = alone_by_key[key]
        objective, expected_objective = record.pop("objective"), expected.pop("objective")
        if expected_objective is None:  # random labels have none
            assert objective is None, key
        else:
            assert objective == pytest.approx(expected_objective, rel=1e-6), key
        assert record == expected, key


def test_a_grid_shared_by_two_processes_writes_every_record_once_as_one_process_does(tmp_path):
    spec = GridSpec(datasets=["moons", "smile"], methods=["random", "kmeans"], runs=3, quick=True)
    alone = run_grid(spec, tmp_path / "alone", progress=False)
    shared = run_grid(spec, tmp_path / "shared", progress=False, jobs=2)
    assert alone.new_records == shared.new_records == 12
    assert shared.skipped_records == shared.claimed_elsewhere == 0
    records = read_records(tmp_path / "shared")
    assert len(records) == 12  # none written twice
    _same_records(records, read_records(tmp_path / "alone"))
    again = run_grid(spec, tmp_path / "shared", progress=False, jobs=2)
    assert (again.new_records, again.skipped_records) == (0, 12)


def test_the_toy_comparison_in_two_processes_gives_one_process_rows(tmp_path):
    names = ["two_bananas", "moons"]
    alone = comparison.compare_on_toy_sets(tmp_path / "alone", names, quick=True, loader=small_toy_set)
    shared = comparison.compare_on_toy_sets(
        tmp_path / "shared", names, quick=True, loader=small_toy_set, jobs=2
    )

    def timeless(rows):
        return [
            {k: {**v, "seconds": 0} if isinstance(v, dict) else v for k, v in row.items()} for row in rows
        ]

    assert [r["dataset"] for r in shared] == names  # the order asked for, whichever finished first
    assert timeless(shared) == timeless(alone)
    saved = json.loads((tmp_path / "shared" / comparison.COMPARISON_FILE).read_text())
    assert saved["rows"] == shared
    assert (tmp_path / "shared" / "figures" / "comparison_toy.png").is_file()


def test_a_loader_the_workers_cannot_receive_is_refused_before_anything_runs(tmp_path):
    spec = GridSpec(datasets=["moons"], methods=["kmeans"], runs=1, quick=True)
    with pytest.raises(ValueError, match="module-level function, or jobs=1"):
        run_grid(spec, tmp_path / "grid", progress=False, loader=lambda name: small_toy_set(name), jobs=2)
    with pytest.raises(ValueError, match="module-level function, or jobs=1"):
        comparison.compare_on_toy_sets(
            tmp_path / "comparison",
            ["moons", "smile"],
            quick=True,
            loader=lambda name: small_toy_set(name),
            jobs=2,
        )
    assert not (tmp_path / "grid").exists()
    assert not (tmp_path / "comparison").exists()
