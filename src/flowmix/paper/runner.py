"""Run a grid of (data set x method x run) with the paper's protocol, resumably, into JSON lines.

Every method is run ``runs`` times and the run with the lowest training objective is the one
reported (see :func:`flowmix.paper.records.select_best`). A baseline's run ``i`` uses seed
``i``. The mixture of flows does its ``runs`` runs as the restarts of *one*
:class:`~flowmix.FlowMixture` fit seeded ``random_state=0`` (``n_init=runs``, trained together in
one batched program), so all its records carry that one ``seed`` and tell the runs apart by
``restart`` (= ``run``); a callback at the last epoch evaluates every restart on the data, so each
restart gets its own record with its own metrics, not only the best one.

One JSON record per (data set, method, run) is appended to ``<out>/records.jsonl`` (the record
store, :mod:`flowmix.paper.records`) as soon as the run (or the batched fit) finishes, and
flushed. A record's key is (data set, method, run, config hash); a re-run skips the keys already
present, so an interrupted grid resumes where it stopped and a finished one costs nothing to
repeat. A half-written last line (a kill during the write) is ignored on reading.

Several runners may share one output directory, to fan a grid out: each unit of work (a batched
flows fit, one baseline run) is claimed before it runs (:func:`~flowmix.paper.records.try_claim`),
a unit claimed by another live process is left to it, and a claimed unit whose records appeared
meanwhile is not run again; so every record is written once.

For the toy sets the runner also writes, per set, the best model (``models/<name>/``), an animated
GIF of the best run's density during training, a Figure 2-style panel of the other runs'
densities and the arrays behind them; :func:`make_figure1` draws Figure 1 from the saved models.

>>> spec = GridSpec(datasets=["moons"], methods=["kmeans"], runs=2)
>>> summary = run_grid(spec, "results/smoke", progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from flowmix._io import atomic_write, atomic_write_text
from flowmix._memory import reuse_freed_memory
from flowmix.paper.configs import (
    METHODS,
    PAPER_METHODS,
    QUICK,
    TOY_DATASETS,
    DatasetConfig,
    QuickSettings,
    get_dataset_config,
)
from flowmix.paper.records import (
    RECORDS_FILE,
    SCHEMA_VERSION,
    RecordKey,
    append_records,
    claim_owner,
    config_hash,
    jsonable,
    read_records,
    record_key,
    try_claim,
    unit_name,
)
from flowmix.paper.workers import (
    check_jobs,
    check_sendable,
    threads_per_job,
    torch_threads,
    worker_pool,
)

logger = logging.getLogger(__name__)

__all__ = [
    "GridSpec",
    "GridSummary",
    "check_device",
    "machine_info",
    "make_figure1",
    "run_grid",
    "unit_config",
]

PAPER_RUNS = 10
PAPER_BASELINE_N_INIT = 10
FLOWS_RANDOM_STATE = 0
SUBSAMPLE_SEED = 0
TOY_DATA_SEED = 1
# 2000 epochs / 40 = 51 frames of the density animation (about 5 s at 10 frames per second).
DEFAULT_SNAPSHOT_EVERY = 40

FIGURE1_STEM = "figure1_toy"
OBJECTIVE_NAMES = {
    "flows": "final training loss (mean NLL per sample over the last epoch)",
    "kmeans": "k-means inertia",
    "gmm": "negative mean log-likelihood per sample",
    "random": None,
    "recipe": (
        "selection score of the kept restart under the rule that kept it (the candidates recipe's: "
        "the final training loss)"
    ),
}
# A quick run's flowmix default: a handful of epochs (recorded in the configuration).
QUICK_RECIPE_EPOCHS = (5, 5)
# FlowMixture parameters of the recipe that say where it runs, not what it computes.
_RECIPE_NOT_RECORDED = frozenset({"n_components", "random_state", "device", "verbose", "checkpoint"})

Loader = Callable[[str], Any]
Echo = Callable[[str], None]


@dataclass
class GridSpec:
    """What to run.

    Attributes
    ----------
    datasets : sequence of str
        Names from :data:`flowmix.paper.configs.DATASETS`.
    methods : sequence of str
        Any of ``"flows"``, ``"random"``, ``"kmeans"``, ``"gmm"`` (the paper's, the default) and
        ``"recipe"`` (flowmix's default ``FlowMixture(k, random_state=run)``).
    runs : int, optional
        Runs per method (baselines: seeds ``0..runs-1``; flows: the restarts of one seeded fit);
        default 10, or 2 in quick mode.
    epochs : int, optional
        Overrides the preset's epochs of the mixture of flows (and the quick default).
    device : str
        Torch device of the mixture of flows.
    baselines_on_device : bool
        False (default): k-means and EM/GMM are scikit-learn's on the CPU, the paper's protocol.
        True: they run in torch on ``device`` (flowmix.paper.device_baselines), for GPU machines; the
        records' configuration then says ``"implementation": "torch"``.
    data_dir : path, optional
        Folder with the image sets (see :func:`flowmix.paper.data.load_dataset`).
    quick : bool
        Tiny settings for a smoke run (:data:`flowmix.paper.configs.QUICK`); recorded.
    max_samples : int, optional
        Subsample image sets to at most this many points (default: all; quick: 2000).
    snapshot_every : int, optional
        Epochs between density snapshots for the toy animations (default 40; quick: 10).
    grid_size : int
        Points per axis of the density grid of the toy figures.
    save_models : bool, optional
        Save the best model of each data set; default: toy sets only (image models are large).
    checkpoint_seconds : float or None
        Image-set flows fits write a checkpoint (``<out>/checkpoints/``) this often, so a killed
        grid loses at most this much of one fit; the checkpoint is deleted once the fit's records
        are written. None: no checkpoints.
    explicit : bool
        The data sets were named by the user: a missing image set is an error (and may be
        downloaded) instead of being skipped with a message.
    download : bool
        Allow downloading missing image files when ``explicit``.
    seed : int, optional
        ``random_state`` of the mixture-of-flows fit: another seed is another protocol draw of
        its 10 restarts (default 0). The baselines keep seeds ``0..runs-1``.
    recipe_epochs, recipe_pretrain_epochs : int, optional
        ``n_epochs`` and ``pretrain_epochs`` of the ``"recipe"`` method (default: the recipe's 200
        and 100; quick: 5 and 5). Recorded in its configuration.
    batch_order, shuffle_buffer : optional
        The paper preset's :class:`~flowmix.FlowMixture` options of these names (the reference
        code's per-restart mini-batch orders and 1024-point shuffle buffer); recorded in the
        configuration only when they differ from flowmix's default (shared order, full
        permutation), so earlier records keep their configuration hashes.
    """

    datasets: Sequence[str]
    methods: Sequence[str] = PAPER_METHODS
    runs: int | None = None
    epochs: int | None = None
    device: str = "cpu"
    baselines_on_device: bool = False
    data_dir: str | os.PathLike[str] | None = None
    quick: bool = False
    max_samples: int | None = None
    snapshot_every: int | None = None
    grid_size: int = 100
    save_models: bool | None = None
    checkpoint_seconds: float | None = 300.0
    explicit: bool = False
    download: bool = True
    quick_settings: QuickSettings = field(default_factory=lambda: QUICK)
    seed: int | None = None
    recipe_epochs: int | None = None
    recipe_pretrain_epochs: int | None = None
    batch_order: str = "shared"
    shuffle_buffer: int | None = None

    def __post_init__(self) -> None:
        self.datasets = [get_dataset_config(d).name for d in self.datasets]
        if not self.datasets:
            raise ValueError("No data sets to run; name at least one.")
        methods = [str(m).strip().lower() for m in self.methods]
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
        if not methods:
            raise ValueError("No methods to run; name at least one of " + ", ".join(METHODS) + ".")
        self.methods = list(dict.fromkeys(methods))
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}.")
        from flowmix.batch_order import BATCH_ORDERS

        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(
                f"batch-order must be one of {', '.join(BATCH_ORDERS)}, got {self.batch_order!r}."
            )
        names = (
            "runs",
            "epochs",
            "max_samples",
            "snapshot_every",
            "grid_size",
            "shuffle_buffer",
            "recipe_epochs",
        )
        for name in (*names, "recipe_pretrain_epochs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}.")
        if self.grid_size < 2:
            raise ValueError(f"grid-size must be at least 2, got {self.grid_size}.")

    @property
    def n_runs(self) -> int:
        if self.runs is not None:
            return self.runs
        return self.quick_settings.runs if self.quick else PAPER_RUNS

    @property
    def n_snapshot_every(self) -> int:
        if self.snapshot_every is not None:
            return self.snapshot_every
        return self.quick_settings.snapshot_every if self.quick else DEFAULT_SNAPSHOT_EVERY

    def image_max_samples(self) -> int | None:
        if self.max_samples is not None:
            return self.max_samples
        return self.quick_settings.max_samples if self.quick else None


@dataclass
class GridSummary:
    """What :func:`run_grid` did.

    Attributes
    ----------
    out_dir : Path
    new_records : int
        Records written by this call.
    skipped_records : int
        Records already present (resumed), not re-run.
    claimed_elsewhere : int
        Records of units that another process was running (claimed) when this one reached them.
    skipped_datasets : list of (name, reason)
        Data sets left out because their files are missing.
    seconds : float
        Wall time of the call.
    """

    out_dir: Path
    new_records: int = 0
    skipped_records: int = 0
    claimed_elsewhere: int = 0
    skipped_datasets: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    figures: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Configurations


def unit_config(ds: DatasetConfig, method: str, spec: GridSpec) -> dict[str, Any]:
    """Everything that determines the results of ``method`` on ``ds``: hashed into the record key.

    The device is left out (the same configuration on another device is the same experiment).
    For the mixture of flows the number of runs is in (they are the restarts of one fit); for the
    baselines it is not (run ``i`` is seed ``i`` whatever the number of runs).
    """
    quick = bool(spec.quick)
    config: dict[str, Any] = {
        "dataset": ds.name,
        "method": method,
        "k": ds.k,
        "quick": quick,
        "max_samples": None if ds.is_toy else spec.image_max_samples(),
        "subsample_seed": None if ds.is_toy else SUBSAMPLE_SEED,
        "data_seed": TOY_DATA_SEED if ds.is_toy else None,
    }
    if ds.features is not None:  # the features' settings (load_dataset's defaults, seed 1) are in the hash
        config["features"] = {"method": ds.features, "n_features": ds.k, "source": ds.source, "seed": 1}
    if method == "flows":
        from flowmix.persistence import params_to_json
        from flowmix.presets import preset_params

        overrides: dict[str, Any] = {"n_init": spec.n_runs}
        if quick:
            q = spec.quick_settings
            overrides["n_epochs"] = q.toy_epochs if ds.is_toy else q.image_epochs
            if not ds.is_toy:
                overrides["hidden_units"] = tuple(int(h) for h in q.image_hidden_units)
        if spec.epochs is not None:
            overrides["n_epochs"] = spec.epochs
        if spec.batch_order != "shared":
            overrides["batch_order"] = spec.batch_order
        if spec.shuffle_buffer is not None:
            overrides["shuffle_buffer"] = spec.shuffle_buffer
        params = params_to_json(preset_params(ds.preset, **overrides))
        config.update(
            preset=ds.preset,
            params=dict(sorted(params.items())),
            runs=spec.n_runs,
            random_state=FLOWS_RANDOM_STATE if spec.seed is None else spec.seed,
        )
    elif method == "recipe":
        from flowmix import FlowMixture
        from flowmix.persistence import params_to_json
        from flowmix.recipes import Candidates

        # The recipe's every setting is in the configuration, so that a change of the default
        # recipe is a new experiment rather than a resumed one.
        recipe = {k: v for k, v in FlowMixture().get_params().items() if k not in _RECIPE_NOT_RECORDED}
        epochs, pretrain = QUICK_RECIPE_EPOCHS if quick else (recipe["n_epochs"], None)
        recipe["n_epochs"] = spec.recipe_epochs or epochs
        if spec.recipe_pretrain_epochs or pretrain:  # the default recipe's pretraining, changed
            recipe["recipe"] = Candidates().with_settings(
                pretrain_epochs=spec.recipe_pretrain_epochs or pretrain
            )
        config["params"] = jsonable(params_to_json(recipe))
    elif method in ("kmeans", "gmm"):
        config["n_init"] = spec.quick_settings.baseline_n_init if quick else PAPER_BASELINE_N_INIT
        if spec.baselines_on_device:
            # Another implementation, other results: a separate experiment. scikit-learn's
            # configurations keep their hashes.
            config["implementation"] = "torch"
    return config


# ------------------------------------------------------------------------------------------------
# Machine description


def _cpu_name() -> str:
    return platform.processor() or platform.machine() or "cpu"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Platform, CPU count and library versions, plus the torch device's name."""
    import sklearn
    import torch

    import flowmix

    name = _cpu_name()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        try:
            name = torch.cuda.get_device_name(torch.device(device))
        except (RuntimeError, AssertionError, ValueError):
            name = "cuda"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "flowmix": flowmix.__version__,
        "device": str(device),
        "device_name": name,
    }


