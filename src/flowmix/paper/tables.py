"""What a report shows, as data: the reported records and the tables built from them.

Nothing here formats or writes anything; :mod:`flowmix.paper.report` renders these rows to
Markdown, HTML and CSV.

Which records are reported: for each (data set, method) the configuration (hash) of the most
recently written record (:func:`current_groups`), so that re-running a directory with other
settings reports the new ones; within it the best run by the paper's rule
(:func:`flowmix.paper.records.select_best`).

>>> groups = current_groups([
...     {"dataset": "moons", "method": "kmeans", "run": 0, "config_hash": "old", "finished_at": "2024-01-01"},
...     {"dataset": "moons", "method": "kmeans", "run": 0, "config_hash": "new", "finished_at": "2024-02-01"},
... ])
>>> [r["config_hash"] for r in groups[("moons", "kmeans")]]
['new']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowmix.paper.configs import (
    DATASETS,
    FEATURE_DATASETS,
    METHODS,
    METRICS,
    PAPER_CONTINGENCY,
    PAPER_TABLE1,
    PAPER_TABLE1_COLUMNS,
    PAPER_TABLE1_PRINTED,
    TABLE1_DATASETS,
    TABLE1_METHOD_ORDER,
    TOY_DATASETS,
)
from flowmix.paper.records import select_best

__all__ = [
    "Contingency",
    "Groups",
    "Metadata",
    "contingency_tables",
    "current_groups",
    "group_order",
    "is_quick",
    "metadata",
    "record_metric",
    "run_rows",
    "table1_rows",
    "timing_rows",
    "toy_rows",
]

#: ``(dataset, method) -> records`` of the reported configuration, sorted by run.
Groups = dict[tuple[str, str], list[dict[str, Any]]]


def current_groups(records: Sequence[dict[str, Any]]) -> Groups:
    """For each (data set, method): the records of its most recently written configuration.

    Returns
    -------
    dict
        ``(dataset, method) -> records`` sorted by run, for the configuration hash whose latest
        record is the newest; records of older configurations are ignored.
    """
    by_hash: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    latest: dict[tuple[str, str, str], tuple[str, int]] = {}
    for index, r in enumerate(records):
        key = (r["dataset"], r["method"], r["config_hash"])
        by_hash[key].append(r)
        # The file order breaks ties between records written in the same second.
        latest[key] = max(latest.get(key, ("", -1)), (str(r.get("finished_at", "")), index))
    chosen: dict[tuple[str, str], tuple[str, int]] = {}
    keep: dict[tuple[str, str], str] = {}
    for (dataset, method, digest), stamp in latest.items():
        if (dataset, method) not in chosen or stamp > chosen[(dataset, method)]:
            chosen[(dataset, method)] = stamp
            keep[(dataset, method)] = digest
    groups = {}
    for (dataset, method), digest in keep.items():
        runs: dict[int, dict[str, Any]] = {}
        for r in by_hash[(dataset, method, digest)]:
            runs[int(r["run"])] = r  # a duplicate run keeps the later record
        groups[(dataset, method)] = [runs[i] for i in sorted(runs)]
    return groups


def group_order(key: tuple[str, str]) -> tuple[int, int]:
    """Sort key of a ``(dataset, method)`` group: the grid's order of data sets, then of methods."""
    names = list(DATASETS)
    dataset, method = key
    return (names.index(dataset) if dataset in names else len(names), METHODS.index(method))


def _ordered(groups: Groups) -> list[tuple[tuple[str, str], list[dict[str, Any]]]]:
    return sorted(groups.items(), key=lambda kv: group_order(kv[0]))


def record_metric(record: dict[str, Any] | None, metric: str) -> float | None:
    """The value of ``metric`` in a record, or None (no record, no metrics, or that one missing)."""
    if record is None or not record.get("metrics"):
        return None
    value = record["metrics"].get(metric)
    return None if value is None else float(value)


# ------------------------------------------------------------------------------------------------
# Result tables


def table1_rows(groups: Groups) -> list[dict[str, Any]]:
    """Table 1 in long form: one row per (data set, metric, method) with ours, the paper's and the difference.

    Only data sets of Table 1 with at least one record appear; methods without records have
    ``ours`` None.
    """
    rows = []
    # flowmix's default is a column only where it ran: the paper's table keeps its four.
    methods = [
        m for m in TABLE1_METHOD_ORDER if m in PAPER_TABLE1_COLUMNS or any(key[1] == m for key in groups)
    ]
    for ds in TABLE1_DATASETS + FEATURE_DATASETS:
        if not any((ds.name, m) in groups for m in METHODS):
            continue
        for metric in METRICS:
            for method in methods:
                group = groups.get((ds.name, method), [])
                best = select_best(group)
                ours = record_metric(best, metric)
                paper = PAPER_TABLE1.get((ds.name, method), {}).get(metric)
                values = [v for v in (record_metric(r, metric) for r in group) if v is not None]
                rows.append(
                    {
                        "dataset": ds.name,
                        "label": ds.label,
                        "metric": metric,
                        "method": method,
                        "ours": ours,
                        "paper": paper,
                        "paper_printed": PAPER_TABLE1_PRINTED.get((ds.name, method, metric)),
                        "diff": None if ours is None or paper is None else ours - paper,
                        "best_run": None if best is None else int(best["run"]),
                        "runs": len(group),
                        "mean_over_runs": float(np.mean(values)) if values else None,
                        "std_over_runs": float(np.std(values)) if values else None,
                        "quick": bool(group and any(r.get("quick") for r in group)),
                        "n_samples": group[0]["n_samples"] if group else None,
                        "config_hash": group[0]["config_hash"] if group else None,
                    }
                )
    return rows


