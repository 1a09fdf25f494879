"""flowmix's default recipe beside k-means, a GMM and spectral clustering on the toy sets (the demo's second half).

:func:`compare_on_toy_sets` clusters each toy set with ``FlowMixture(k, random_state=seed)`` and
the three baselines, scores them against the true labels (which none of them sees), and writes
``comparison.json`` and ``figures/comparison_toy.png`` into the experiment directory, where
the report (``flowmix report``) shows them beside the paper's protocol. The JSON
is rewritten atomically after each data set (a stopped run leaves the sets it finished).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np

from flowmix._io import atomic_write_text
from flowmix.paper.configs import TOY_DATASETS, get_dataset_config
from flowmix.paper.workers import check_jobs, check_sendable, threads_per_job, worker_pool

__all__ = [
    "COMPARISON_FIGURE_STEM",
    "COMPARISON_FILE",
    "METHODS",
    "compare_on_one_set",
    "compare_on_toy_sets",
    "read_comparison",
]

COMPARISON_FILE = "comparison.json"
COMPARISON_FIGURE_STEM = "comparison_toy"
#: Column order of the table and the figure.
METHODS: tuple[str, ...] = ("k-means", "GMM", "spectral", "flowmix")
# A smoke run's flowmix: the default recipe with far fewer epochs (recorded as such).
_QUICK_EPOCHS = {"n_epochs": 20, "pretrain_epochs": 10}


def _baseline(method: str, k: int, seed: int) -> Any:
    from sklearn.cluster import KMeans, SpectralClustering
    from sklearn.mixture import GaussianMixture

    if method == "k-means":
        return KMeans(k, n_init=10, random_state=seed)
    if method == "GMM":
        return GaussianMixture(k, covariance_type="full", n_init=5, random_state=seed)
    return SpectralClustering(
        k, affinity="nearest_neighbors", n_neighbors=10, assign_labels="kmeans", random_state=seed
    )


def _settings(seed: int, quick: bool) -> dict[str, Any]:
    import flowmix

    return {"seed": seed, "quick": quick, "flowmix": flowmix.__version__}


def read_comparison(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The comparison written into ``out_dir``, or None if there is none (or it is unreadable)."""
    path = Path(out_dir) / COMPARISON_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("rows"), list) else None


def compare_on_toy_sets(
    out_dir: str | os.PathLike[str],
    datasets: Sequence[str] | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
    grid_size: int = 100,
    loader: Callable[[str], Any] | None = None,
    echo: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Cluster each toy set with flowmix's default and the baselines; write the JSON and the figure.

    Parameters
    ----------
    out_dir : path
        Experiment directory (created if missing).
    datasets : sequence of str, optional
        Toy sets to run (default: all five, in the paper's order).
    seed : int
        ``random_state`` of every method.
    quick : bool
        Smoke-run settings: flowmix with 20 epochs and 10 of pretraining (recorded).
    loader : callable, optional
        ``loader(name) -> Dataset`` instead of :func:`flowmix.datasets.load_dataset`; a
        module-level function when ``jobs`` > 1 (it is sent to the worker processes).
    jobs : int, default 1
        Data sets clustered side by side in this many spawned processes
        (:mod:`flowmix.paper.workers`), each with its share of torch's threads (the
        demo's rows were identical to one process's).

    Returns
    -------
    list of dict
        One row per data set: ``dataset``, ``k``, ``n_samples`` and, per method, ``ari``, ``nmi``,
        ``acc`` and ``seconds``; flowmix's and the GMM's mean log-likelihood of the points.
    """
    from flowmix.paper.figures import method_comparison_figure

    check_jobs(jobs)
    out = Path(out_dir)
    names = [get_dataset_config(d).name for d in (datasets or [d.name for d in TOY_DATASETS])]
    not_toy = [n for n in names if not get_dataset_config(n).is_toy]
    if not_toy:
        raise ValueError(
            f"{', '.join(not_toy)} is not a toy set; compare_on_toy_sets runs the 2-D toy sets only."
        )
    if jobs > 1:
        check_sendable(loader, "loader")
    say = echo or (lambda message: None)
    settings = _settings(seed, quick)
    done: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {}
    out.mkdir(parents=True, exist_ok=True)

    def keep(name: str, result: tuple[dict[str, Any], tuple[Any, ...]]) -> None:
        done[name] = result
        row = result[0]
        say(
            f"{name}: ARI " + ", ".join(f"{m} {row[m]['ari']:.3f}" for m in METHODS)
            + f" (flowmix fit {row['flowmix']['seconds']:.1f} s)"
        )  # fmt: skip
        rows = [done[n][0] for n in names if n in done]  # the paper's order, whatever finished first
        atomic_write_text(
            out / COMPARISON_FILE, json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n"
        )

    if jobs == 1 or len(names) == 1:
        for name in names:
            keep(name, compare_on_one_set(name, seed, quick, grid_size, loader))
    else:
        workers = min(jobs, len(names))  # the threads are shared among the processes that run
        with worker_pool(workers, threads_per_job(workers)) as pool:
            futures = {pool.submit(compare_on_one_set, n, seed, quick, grid_size, loader): n for n in names}
            for future in as_completed(futures):
                keep(futures[future], future.result())
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    method_comparison_figure(
        [done[n][1] for n in names],
        figures / f"{COMPARISON_FIGURE_STEM}.png",
        density_title="flowmix density",
    )
    return [done[n][0] for n in names]


def compare_on_one_set(
    name: str, seed: int, quick: bool, grid_size: int, loader: Callable[[str], Any] | None
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """One toy set's row of :func:`compare_on_toy_sets` and its panel of the figure (label, X, labels, density)."""
    from flowmix import FlowMixture
    from flowmix.datasets import load_dataset
    from flowmix.metrics import clustering_scores
    from flowmix.paper.figures import grid_2d

    ds = get_dataset_config(name)
    data = (loader or load_dataset)(name)
    X, y = np.asarray(data.X, dtype=np.float64), np.asarray(data.y)
    quick_settings = {}
    if quick:
        from flowmix.recipes import Candidates

        quick_settings = {
            "n_epochs": _QUICK_EPOCHS["n_epochs"],
            "recipe": Candidates().with_settings(pretrain_epochs=_QUICK_EPOCHS["pretrain_epochs"]),
        }
    model = FlowMixture(ds.k, random_state=seed, **quick_settings)
    labels: dict[str, np.ndarray] = {}
    row: dict[str, Any] = {"dataset": name, "k": ds.k, "n_samples": len(X)}
    for method in METHODS:
        estimator = model if method == "flowmix" else _baseline(method, ds.k, seed)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spectral's "graph is not fully connected"
            labels[method] = np.asarray(estimator.fit_predict(X))
        seconds = time.perf_counter() - started
        row[method] = {**clustering_scores(y, labels[method]), "seconds": round(seconds, 3)}
        if method == "GMM":
            row["gmm_log_likelihood"] = float(estimator.score(X))
    row["flowmix_log_likelihood"] = float(model.score(X))
    xx, yy, grid = grid_2d(X, n=grid_size)
    return row, (ds.label, X, labels, (xx, yy, model.score_samples(grid).reshape(xx.shape)))