# ------------------------------------------------------------------------------------------------
# Data


def _available_images(data_dir: Any) -> dict[str, dict[str, Any]]:
    from flowmix.paper.data import list_datasets

    return {row["name"]: row for row in list_datasets(data_dir)}


def _load(ds: DatasetConfig, spec: GridSpec, loader: Loader | None) -> Any:
    if loader is not None:
        return loader(ds.name)
    from flowmix.paper.data import load_dataset

    if ds.is_toy:
        return load_dataset(ds.name)
    where = {"data_dir": spec.data_dir, "download": spec.download and spec.explicit}
    if ds.features is not None:
        return load_dataset(ds.source, features=ds.features, n_features=ds.k, **where)
    return load_dataset(ds.name, **where)


def _subsample(X: np.ndarray, y: np.ndarray, max_samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    if max_samples is None or X.shape[0] <= max_samples:
        return X, y
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    idx = np.sort(rng.choice(X.shape[0], size=max_samples, replace=False))
    return X[idx], y[idx]


# ------------------------------------------------------------------------------------------------
# The grid


def run_grid(
    spec: GridSpec,
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    echo: Echo | None = None,
    loader: Loader | None = None,
    jobs: int = 1,
) -> GridSummary:
    """Run every (data set, method, run) of ``spec`` not yet in ``<out_dir>/records.jsonl``.

    Parameters
    ----------
    spec : GridSpec
    out_dir : path
        Created if needed. Records, models, arrays and figures go under it.
    progress : bool, default True
        Progress over the runs of the grid and over the epochs of each fit: tqdm bars with an ETA
        when stderr is a terminal, otherwise one log line as each stage starts and ends.
    echo : callable, optional
        Receives one-line messages (skipped data sets, resumed runs); the library never prints.
    loader : callable, optional
        ``loader(name) -> Dataset`` replacing :func:`flowmix.paper.data.load_dataset` (tests, or
        data from elsewhere); it must return an object with ``X`` and ``y``, and be picklable
        (a module-level function) when ``jobs`` > 1.
    jobs : int, default 1
        Processes that share the grid's units of work through their claims: this one and
        ``jobs - 1`` spawned workers (:mod:`flowmix.paper.workers`), each with its share of
        torch's threads. Each record is written once, and equals a single process's up to what
        the thread count can change (see the module); toy-sized fits, which keep one core busy
        whatever the thread count, finish about ``jobs`` times sooner. Image-sized fits use
        every thread: leave them to one process.

    Returns
    -------
    GridSummary
    """
    check_jobs(jobs)
    started = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory; choose another output directory.")
    if {"flows", "recipe"} & set(spec.methods):
        check_device(spec.device)
    if jobs == 1:
        summary, _ = _run_share(spec, out, progress, echo, loader)
    else:
        check_sendable(loader, "loader")
        summary = _run_in_workers(spec, out, progress, echo, loader, jobs)
    toy_done = [d for d in spec.datasets if get_dataset_config(d).is_toy]
    if "flows" in spec.methods and toy_done:
        summary.figures += make_figure1(out, loader=loader)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_in_workers(
    spec: GridSpec, out: Path, progress: bool, echo: Echo | None, loader: Loader | None, jobs: int
) -> GridSummary:
    """:func:`_run_share` in this process and ``jobs - 1`` workers; the counts read from the store."""
    before = {record_key(r) for r in read_records(out)}
    threads = threads_per_job(jobs)
    with worker_pool(jobs - 1, threads) as pool:
        helpers = [pool.submit(_run_share, spec, out, False, None, loader) for _ in range(jobs - 1)]
        with torch_threads(threads):
            summary, planned = _run_share(spec, out, progress, echo, loader)
        for helper in helpers:
            helper.result()  # a worker's error is raised here
    after = {record_key(r) for r in read_records(out)}
    summary.new_records = len(planned & (after - before))
    summary.skipped_records = len(planned & before)
    summary.claimed_elsewhere = len(planned - after)  # left to processes other than these
    return summary


def _run_share(
    spec: GridSpec, out: Path, progress: bool, echo: Echo | None, loader: Loader | None
) -> tuple[GridSummary, set[RecordKey]]:
    """Run the units of the grid that no other process has claimed; the summary and every planned key."""
    from flowmix.progress import Progress

    say = echo or (lambda msg: logger.info("%s", msg))
    summary = GridSummary(out_dir=out)
    runs = spec.n_runs
    done = {record_key(r) for r in read_records(out)}
    planned: set[RecordKey] = set()
    available = None
    plan: list[tuple[DatasetConfig, list[tuple[str, dict[str, Any], str, list[int]]]]] = []
    for name in spec.datasets:
        ds = get_dataset_config(name)
        if not ds.is_toy and loader is None and not spec.explicit:
            if available is None:
                available = _available_images(spec.data_dir)
            if not available.get(ds.name, {}).get("available", False):
                reason = "data files not found in --data-dir, $FLOWMIX_DATA or the cache"
                summary.skipped_datasets.append((ds.name, reason))
                say(f"skipping {ds.name}: {reason}")
                continue
        units = []
        for method in spec.methods:
            config = unit_config(ds, method, spec)
            digest = config_hash(config)
            planned.update((ds.name, method, r, digest) for r in range(runs))
            todo = [r for r in range(runs) if (ds.name, method, r, digest) not in done]
            if method == "flows" and todo:
                todo = list(range(runs))  # the restarts of one batched fit: all or nothing
            if len(todo) < runs:
                logger.info(
                    "%s/%s: %d of %d run(s) of config %s already recorded; skipped",
                    ds.name,
                    method,
                    runs - len(todo),
                    runs,
                    digest,
                )
            summary.skipped_records += runs - len(todo)
            units.append((method, config, digest, todo))
        plan.append((ds, units))

    if summary.skipped_datasets:
        say(
            "to run the skipped data sets, pass --data-dir DIR (holding mnist/, fashion-mnist/, cifar-10/) or "
            "set FLOWMIX_DATA, or name them with --datasets to download them"
        )
    if summary.skipped_records:
        say(f"resuming: {summary.skipped_records} record(s) already in {out / RECORDS_FILE} are skipped")
    total = sum(len(todo) for _, units in plan for *_, todo in units)
    if total:
        out.mkdir(parents=True, exist_ok=True)
    machine = machine_info(spec.device)
    bar = Progress(total, "runs", unit="run", verbose=progress and total > 0, dynamic_ncols=True)
    try:
        for ds, units in plan:
            if not any(todo for *_, todo in units):
                continue
            X = y = None
            for method, config, digest, todo in units:
                if not todo:
                    continue
                # A batched flows fit is one unit of work; each baseline run is one.
                pieces = [("all", todo)] if method == "flows" else [(run, [run]) for run in todo]
                for tag, piece in pieces:
                    unit = unit_name(ds.name, method, digest, tag)
                    claim = try_claim(out, unit)
                    if claim is None:
                        owner = claim_owner(out, unit) or {}
                        say(
                            f"{ds.name}/{method} run {tag}: being run by another process "
                            f"(pid {owner.get('pid', '?')} on {owner.get('host', '?')}); left to it"
                        )
                        summary.claimed_elsewhere += len(piece)
                        bar.update(len(piece))
                        continue
                    with claim:
                        # Whoever held the claim before may have finished the unit since the plan.
                        present = {record_key(r) for r in read_records(out)}
                        if all((ds.name, method, r, digest) in present for r in piece):
                            summary.skipped_records += len(piece)
                            bar.update(len(piece))
                            continue
                        if X is None:
                            bar.set_postfix_str(f"{ds.name}: loading")
                            X, y = _load_arrays(ds, spec, loader)
                        bar.set_postfix_str(f"{ds.name}/{method}")
                        added = _run_unit(
                            ds, method, config, digest, piece, X, y, spec, out, machine, progress
                        )
                        summary.new_records += added
                        bar.update(added)
            del X, y
    finally:
        bar.close()
    return summary, planned


def _load_arrays(ds: DatasetConfig, spec: GridSpec, loader: Loader | None) -> tuple[np.ndarray, np.ndarray]:
    """The data set's points and labels, image sets subsampled as the grid asks."""
    data = _load(ds, spec, loader)
    X = np.asarray(data.X)
    y = np.asarray(data.y)
    if not ds.is_toy:
        X, y = _subsample(X, y, spec.image_max_samples())
    return X, y


def _run_unit(
    ds: DatasetConfig,
    method: str,
    config: dict[str, Any],
    digest: str,
    todo: list[int],
    X: np.ndarray,
    y: np.ndarray,
    spec: GridSpec,
    out: Path,
    machine: dict[str, Any],
    progress: bool,
) -> int:
    """Run one claimed unit of work (the runs ``todo`` of ``method`` on ``ds``); records written."""
    runs = spec.n_runs
    new_records = 0
    common = {
        "schema": SCHEMA_VERSION,
        "dataset": ds.name,
        "method": method,
        "config_hash": digest,
        "config": config,
        "quick": bool(spec.quick),
        "runs_planned": runs,
        "k": ds.k,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "objective_name": OBJECTIVE_NAMES[method],
        "flowmix_version": machine["flowmix"],
        "machine": machine,
    }
    if method == "flows":
        records = _run_flows(ds, X, y, config, spec, out, common, progress)
        append_records(out, records)
        new_records += len(records)
        shutil.rmtree(_checkpoint_dir(out, ds, digest), ignore_errors=True)  # its records are safe now
    else:
        for run in todo:
            if method == "recipe":
                record = _run_recipe(X, y, ds.k, run, config, common, spec.device)
            else:
                device = spec.device if config.get("implementation") == "torch" else None
                record = _run_baseline(method, X, y, ds.k, run, config, common, device)
            append_records(out, [record])
            new_records += 1
    return new_records


def _checkpoint_dir(out: Path, ds: DatasetConfig, digest: str) -> Path:
    """Where the flows fit of ``ds`` under configuration ``digest`` keeps its checkpoint."""
    return out / "checkpoints" / f"{ds.name}-{digest}"


def check_device(device: str) -> None:
    """Raise ValueError unless ``device`` is a usable torch device (the estimator's own check)."""
    from flowmix.validation import resolve_device

    resolve_device(device)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _label_summary(y: np.ndarray, labels: np.ndarray, k: int) -> dict[str, Any]:
    from flowmix.metrics import clustering_scores, contingency_table

    table = contingency_table(y, labels, n_clusters=k, normalize=False)
    return {
        "metrics": clustering_scores(y, labels),
        "cluster_sizes": np.bincount(labels, minlength=k).tolist(),
        "contingency": {"rows": [jsonable(v) for v in table.row_labels], "counts": table.counts.tolist()},
    }


def _device_fields(device: str) -> dict[str, str]:
    """The record's ``device`` and ``device_name`` (the GPU's or the CPU's name)."""
    import torch

    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        return {"device": str(device), "device_name": torch.cuda.get_device_name(torch_device)}
    return {"device": str(device), "device_name": _cpu_name()}


def _run_recipe(
    X: np.ndarray, y: np.ndarray, k: int, run: int, config: dict[str, Any], common: dict, device: str
) -> dict[str, Any]:
    """One run of flowmix's default recipe: ``FlowMixture(k, random_state=run)``, scored by its own selection."""
    from flowmix import FlowMixture
    from flowmix.persistence import params_from_json

    params = params_from_json(config["params"])
    model = FlowMixture(k, random_state=run, device=device, **params)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    seconds = time.perf_counter() - started
    score = float(model.selection_scores_[model.best_restart_])
    return {
        **common,
        "run": run,
        "seed": run,
        "objective": score if math.isfinite(score) else None,
        "diverged": False,
        **_label_summary(y, np.asarray(model.labels_, dtype=np.int64), k),
        "seconds": seconds,
        "fit_seconds": seconds,
        **_device_fields(device),
        "empty_components": len(model.empty_components_),
        "bases": model.covariance_type_,
        "recipe": _recipe_summary(model),
        "warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
        "finished_at": _now(),
    }


def _recipe_summary(model: Any) -> str:
    """The recipe's decision in a few words (which start it kept), or its name."""
    trace = model.recipe_trace_
    return trace["decision"]["kept"] if "decision" in trace else model.recipe_.name


def _run_baseline(
    method: str,
    X: np.ndarray,
    y: np.ndarray,
    k: int,
    run: int,
    config: dict[str, Any],
    common: dict,
    device: str | None = None,
) -> dict[str, Any]:
    """One baseline run; ``device`` None is scikit-learn on the CPU, else torch on that device."""
    from flowmix.paper.baselines import run_baseline

    kwargs: dict[str, Any] = {"n_init": config["n_init"]} if "n_init" in config else {}
    if device is not None:
        kwargs["device"] = device
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_baseline(method, X, k, run, **kwargs)
    seconds = time.perf_counter() - started
    labels = np.asarray(result.labels, dtype=np.int64)
    record = {
        **common,
        "run": run,
        "seed": run,
        "objective": result.objective,
        "diverged": False,
        **_label_summary(y, labels, k),
        "seconds": seconds,
        **_device_fields(device or "cpu"),
        "warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
        "finished_at": _now(),
    }
    return record


@reuse_freed_memory()
def _restart_labels(density: Any, data: Any) -> tuple[np.ndarray, float]:
    """Cluster of every point under every restart: (R, N), evaluated per restart in float64.

    float64 evaluation (:func:`flowmix.training.restart_labels`), as the paper presets' models
    predict (``inference_dtype="float64"``), so that the best restart's labels equal the fitted
    model's; chunks bound memory whatever N is.
    """

    from flowmix.training import restart_labels

    started = time.perf_counter()
    columns = data.double().T
    # One restart at a time: a float64 copy of all of them would double the model's memory.
    out = np.stack(
        [restart_labels(density.take_restart(r).double(), columns)[0] for r in range(density.n_restarts)]
    )
    return out, time.perf_counter() - started


def _batch_mean_final(model: Any, restart: int) -> float:
    """The last epoch's unweighted mean of the batch losses of one restart (as ``objective``, its last epoch)."""
    return float(model.batch_mean_losses_[restart, -1])


def _run_flows(
    ds: DatasetConfig,
    X: np.ndarray,
    y: np.ndarray,
    config: dict[str, Any],
    spec: GridSpec,
    out: Path,
    common: dict[str, Any],
    progress: bool,
) -> list[dict[str, Any]]:
    import torch

    from flowmix import FlowMixture
    from flowmix.options import Checkpointing
    from flowmix.persistence import params_from_json

    params = params_from_json(config["params"])
    n_epochs = int(params["n_epochs"])
    runs = int(config["runs"])
    if not ds.is_toy and spec.checkpoint_seconds is not None:
        # Toy fits take seconds and record density snapshots of every epoch: not worth resuming.
        folder = _checkpoint_dir(out, ds, common["config_hash"])
        params["checkpoint"] = Checkpointing(folder, every_epochs=None, every_seconds=spec.checkpoint_seconds)
    # Labels in float64, as flowmix 0.1.0 and _restart_labels compute them (not a config: no hash).
    model = FlowMixture(
        ds.k,
        **params,
        device=spec.device,
        random_state=config["random_state"],
        verbose=progress,
        inference_dtype="float64",
    )
    device = torch.device(spec.device)
    data_t = torch.as_tensor(X, dtype=torch.float32, device=device)
    every = spec.n_snapshot_every if ds.is_toy else n_epochs
    grid = None
    if ds.is_toy:
        from flowmix.paper.figures import grid_2d

        xx, yy, pts = grid_2d(X, n=spec.grid_size)
        grid = torch.as_tensor(pts, dtype=torch.float32, device=device)
    snapshots: list[tuple[int, np.ndarray]] = []
    state: dict[str, Any] = {"labels": None, "eval_seconds": 0.0}

    def callback(epoch: int, density: Any) -> None:
        with torch.no_grad():
            if grid is not None:
                snapshots.append((epoch, density.log_prob(grid).float().cpu().numpy()))
            if epoch == n_epochs:
                state["labels"], state["eval_seconds"] = _restart_labels(density, data_t)

    started = time.perf_counter()
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(X, callback=callback, callback_every=every)
        except ValueError as err:
            if "diverged" not in str(err):
                raise
            error = str(err)
    fit_seconds = time.perf_counter() - started
    warns = sorted({str(w.message).splitlines()[0] for w in caught})
    base = {
        **common,
        "seed": config["random_state"],
        **_device_fields(spec.device),
        "fit_seconds": fit_seconds,
        "seconds": fit_seconds / runs,
        "label_eval_seconds": state["eval_seconds"],
        "batched": True,
        "warnings": warns,
        "finished_at": _now(),
    }
    if error is not None:  # every restart diverged
        fields = {"objective": None, "diverged": True, "error": error, "metrics": None}
        return [{**base, "run": r, "restart": r, **fields} for r in range(runs)]

    records = _restart_records(ds, model, y, state["labels"], base, runs)
    best = int(model.best_restart_)
    if spec.save_models if spec.save_models is not None else ds.is_toy:
        model.save(out / "models" / ds.name)
        experiment = {
            "dataset": ds.name,
            "config_hash": common["config_hash"],
            "best_restart": best,
            "config": config,
        }
        _write_json(out / "models" / ds.name / "experiment.json", experiment)
    if ds.is_toy and snapshots:
        losses = np.asarray(model.losses_, dtype=np.float64)
        _toy_artifacts(ds, X, xx, yy, snapshots, losses, best, out, common["config_hash"])
    return records


def _restart_records(
    ds: DatasetConfig,
    model: Any,
    y: np.ndarray,
    all_labels: np.ndarray | None,
    base: dict[str, Any],
    runs: int,
) -> list[dict[str, Any]]:
    """One record per restart of a fitted preset: its final objective and, where known, its labels' scores."""
    losses = np.asarray(model.losses_, dtype=np.float64)
    best = int(model.best_restart_)
    records = []
    for r in range(runs):
        final = losses[r, -1]
        diverged = not math.isfinite(final)
        if r == best:
            labels = np.asarray(model.labels_, dtype=np.int64)
            source = "fitted model (best restart), float64"
            if all_labels is not None and not np.array_equal(all_labels[r], labels):
                logger.warning("%s: last-epoch labels of the best restart differ from the model's", ds.name)
        else:
            labels = None if all_labels is None else all_labels[r]
            source = "restart evaluated at the last epoch (callback), float64"
        record = {
            **base,
            "run": r,
            "restart": r,
            "is_best_restart": r == best,
            "objective": None if diverged else float(final),
            # The reference code's epoch loss (batches weighted equally), for benchmarks/fidelity_draws.py.
            "objective_batch_mean": None if diverged else _batch_mean_final(model, r),
            "diverged": diverged,
            "n_epochs_run": int(model.n_iter_),
            "labels_source": source,
        }
        if labels is not None and not diverged:
            record.update(_label_summary(y, labels, ds.k))
        else:
            record["metrics"] = None
        records.append(record)
    return records


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=True))


