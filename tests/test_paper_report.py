"""The report: Table 1 beside the paper, contingency tables, self-contained HTML, configuration choice."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowmix.paper.configs import PAPER_TABLE1
from flowmix.paper.records import RECORDS_FILE
from flowmix.paper.report import write_report
from flowmix.paper.tables import current_groups, table1_rows


def record(dataset, method, run, objective, metrics, *, digest="h1", quick=False, stamp="2024-01-01T00:00:00",
           contingency=None, k=5, n=100):  # fmt: skip
    return {
        "dataset": dataset,
        "method": method,
        "run": run,
        "config_hash": digest,
        "config": {"params": {"n_epochs": 3}} if method == "flows" else {},
        "objective": objective,
        "diverged": False,
        "metrics": metrics,
        "cluster_sizes": [n // k] * k,
        "contingency": contingency,
        "quick": quick,
        "k": k,
        "n_samples": n,
        "seconds": 1.5,
        "device": "cpu",
        "device_name": "x86_64",
        "flowmix_version": "0.1.0",
        "machine": {"platform": "TestOS", "cpu_count": 2, "torch": "2.x", "device": "cpu"},
        "finished_at": stamp,
    }


def scores(value):
    return {"purity": value, "ari": value / 2, "nmi": value / 3, "acc": value}


def write_records(folder: Path, records) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORDS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))


COUNTS = [[90, 0, 10, 0, 0], [0, 80, 0, 20, 0], [5, 5, 90, 0, 0], [0, 0, 0, 100, 0], [0, 50, 0, 0, 50]]


def mnist5_records(quick=False):
    recs = []
    for run, (obj, value) in enumerate([(3.0, 0.40), (1.0, 0.55), (2.0, 0.70)]):
        ct = {"rows": [0, 1, 2, 3, 4], "counts": COUNTS}
        recs.append(record("mnist5", "flows", run, obj, scores(value), contingency=ct, quick=quick))
    for run, (obj, value) in enumerate([(10.0, 0.80), (9.0, 0.85)]):
        recs.append(record("mnist5", "kmeans", run, obj, scores(value), quick=quick))
    recs.append(record("mnist5", "random", 1, None, scores(0.19), quick=quick))
    recs.append(record("mnist5", "random", 0, None, scores(0.21), quick=quick))
    return recs


def test_table1_rows_best_run_and_difference():
    rows = table1_rows(current_groups(mnist5_records()))
    index = {(r["metric"], r["method"]): r for r in rows}
    flows = index[("purity", "flows")]
    # the lowest final loss (run 1), not the best metric (run 2)
    assert flows["best_run"] == 1 and flows["ours"] == 0.55 and flows["runs"] == 3
    assert flows["paper"] == PAPER_TABLE1[("mnist5", "flows")]["purity"]
    assert flows["diff"] == pytest.approx(0.55 - 0.5663)
    assert flows["mean_over_runs"] == pytest.approx(np.mean([0.40, 0.55, 0.70]))
    assert index[("acc", "kmeans")]["ours"] == 0.85
    assert index[("acc", "random")]["best_run"] == 0 and index[("acc", "random")]["ours"] == 0.21
    gmm = index[("nmi", "gmm")]
    assert gmm["ours"] is None and gmm["diff"] is None and gmm["paper"] == 0.3513
    assert {r["dataset"] for r in rows} == {"mnist5"}
    assert len(rows) == 4 * 4


def test_latest_configuration_is_reported():
    old = [
        record("moons", "flows", r, 1.0, scores(0.9), digest="old", stamp="2024-01-01T00:00:00")
        for r in range(2)
    ]
    new = [
        record("moons", "flows", r, 2.0, scores(0.6), digest="new", stamp="2024-02-01T00:00:00")
        for r in range(3)
    ]
    groups = current_groups(new[:1] + old + new[1:])
    assert [r["config_hash"] for r in groups[("moons", "flows")]] == ["new"] * 3


def tiny_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)


def tiny_gif(path: Path) -> None:
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def test_report_files_and_self_contained_html(tmp_path):
    out = tmp_path / "exp"
    toy = [record("moons", "flows", r, 1.0 + r, scores(0.9 - r / 10), k=2) for r in range(2)]
    write_records(out, mnist5_records(quick=True) + toy)
    tiny_png(out / "figures" / "figure1_toy.png")
    tiny_png(out / "figures" / "moons_other_runs.png")
    tiny_gif(out / "figures" / "moons_density.gif")

    files = write_report(out)
    md = files.markdown.read_text()
    page = files.html.read_text()

    # Table 1 beside the paper, with the difference
    assert "## Table 1" in md and "| MNIST5 |" in md
    assert "0.5500 | 0.5663 | -0.0163" in md  # flows purity: ours, paper, difference
    assert "QUICK SMOKE RUN" in md and "QUICK SMOKE RUN" in page
    with files.table1_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16
    row = next(r for r in rows if r["method"] == "flows" and r["metric"] == "purity")
    assert float(row["ours"]) == 0.55 and float(row["paper"]) == 0.5663
    assert float(row["diff"]) == pytest.approx(-0.0163) and row["quick"] == "True"
    table1_md = files.table1_md.read_text()
    assert all(f"### {m} ↑" in table1_md for m in ("purity", "ARI", "NMI", "ACC"))
    assert "| MNIST5 | 0.2100 | 0.2204 | -0.0104 |" in table1_md  # random, first run

    # Contingency table of the best flows run (run 1) next to the paper's Table 3, and a heatmap
    assert "Table 3" in md and "0.9818" in md and "| digit 4 | 0.0000 | **0.5000** |" in md
    assert (out / "figures" / "contingency_mnist5.png").is_file()
    assert (out / "figures" / "contingency_mnist5.pdf").is_file()

    # Toy table
    assert "## Toy 2-D sets" in md and "| moons | Mixture of NFs | 2 | 100 | 2 | 0 | 1.0000 | 0.9000 |" in md
    assert files.toy_csv.is_file()

    # Metadata
    assert "TestOS" in md and "cpu_count" in md and "wall time" in md

    # Self-contained HTML: every image is a data URI, nothing is fetched from elsewhere.
    assert page.startswith("<!DOCTYPE html>")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 4  # figure 1, the GIF, the other runs, the contingency heatmap
    assert all(s.startswith("data:image/") for s in sources)
    assert any(s.startswith("data:image/gif;base64,") for s in sources)
    assert "data:image/png;base64," in page
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page and "href=" not in page
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_report_without_records(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no records.jsonl"):
        write_report(tmp_path)
    (tmp_path / RECORDS_FILE).write_text('{"dataset": "moons", "meth')
    with pytest.raises(ValueError, match="holds no complete record"):
        write_report(tmp_path)
