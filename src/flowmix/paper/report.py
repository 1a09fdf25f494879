"""Render the report of an experiment directory (``records.jsonl`` plus figures): Markdown, HTML, CSV.

:func:`write_report` writes, into the directory:

- ``report.md``: Markdown, figures linked by relative path;
- ``report.html``: one self-contained page (figures and GIFs embedded as base64 data URIs, inline
  CSS, no scripts, no external assets), readable without flowmix;
- ``table1.csv``: Table 1 in long form, our value beside the paper's and the difference, and
  ``table1.md``, the same as Markdown tables (one per metric);
- ``toy_table.csv``: the best run per toy set and method;
- ``figures/contingency_<data set>.png/.pdf``: heatmaps of the normalised contingency tables.

What is reported (the configuration of each data set and method, its best run, the rows of every
table) is chosen by :mod:`flowmix.paper.tables`; this module only formats those rows and
writes the files.

>>> write_report("results/toy")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowmix._io import atomic_write_text
from flowmix.paper.comparison import COMPARISON_FIGURE_STEM, read_comparison
from flowmix.paper.comparison import METHODS as COMPARISON_METHODS
from flowmix.paper.configs import (
    FEATURE_DATASETS,
    METHOD_LABELS,
    METRIC_LABELS,
    METRICS,
    TABLE1_DATASETS,
    TABLE1_METHOD_ORDER,
    TOY_DATASETS,
)
from flowmix.paper.records import RECORDS_FILE, read_records
from flowmix.paper.runner import FIGURE1_STEM
from flowmix.paper.tables import (
    Groups,
    Metadata,
    contingency_tables,
    current_groups,
    is_quick,
    metadata,
    run_rows,
    table1_rows,
    timing_rows,
    toy_rows,
)

__all__ = ["ReportFiles", "write_report"]


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


def _metadata_section(meta: Metadata, timings: list[dict[str, Any]]) -> list[_Block]:
    blocks = [_Block("h2", "Run metadata")]
    rows = [
        ["records reported / in file", f"{meta.n_reported} / {meta.n_records}"],
        [
            "quick (smoke-run settings)",
            "yes: NOT the paper's protocol" if meta.quick else "no (paper protocol)",
        ],
        ["first / last record", f"{meta.first} / {meta.last}" if meta.first is not None else "–"],
        ["flowmix versions", ", ".join(meta.flowmix_versions)],
    ]
    blocks.append(_Block("table", header=("", ""), rows=rows))
    if meta.machines:
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
        mrows = [[k] + [str(m.get(k, "–")) for m in meta.machines] for k in keys]
        header = ["machine"] + [f"#{i + 1}" for i in range(len(meta.machines))]
        blocks.append(_Block("p", "Machine(s) that produced the reported records:"))
        blocks.append(_Block("table", header=header, rows=mrows))
    trows = [
        [
            t["dataset"],
            METHOD_LABELS.get(t["method"], t["method"]),
            str(t["runs"]),
            str(t["n_samples"]),
            _fmt(t["epochs"]),
            _seconds(t["seconds"]),
            ", ".join(t["devices"]),
            t["config_hash"],
        ]
        for t in timings
    ]
    if trows:
        total = sum(t["seconds"] for t in timings)
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


def _toy_section(out: Path, rows: list[dict[str, Any]]) -> list[_Block]:
    if not rows:
        return []
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
    return blocks


def _comparison_section(out: Path, toy: list[dict[str, Any]]) -> list[_Block]:
    """flowmix's default beside the baselines (``comparison.json``), with the paper preset's best run."""
    comparison = read_comparison(out)
    if comparison is None:
        return []
    settings = comparison.get("settings", {})
    paper_ari = {r["dataset"]: r["ari"] for r in toy if r["method"] == "flows"}
    methods = [*COMPARISON_METHODS]
    header = ["data set", "paper preset", *methods, "flowmix fit s", "log-lik. flowmix / GMM"]
    rows = []
    for r in comparison["rows"]:
        rows.append(
            [r["dataset"], _fmt(paper_ari.get(r["dataset"]), 3)]
            + [_fmt(r[m]["ari"], 3) for m in methods]
            + [f"{r['flowmix']['seconds']:.1f}", f"{r['flowmix_log_likelihood']:.3f} / {r['gmm_log_likelihood']:.3f}"]
        )  # fmt: skip
    quick = (
        " QUICK SMOKE SETTINGS (20 epochs, 10 of pretraining): not the recipe's results."
        if settings.get("quick")
        else ""
    )
    blocks = [
        _Block("h2", "flowmix's default recipe beside k-means, a GMM and spectral clustering"),
        _Block(
            "p",
            f"ARI against the true labels, which no method sees. flowmix: FlowMixture(k, random_state="
            f"{settings.get('seed')}) (spline flows, starts from spectral clustering, a GMM and k-means, hard "
            "EM, selection by graph cut); k-means with 10 initialisations; a full-covariance GMM with 5; "
            "spectral clustering of the 10-nearest-neighbour graph; the paper preset's column is the best "
            "of its runs by loss, from the table above. Mean log-likelihood of the points under flowmix "
            f"and the GMM (spectral clustering has no density).{quick}",
        ),
        _Block("table", header=header, rows=rows, bold=_bold_max(rows, range(1, 2 + len(methods)))),
    ]
    figure = out / "figures" / f"{COMPARISON_FIGURE_STEM}.png"
    if figure.is_file():
        blocks.append(
            _Block(
                "image", "Clusters of each method, and flowmix's density (dark low, light high).", path=figure
            )
        )
    return blocks


def _table1_section(rows: list[dict[str, Any]]) -> list[_Block]:
    if not rows:
        return []
    blocks = [
        _Block("h2", "Table 1: clustering of the image sets"),
        _Block(
            "p",
            "For each data set and method: our best of the runs (by training objective; random labels: "
            "the first run), the paper's published value, and the difference (ours - paper). "
            "Bold: the best of our methods in the row. flowmix default: FlowMixture(k, random_state=run), "
            "each run kept by its own selection score; rows on learned features (UMAP, N2D) have no "
            "paper values.",
        ),
    ]
    index = {(r["dataset"], r["metric"], r["method"]): r for r in rows}
    methods = [m for m in TABLE1_METHOD_ORDER if any(r["method"] == m for r in rows)]
    datasets = [d for d in TABLE1_DATASETS + FEATURE_DATASETS if any(r["dataset"] == d.name for r in rows)]
    header = ["data set"]
    for method in methods:
        label = METHOD_LABELS[method]
        header += [f"{label}: ours", f"{label}: paper", f"{label}: Δ"]
    for metric in METRICS:
        table = []
        for ds in datasets:
            line = [ds.label]
            for method in methods:
                r = index[(ds.name, metric, method)]
                line += [_fmt(r["ours"]), r["paper_printed"] or _fmt(r["paper"]), _signed(r["diff"])]
            table.append(line)
        ours_cols = [1 + 3 * i for i in range(len(methods))]
        blocks.append(_Block("h3", f"{METRIC_LABELS[metric]} ↑"))
        blocks.append(_Block("table", header=header, rows=table, bold=_bold_max(table, ours_cols)))
    spread = []
    for ds in datasets:
        for method in methods:
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
    return blocks


def _contingency_section(out: Path, groups: Groups) -> tuple[list[_Block], list[Path]]:
    from flowmix.paper.figures import contingency_heatmap

    blocks: list[_Block] = []
    written: list[Path] = []
    for c in contingency_tables(groups):
        best, table, label = c.best, c.table, c.label
        row_names = [f"digit {v}" for v in c.row_labels]
        col_names = [f"cluster {j}" for j in range(table.shape[1])]
        paths = [
            out / "figures" / f"contingency_{c.dataset}.png",
            out / "figures" / f"contingency_{c.dataset}.pdf",
        ]
        contingency_heatmap(
            table,
            row_names,
            [str(j) for j in range(table.shape[1])],
            paths,
            title=f"{label}: best mixture-of-flows run (run {best['run']})",
        )
        written += paths
        ours_rows = [[r] + [f"{v:.4f}" for v in line] for r, line in zip(row_names, table, strict=False)]
        paper_rows = [[f"digit {i}", *cells] for i, cells in enumerate(c.paper_printed)]
        ours_bold = _bold_max(ours_rows, range(1, table.shape[1] + 1))
        paper_bold = _bold_max(paper_rows, range(1, c.paper_table.shape[1] + 1))
        sizes = ", ".join(str(s) for s in best.get("cluster_sizes", []))
        blocks += [
            _Block("h3", f"{label} ({c.paper_label})"),
            _Block(
                "p",
                f"Rows: true digits; columns: clusters; each row sums to 1. Ours: run {best['run']} of "
                f"{c.runs} (lowest final loss), cluster sizes {sizes}. Cluster indices "
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
                        f"paper, {c.paper_label}",
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


def _runs_section(runs: list[dict[str, Any]]) -> list[_Block]:
    rows = [
        [
            r["dataset"],
            METHOD_LABELS.get(r["method"], r["method"]),
            str(r["run"]),
            "yes" if r["reported"] else "",
            _fmt(r["objective"]),
            "yes" if r["diverged"] else "",
        ]
        + [_fmt(r[m]) for m in METRICS]
        + [_fmt(r["seconds"], 2)]
        for r in runs
    ]
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
    quick = is_quick(groups)
    toy, t1 = toy_rows(groups), table1_rows(groups)

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
    toy_blocks = _toy_section(out, toy)
    t1_blocks = _table1_section(t1)
    ct_blocks, ct_figs = _contingency_section(out, groups)
    blocks += t1_blocks + ct_blocks + toy_blocks + _comparison_section(out, toy)
    blocks += _metadata_section(metadata(records, groups), timing_rows(groups))
    blocks += _runs_section(run_rows(groups))

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