def _toy_artifacts(
    ds: DatasetConfig,
    X: np.ndarray,
    xx: np.ndarray,
    yy: np.ndarray,
    snapshots: list[tuple[int, np.ndarray]],
    losses: np.ndarray,
    best: int,
    out: Path,
    digest: str,
) -> None:
    """GIF of the best run's density, Figure 2-style panel of the other runs, and the arrays."""
    from flowmix.paper.figures import density_animation, density_panels

    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shape = xx.shape
    frames = [(epoch, snap[best].reshape(shape)) for epoch, snap in snapshots]
    if all(np.isfinite(f).any() for _, f in frames):
        density_animation(frames, xx, yy, figures / f"{ds.name}_density.gif", fps=10, X=X, title=ds.label)
    final = snapshots[-1][1].reshape(-1, *shape)
    final_loss = losses[:, -1]
    others = [r for r in np.argsort(np.where(np.isfinite(final_loss), final_loss, np.inf)) if r != best]
    panels = [
        (f"run {r}: loss {final_loss[r]:.4f}", xx, yy, final[r])
        for r in others
        if np.isfinite(final[r]).any() and np.isfinite(final_loss[r])
    ]
    if panels:
        density_panels(
            panels,
            [figures / f"{ds.name}_other_runs.png", figures / f"{ds.name}_other_runs.pdf"],
            ncols=min(5, len(panels)),
        )
    atomic_write(
        out / "arrays" / f"{ds.name}_flows.npz",
        lambda tmp: np.savez_compressed(
            tmp,
            xx=xx,
            yy=yy,
            final_log_density=final.astype(np.float32),
            snapshot_epochs=np.array([e for e, _ in snapshots]),
            losses=losses,
            best_restart=np.array(best),
            config_hash=np.array(digest),
        ),
    )


