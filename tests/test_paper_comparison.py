"""flowmix.paper.comparison: the default recipe beside k-means, a GMM and spectral clustering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowmix.datasets import load_dataset
from flowmix.paper import comparison, report


def _small(name: str):
    data = load_dataset(name)
    keep = np.random.default_rng(0).choice(len(data.y), 300, replace=False)
    return type("Small", (), {"X": np.asarray(data.X)[keep], "y": np.asarray(data.y)[keep]})


def test_comparison_scores_every_method_and_writes_the_table_and_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison, "_QUICK_EPOCHS", {"n_epochs": 3, "pretrain_epochs": 2})
    rows = comparison.compare_on_toy_sets(tmp_path, ["two_bananas", "circles"], quick=True, loader=_small)
    assert [r["dataset"] for r in rows] == ["two_bananas", "circles"]
    for row in rows:
        assert row["n_samples"] == 300
        for method in comparison.METHODS:
            assert -1 <= row[method]["ari"] <= 1 and 0 <= row[method]["acc"] <= 1
            assert row[method]["seconds"] > 0
        assert np.isfinite(row["flowmix_log_likelihood"]) and np.isfinite(row["gmm_log_likelihood"])
    # Two bananas are well separated: every method finds them (a check that labels are scored).
    assert rows[0]["k-means"]["ari"] > 0.9
    saved = json.loads((tmp_path / comparison.COMPARISON_FILE).read_text())
    assert saved["rows"] == rows and saved["settings"]["quick"] is True
    assert (tmp_path / "figures" / "comparison_toy.png").is_file()


def test_the_report_section_puts_the_paper_preset_beside_the_methods(tmp_path):
    row = {
        "dataset": "moons",
        "k": 2,
        "n_samples": 10,
        "flowmix_log_likelihood": 0.5,
        "gmm_log_likelihood": 0.25,
    }
    for i, method in enumerate(comparison.METHODS):
        row[method] = {"ari": 0.1 * (i + 1), "nmi": 0.0, "acc": 0.5, "purity": 0.5, "seconds": 1.5}
    (tmp_path / comparison.COMPARISON_FILE).write_text(json.dumps({"settings": {"seed": 0}, "rows": [row]}))
    toy = [
        {"dataset": "moons", "method": "flows", "ari": 0.27},
        {"dataset": "moons", "method": "kmeans", "ari": 0.9},
    ]
    blocks = report._comparison_section(tmp_path, toy)
    (table,) = [b for b in blocks if b.kind == "table"]
    assert table.rows == [["moons", "0.270", "0.100", "0.200", "0.300", "0.400", "1.5", "0.500 / 0.250"]]
    assert table.bold == {(0, 5)}  # flowmix's ARI is the row's best
    assert report._comparison_section(tmp_path / "elsewhere", toy) == []


def test_only_toy_sets_are_compared(tmp_path):
    with pytest.raises(ValueError, match="not a toy set"):
        comparison.compare_on_toy_sets(tmp_path, ["mnist5_pca"])