def toy_rows(groups: Groups) -> list[dict[str, Any]]:
    """The best run per toy set and method: objective and the four metrics."""
    rows = []
    for ds in TOY_DATASETS:
        for method in METHODS:
            group = groups.get((ds.name, method))
            if not group:
                continue
            best = select_best(group)
            row = {
                "dataset": ds.name,
                "method": method,
                "k": ds.k,
                "n_samples": group[0]["n_samples"],
                "runs": len(group),
                "best_run": None if best is None else int(best["run"]),
                "objective": None if best is None else best.get("objective"),
                "quick": any(r.get("quick") for r in group),
            }
            for metric in METRICS:
                row[metric] = record_metric(best, metric)
            rows.append(row)
    return rows


@dataclass(frozen=True)
class Contingency:
    """The contingency table of the best mixture-of-flows run on an MNIST5 set beside the paper's.

    Attributes
    ----------
    dataset, label : str
        Data-set name and display label.
    paper_label : str
        Which table of the paper (e.g. "Table 3").
    paper_table : ndarray, shape (K, K)
        The paper's normalised table; ``paper_printed`` holds its cells as printed.
    best : dict
        The reported record.
    runs : int
        Runs of the reported configuration.
    row_labels : list
        True label of each row.
    table : ndarray, shape (n_labels, K)
        Counts of the best run normalised per row (each row sums to 1).
    """

    dataset: str
    label: str
    paper_label: str
    paper_table: np.ndarray
    paper_printed: Sequence[Sequence[str]]
    best: dict[str, Any]
    runs: int
    row_labels: list[Any]
    table: np.ndarray


def contingency_tables(groups: Groups) -> list[Contingency]:
    """Tables 3-4: one entry per set of the paper's contingency tables whose best flows run has one."""
    out = []
    for name, (paper_label, paper_table, paper_printed) in PAPER_CONTINGENCY.items():
        group = groups.get((name, "flows"), [])
        best = select_best(group)
        if best is None or not best.get("contingency"):
            continue
        counts = np.asarray(best["contingency"]["counts"], dtype=np.float64)
        out.append(
            Contingency(
                dataset=name,
                label=DATASETS[name].label,
                paper_label=paper_label,
                paper_table=paper_table,
                paper_printed=paper_printed,
                best=best,
                runs=len(group),
                row_labels=list(best["contingency"]["rows"]),
                table=counts / np.maximum(counts.sum(axis=1, keepdims=True), 1),
            )
        )
    return out


def run_rows(groups: Groups) -> list[dict[str, Any]]:
    """Every run of every reported configuration, in the grid's order, flagged when it is the reported one."""
    rows = []
    for (dataset, method), group in _ordered(groups):
        best = select_best(group)
        for r in group:
            row = {
                "dataset": dataset,
                "method": method,
                "run": r["run"],
                "reported": r is best,
                "objective": r.get("objective"),
                "diverged": bool(r.get("diverged")),
                "seconds": r.get("seconds"),
            }
            for metric in METRICS:
                row[metric] = record_metric(r, metric)
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# Provenance


def timing_rows(groups: Groups) -> list[dict[str, Any]]:
    """Wall time per reported (data set, method), in the grid's order; a batched fit counts once."""
    rows = []
    for (dataset, method), group in _ordered(groups):
        config = group[0].get("config", {})
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "runs": len(group),
                "n_samples": group[0]["n_samples"],
                "epochs": (config.get("params") or {}).get("n_epochs"),
                "seconds": sum(float(r.get("seconds") or 0.0) for r in group),
                "devices": sorted({f"{r.get('device')} ({r.get('device_name')})" for r in group}),
                "config_hash": group[0]["config_hash"],
            }
        )
    return rows


@dataclass(frozen=True)
class Metadata:
    """Where the reported records come from.

    Attributes
    ----------
    n_reported, n_records : int
        Records reported, and all complete records of the file.
    quick : bool
        Any reported record used the smoke-run settings.
    first, last : str or None
        Earliest and latest ``finished_at`` of the reported records.
    flowmix_versions : list of str
    machines : list of dict
        The distinct machine descriptions of the reported records, in the order first seen.
    """

    n_reported: int
    n_records: int
    quick: bool
    first: str | None
    last: str | None
    flowmix_versions: list[str]
    machines: list[dict[str, Any]]


def is_quick(groups: Groups) -> bool:
    """Whether any reported record used the smoke-run settings."""
    return any(r.get("quick") for g in groups.values() for r in g)


def metadata(records: Sequence[dict[str, Any]], groups: Groups) -> Metadata:
    """Counts, dates, versions and machines of the reported records."""
    used = [r for g in groups.values() for r in g]
    machines: dict[str, dict[str, Any]] = {}
    for r in used:
        m = r.get("machine") or {}
        machines[repr(sorted(m.items()))] = m
    stamps = sorted(str(r.get("finished_at", "")) for r in used if r.get("finished_at"))
    return Metadata(
        n_reported=len(used),
        n_records=len(records),
        quick=is_quick(groups),
        first=stamps[0] if stamps else None,
        last=stamps[-1] if stamps else None,
        flowmix_versions=sorted({str(r.get("flowmix_version")) for r in used}),
        machines=list(machines.values()),
    )
