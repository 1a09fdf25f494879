"""Tables and a report from an experiment directory (``records.jsonl`` plus figures).

:func:`write_report` writes, into the directory:

- ``report.md``: Markdown, figures linked by relative path;
- ``report.html``: one self-contained page (figures and GIFs embedded as base64 data URIs, inline
  CSS, no scripts, no external assets), readable without flowmix;
- ``table1.csv``: Table 1 in long form, our value beside the paper's and the difference, and
  ``table1.md``, the same as Markdown tables (one per metric);
- ``toy_table.csv``: the best run per toy set and method;
- ``figures/contingency_<data set>.png/.pdf``: heatmaps of the normalised contingency tables.

Which records are reported: for each (data set, method) the configuration (hash) of the most
recently written record, so that re-running a directory with other settings reports the new
ones; within it the best run by the paper's rule (:func:`flowmix.experiments.runner.select_best`).

>>> write_report("results/toy")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from flowmix._io import atomic_write_text
from flowmix.experiments.configs import (
    DATASETS,
    METHOD_LABELS,
    METHODS,
    METRIC_LABELS,
    METRICS,
    PAPER_CONTINGENCY,
    PAPER_TABLE1,
    PAPER_TABLE1_PRINTED,
    TABLE1_DATASETS,
    TABLE1_METHOD_ORDER,
    TOY_DATASETS,
)
from flowmix.experiments.runner import FIGURE1_STEM, RECORDS_FILE, read_records, select_best

__all__ = ["ReportFiles", "current_groups", "table1_rows", "toy_rows", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    html: Path
    table1_csv: Path | None
    table1_md: Path | None
    toy_csv: Path | None
    figures: tuple[Path, ...]


# ------------------------------------------------------------------------------------------------
# Selecting and tabulating records


def current_groups(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
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


def _metric(record: dict[str, Any] | None, metric: str) -> float | None:
    if record is None or not record.get("metrics"):
        return None
    value = record["metrics"].get(metric)
    return None if value is None else float(value)


def table1_rows(groups: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Table 1 in long form: one row per (data set, metric, method) with ours, the paper's and the difference.

    Only data sets of Table 1 with at least one record appear; methods without records have
    ``ours`` None.
    """
    rows = []
    for ds in TABLE1_DATASETS:
        if not any((ds.name, m) in groups for m in METHODS):
            continue
        for metric in METRICS:
            for method in TABLE1_METHOD_ORDER:
                group = groups.get((ds.name, method), [])
                best = select_best(group)
                ours = _metric(best, metric)
                paper = PAPER_TABLE1.get((ds.name, method), {}).get(metric)
                values = [v for v in (_metric(r, metric) for r in group) if v is not None]
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