# ------------------------------------------------------------------------------------------------
# Figure 1


def make_figure1(
    out_dir: str | os.PathLike[str],
    datasets: Sequence[str] | None = None,
    *,
    grid_size: int = 200,
    loader: Loader | None = None,
) -> list[Path]:
    """Figure 1 of the paper from the best models saved under ``<out_dir>/models``.

    One row per toy set that has a saved model (in the paper's order), four columns: the data,
    the best run's clusters, the decision regions with the true labels, the density.

    Returns
    -------
    list of Path
        The PNG and PDF written, or nothing when no toy model is saved.
    """
    from flowmix import FlowMixture
    from flowmix.paper.figures import ToyPanel, grid_2d, toy_figure

    out = Path(out_dir)
    names = [d.name for d in TOY_DATASETS if datasets is None or d.name in datasets]
    rows = []
    for name in names:
        model_dir = out / "models" / name
        if not (model_dir / "config.json").is_file():
            continue
        ds = get_dataset_config(name)
        if loader is not None:
            data = loader(name)
        else:
            from flowmix.paper.data import load_dataset

            data = load_dataset(name)
        X, y = np.asarray(data.X), np.asarray(data.y)
        model = FlowMixture.load(model_dir, device="cpu")
        xx, yy, pts = grid_2d(X, n=grid_size)
        rows.append(
            ToyPanel(
                name=ds.label,
                X=X,
                y_true=y,
                y_pred=model.predict(X),
                grid=(xx, yy),
                grid_labels=model.predict(pts).reshape(xx.shape),
                grid_log_density=model.score_samples(pts).reshape(xx.shape),
                n_clusters=ds.k,
            )
        )
    if not rows:
        return []
    paths = [out / "figures" / f"{FIGURE1_STEM}.png", out / "figures" / f"{FIGURE1_STEM}.pdf"]
    toy_figure(rows, paths)
    return paths