def toy_rows(groups: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
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
                row[metric] = _metric(best, metric)
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# A tiny document model rendered both to Markdown and to HTML


@dataclass
class _Block:
    kind: str  # "h1", "h2", "h3", "p", "note", "table", "image", "pair", "box", "details"
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    path: Path | None = None
    children: Sequence[_Block] = ()
    bold: frozenset[tuple[int, int]] = frozenset()


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _render_md(blocks: Sequence[_Block], root: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "note":
            out.append("> **" + b.text + "**")
        elif b.kind == "table":
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            for i, row in enumerate(b.rows):
                cells = [f"**{_md_cell(c)}**" if (i, j) in b.bold else _md_cell(c) for j, c in enumerate(row)]
                out.append("| " + " | ".join(cells) + " |")
        elif b.kind == "image" and b.path is not None:
            rel = os.path.relpath(b.path, root).replace(os.sep, "/")
            out.append(f"![{b.text}]({rel})")
            if b.text:
                out.append(f"*{b.text}*")
        elif b.kind in ("pair", "details", "box"):
            if b.kind in ("details", "box") and b.text:
                out.append(f"**{b.text}**\n")
            out.append(_render_md(b.children, root).rstrip("\n"))
        out.append("")
    return "\n".join(out) + "\n"


_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ccc;padding-bottom:.2em}h2{border-bottom:1px solid #ddd;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafafa}
.note{background:#fff3cd;border:1px solid #e0c36b;padding:.6em 1em;font-weight:bold}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555}
.pair{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
"""


def _render_html(blocks: Sequence[_Block], title: str) -> str:
    body = _html_blocks(blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def _html_blocks(blocks: Sequence[_Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "note":
            out.append(f'<p class="note">{html.escape(b.text)}</p>')
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.header)
            body_rows = []
            for i, row in enumerate(b.rows):
                cells = []
                for j, c in enumerate(row):
                    text = html.escape(str(c))
                    cells.append(f"<td><b>{text}</b></td>" if (i, j) in b.bold else f"<td>{text}</td>")
                body_rows.append("<tr>" + "".join(cells) + "</tr>")
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>")
        elif b.kind == "image" and b.path is not None:
            mime = _MIME.get(b.path.suffix.lower(), "application/octet-stream")
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            caption = f"<figcaption>{html.escape(b.text)}</figcaption>" if b.text else ""
            out.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:{mime};base64,{data}">{caption}</figure>'
            )
        elif b.kind == "pair":
            inner = "".join(f"<div>{_html_blocks([c])}</div>" for c in b.children)
            out.append(f'<div class="pair">{inner}</div>')
        elif b.kind == "box":
            out.append(f"<p><b>{html.escape(b.text)}</b></p>{_html_blocks(b.children)}")
        elif b.kind == "details":
            out.append(
                f"<details><summary>{html.escape(b.text)}</summary>{_html_blocks(b.children)}</details>"
            )
        out.append("\n")
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# Sections


def _bold_max(rows: list[list[str]], columns: Sequence[int]) -> frozenset[tuple[int, int]]:
    bold = set()
    for i, row in enumerate(rows):
        values = []
        for j in columns:
            try:
                values.append((float(row[j]), j))
            except ValueError:
                continue
        if values:
            top = max(v for v, _ in values)
            bold.update((i, j) for v, j in values if v == top)
    return frozenset(bold)


def _metadata_section(records: list[dict[str, Any]], groups: dict, quick: bool) -> list[_Block]:
    blocks = [_Block("h2", "Run metadata")]
    used = [r for g in groups.values() for r in g]
    machines: dict[str, dict[str, Any]] = {}
    for r in used:
        m = r.get("machine") or {}
        machines[repr(sorted(m.items()))] = m
    stamps = sorted(str(r.get("finished_at", "")) for r in used if r.get("finished_at"))
    rows = [
        ["records reported / in file", f"{len(used)} / {len(records)}"],
        ["quick (smoke-run settings)", "yes: NOT the paper's protocol" if quick else "no (paper protocol)"],
        ["first / last record", f"{stamps[0]} / {stamps[-1]}" if stamps else "–"],
        ["flowmix versions", ", ".join(sorted({str(r.get("flowmix_version")) for r in used}))],
    ]
    blocks.append(_Block("table", header=("", ""), rows=rows))
    if machines:
        keys = [
            "platform",
            "python",
            "cpu_count",
            "torch",
            "torch_threads",
            "numpy",
            "sklearn",
            "device",
            "device_name",
        ]
        mrows = [[k] + [str(m.get(k, "–")) for m in machines.values()] for k in keys]
        header = ["machine"] + [f"#{i + 1}" for i in range(len(machines))]
        blocks.append(_Block("p", "Machine(s) that produced the reported records:"))
        blocks.append(_Block("table", header=header, rows=mrows))
    trows = []
    total = 0.0
    for (dataset, method), group in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        seconds = sum(float(r.get("seconds") or 0.0) for r in group)
        total += seconds
        devices = sorted({f"{r.get('device')} ({r.get('device_name')})" for r in group})
        config = group[0].get("config", {})
        epochs = (config.get("params") or {}).get("n_epochs", "–")
        trows.append(
            [
                dataset,
                METHOD_LABELS.get(method, method),
                str(len(group)),
                str(group[0]["n_samples"]),
                str(epochs),
                _seconds(seconds),
                ", ".join(devices),
                group[0]["config_hash"],
            ]
        )
    if trows:
        trows.append(["total", "", "", "", "", _seconds(total), "", ""])
        blocks.append(
            _Block(
                "p", "Wall time per data set and method (a batched fit of the mixture of flows counts once):"
            )
        )
        blocks.append(
            _Block(
                "table",
                header=("data set", "method", "runs", "points", "epochs", "wall time", "device", "config"),
                rows=trows,
            )
        )
    return blocks


def _order(key: tuple[str, str]) -> tuple[int, int]:
    names = list(DATASETS)
    dataset, method = key
    return (names.index(dataset) if dataset in names else len(names), METHODS.index(method))


def _toy_section(out: Path, groups: dict) -> tuple[list[_Block], list[dict[str, Any]]]:
    rows = toy_rows(groups)
    if not rows:
        return [], rows
    blocks = [
        _Block("h2", "Toy 2-D sets (Figures 1-2)"),
        _Block(
            "p",
            "Best run of each method by its training objective (the mixture of flows: lowest final "
            "training loss). The paper reports these sets with figures only.",
        ),
    ]
    table = [
        [
            r["dataset"],
            METHOD_LABELS[r["method"]],
            str(r["k"]),
            str(r["n_samples"]),
            str(r["runs"]),
            _fmt(r["best_run"]),
            _fmt(r["objective"]),
        ]
        + [_fmt(r[m]) for m in METRICS]
        for r in rows
    ]
    blocks.append(
        _Block(
            "table",
            header=["data set", "method", "k", "points", "runs", "best run", "objective"]
            + [METRIC_LABELS[m] for m in METRICS],
            rows=table,
        )
    )
    figures = out / "figures"
    fig1 = figures / f"{FIGURE1_STEM}.png"
    if fig1.is_file():
        blocks.append(
            _Block(
                "image",
                "Figure 1: data; clusters of the best of the runs; decision regions with the true labels; "
                "density of the mixture (dark low, light high).",
                path=fig1,
            )
        )
    for ds in TOY_DATASETS:
        gif = figures / f"{ds.name}_density.gif"
        other = figures / f"{ds.name}_other_runs.png"
        children = []
        if gif.is_file():
            children.append(_Block("image", f"{ds.label}: density of the best run during training", path=gif))
        if other.is_file():
            children.append(
                _Block("image", f"{ds.label}: final densities of the other runs (Figure 2 style)", path=other)
            )
        if children:
            blocks.append(_Block("h3", ds.label))
            blocks.append(_Block("pair", children=children))
    return blocks, rows


def _table1_section(groups: dict) -> tuple[list[_Block], list[dict[str, Any]]]:
    rows = table1_rows(groups)
    if not rows:
        return [], rows
    blocks = [
        _Block("h2", "Table 1: clustering of the image sets"),
        _Block(
            "p",
            "For each data set and method: our best of the runs (by training objective; random labels: "
            "the first run), the paper's published value, and the difference (ours - paper). "
            "Bold: the best of our four methods in the row.",
        ),
    ]
    index = {(r["dataset"], r["metric"], r["method"]): r for r in rows}
    datasets = [d for d in TABLE1_DATASETS if any(r["dataset"] == d.name for r in rows)]
    header = ["data set"]
    for method in TABLE1_METHOD_ORDER:
        label = METHOD_LABELS[method]
        header += [f"{label}: ours", f"{label}: paper", f"{label}: Δ"]
    for metric in METRICS:
        table = []
        for ds in datasets:
            line = [ds.label]
            for method in TABLE1_METHOD_ORDER:
                r = index[(ds.name, metric, method)]
                line += [_fmt(r["ours"]), r["paper_printed"] or _fmt(r["paper"]), _signed(r["diff"])]
            table.append(line)
        ours_cols = [1 + 3 * i for i in range(len(TABLE1_METHOD_ORDER))]
        blocks.append(_Block("h3", f"{METRIC_LABELS[metric]} ↑"))
        blocks.append(_Block("table", header=header, rows=table, bold=_bold_max(table, ours_cols)))
    spread = []
    for ds in datasets:
        for method in TABLE1_METHOD_ORDER:
            first = index[(ds.name, "purity", method)]
            if not first["runs"]:
                continue
            line = [ds.label, METHOD_LABELS[method], str(first["runs"]), _fmt(first["best_run"])]
            for metric in METRICS:
                r = index[(ds.name, metric, method)]
                line.append(f"{_fmt(r['mean_over_runs'])} ± {_fmt(r['std_over_runs'])}")
            spread.append(line)
    blocks.append(
        _Block(
            "details",
            "Spread over the runs (mean ± standard deviation of every run, not only the best)",
            children=[
                _Block(
                    "table",
                    header=["data set", "method", "runs", "best run"] + [METRIC_LABELS[m] for m in METRICS],
                    rows=spread,
                )
            ],
        )
    )
    return blocks, rows


def _contingency_section(out: Path, groups: dict) -> tuple[list[_Block], list[Path]]:
    from flowmix.viz.plots import contingency_heatmap

    blocks: list[_Block] = []
    written: list[Path] = []
    for name, (paper_label, paper_table, paper_printed) in PAPER_CONTINGENCY.items():
        best = select_best(groups.get((name, "flows"), []))
        if best is None or not best.get("contingency"):
            continue
        counts = np.asarray(best["contingency"]["counts"], dtype=np.float64)
        rows_labels = best["contingency"]["rows"]
        table = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        label = DATASETS[name].label
        row_names = [f"digit {v}" for v in rows_labels]
        col_names = [f"cluster {j}" for j in range(table.shape[1])]
        paths = [out / "figures" / f"contingency_{name}.png", out / "figures" / f"contingency_{name}.pdf"]
        contingency_heatmap(
            table,
            row_names,
            [str(j) for j in range(table.shape[1])],
            paths,
            title=f"{label}: best mixture-of-flows run (run {best['run']})",
        )
        written += paths
        ours_rows = [[r] + [f"{v:.4f}" for v in line] for r, line in zip(row_names, table, strict=False)]
        paper_rows = [[f"digit {i}", *cells] for i, cells in enumerate(paper_printed)]
        ours_bold = _bold_max(ours_rows, range(1, table.shape[1] + 1))
        paper_bold = _bold_max(paper_rows, range(1, paper_table.shape[1] + 1))
        sizes = ", ".join(str(s) for s in best.get("cluster_sizes", []))
        blocks += [
            _Block("h3", f"{label} ({paper_label})"),
            _Block(
                "p",
                f"Rows: true digits; columns: clusters; each row sums to 1. Ours: run {best['run']} of "
                f"{len(groups[(name, 'flows')])} (lowest final loss), cluster sizes {sizes}. Cluster indices "
                "are arbitrary, so columns match the paper's only up to a permutation.",
            ),
            _Block(
                "pair",
                children=[
                    _Block(
                        "box",
                        f"ours (run {best['run']})",
                        children=[
                            _Block("table", header=["true label", *col_names], rows=ours_rows, bold=ours_bold)
                        ],
                    ),
                    _Block(
                        "box",
                        f"paper, {paper_label}",
                        children=[
                            _Block(
                                "table", header=["true label", *col_names], rows=paper_rows, bold=paper_bold
                            )
                        ],
                    ),
                ],
            ),
            _Block("image", f"{label}: normalised contingency table of our best run", path=paths[0]),
        ]
    if blocks:
        blocks = [
            _Block("h2", "Tables 3-4: contingency tables of the best MNIST5 runs"),
            *blocks,
        ]
    return blocks, written


def _runs_section(groups: dict) -> list[_Block]:
    rows = []
    for (dataset, method), group in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        best = select_best(group)
        for r in group:
            rows.append(
                [
                    dataset,
                    METHOD_LABELS.get(method, method),
                    str(r["run"]),
                    "yes" if r is best else "",
                    _fmt(r.get("objective")),
                    "yes" if r.get("diverged") else "",
                ]
                + [_fmt(_metric(r, m)) for m in METRICS]
                + [_fmt(r.get("seconds"), 2)]
            )
    if not rows:
        return []
    return [
        _Block("h2", "All runs"),
        _Block(
            "details",
            "Every run of every reported configuration (flows: run r is restart r of one batched fit with a "
            "single seed; time is the fit's wall time divided by the number of restarts)",
            children=[
                _Block(
                    "table",
                    header=["data set", "method", "run", "reported", "objective", "diverged"]
                    + [METRIC_LABELS[m] for m in METRICS]
                    + ["seconds"],
                    rows=rows,
                )
            ],
        ),
    ]


# ------------------------------------------------------------------------------------------------
# Writing


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(round(value, 6))
    return value


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buf.getvalue()


def write_report(out_dir: str | os.PathLike[str]) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and the CSV tables of an experiment directory.

    Raises
    ------
    FileNotFoundError
        If the directory has no ``records.jsonl``.
    ValueError
        If it holds no complete record.
    """
    out = Path(out_dir)
    if not (out / RECORDS_FILE).is_file():
        raise FileNotFoundError(
            f"{out} has no {RECORDS_FILE}; run `flowmix reproduce toy|table1 --out {out}` first."
        )
    records = read_records(out)
    if not records:
        raise ValueError(f"{out / RECORDS_FILE} holds no complete record; nothing to report.")
    groups = current_groups(records)
    quick = any(r.get("quick") for g in groups.values() for r in g)

    title = "flowmix: reproduction of “Mixtures of Normalizing Flows”"
    blocks: list[_Block] = [_Block("h1", title)]
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if quick:
        blocks.append(
            _Block(
                "note",
                "QUICK SMOKE RUN: tiny settings (few runs and epochs, subsampled image sets, smaller networks). "
                "These numbers are not the paper's protocol and must not be compared with it.",
            )
        )
    blocks.append(
        _Block(
            "p",
            f"Generated {generated} from {out.resolve() / RECORDS_FILE}. Every method was run several times "
            "and the run with the lowest training objective is reported, as in the paper (flows: final "
            "training loss; k-means: inertia; EM/GMM: negative mean log-likelihood; random: the first run). "
            "Run i of a baseline uses seed i; the runs of the mixture of flows are the restarts of one fit "
            "with a single seed (each record holds that seed and its restart index).",
        )
    )
    toy_blocks, toy = _toy_section(out, groups)
    t1_blocks, t1 = _table1_section(groups)
    ct_blocks, ct_figs = _contingency_section(out, groups)
    blocks += t1_blocks + ct_blocks + toy_blocks
    blocks += _metadata_section(records, groups, quick)
    blocks += _runs_section(groups)

    table1_csv = table1_md = toy_csv = None
    if t1:
        table1_md = out / "table1.md"
        atomic_write_text(table1_md, _render_md(t1_blocks, out))
        table1_csv = out / "table1.csv"
        atomic_write_text(
            table1_csv,
            _csv_text(
                t1,
                [
                    "dataset",
                    "label",
                    "metric",
                    "method",
                    "ours",
                    "paper",
                    "diff",
                    "best_run",
                    "runs",
                    "mean_over_runs",
                    "std_over_runs",
                    "n_samples",
                    "quick",
                    "config_hash",
                ],
            ),
        )
    if toy:
        toy_csv = out / "toy_table.csv"
        atomic_write_text(
            toy_csv,
            _csv_text(
                toy,
                ["dataset", "method", "k", "n_samples", "runs", "best_run", "objective", *METRICS, "quick"],
            ),
        )
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, _render_md(blocks, out))
    atomic_write_text(html_path, _render_html(blocks, title))
    return ReportFiles(md_path, html_path, table1_csv, table1_md, toy_csv, tuple(ct_figs))
