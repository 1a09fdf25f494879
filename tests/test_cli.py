"""The command line: reproduce (toy, table1 on synthetic IDX files), report, fit/predict/evaluate, errors."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import flowmix
from flowmix import FlowMixture
from flowmix.cli import main
from flowmix.paper import comparison
from flowmix.paper import runner as exp_runner
from flowmix.paper.configs import QuickSettings
from flowmix.paper.data import files as dsfiles
from flowmix.paper.records import RECORDS_FILE, read_records

pytestmark = pytest.mark.usefixtures("offline")


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, *fragments: str) -> None:
    """Exit status 2, one error line (the last) on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------
# reproduce


def test_reproduce_toy_quick(tmp_path):
    out = tmp_path / "toy"
    args = ["reproduce", "toy", "--quick", "--datasets", "moons,smile", "--epochs", "10", "--snapshot-every",
            "5", "--no-progress", "--out", out]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "QUICK smoke-run settings" in result.stderr
    assert "4 new record(s), 0 already done" in result.stdout
    assert "moons" in result.stdout and "smile" in result.stdout and "report:" in result.stdout
    records = read_records(out)
    assert len(records) == 4 and all(r["quick"] and r["method"] == "flows" for r in records)
    assert {r["config"]["params"]["n_epochs"] for r in records} == {10}
    figures = out / "figures"
    for name in ("figure1_toy.png", "figure1_toy.pdf", "moons_density.gif", "smile_density.gif",
                 "moons_other_runs.png", "smile_other_runs.pdf"):  # fmt: skip
        assert (figures / name).is_file(), name
    assert (out / "models" / "smile" / "config.json").is_file()
    md = (out / "report.md").read_text()
    assert "QUICK SMOKE RUN" in md and "## Toy 2-D sets" in md
    assert "data:image/gif;base64," in (out / "report.html").read_text()

    again = invoke(*args)
    assert again.exit_code == 0 and "0 new record(s), 4 already done" in again.stdout
    assert "resuming: 4 record(s)" in again.stderr

    rewritten = invoke("report", out)
    assert rewritten.exit_code == 0 and "report.html" in rewritten.stdout


def test_demo_quick(tmp_path, monkeypatch):
    # `make demo` runs the same code with the paper's settings; shrink the quick ones further here.
    tiny = QuickSettings(runs=2, toy_epochs=4, snapshot_every=2)
    monkeypatch.setattr(exp_runner, "QUICK", tiny)
    monkeypatch.setattr(comparison, "_QUICK_EPOCHS", {"n_epochs": 2, "pretrain_epochs": 1})
    result = invoke("demo", "--quick", "--no-progress", "--out", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    records = read_records(tmp_path / "demo")
    names = ["circles", "moons", "pinwheel", "smile", "two_bananas"]
    assert sorted({r["dataset"] for r in records}) == names
    assert len(records) == 10
    assert (tmp_path / "demo" / "figures" / "figure1_toy.pdf").is_file()
    # The second half: flowmix's default beside the baselines, in the same report.
    rows = comparison.read_comparison(tmp_path / "demo")["rows"]
    assert sorted(r["dataset"] for r in rows) == names
    assert (tmp_path / "demo" / "figures" / "comparison_toy.png").is_file()
    md = (tmp_path / "demo" / "report.md").read_text()
    assert "## Toy 2-D sets" in md and "## flowmix's default recipe beside" in md
    assert "QUICK SMOKE SETTINGS" in md
    assert (tmp_path / "demo" / "report.html").is_file()


def test_reproduce_table1_without_data_skips_rows(tmp_path):
    result = invoke("reproduce", "table1", "--quick", "--no-progress", "--out", tmp_path / "t1")
    assert result.exit_code == 0, result.output
    for name in (
        "mnist",
        "mnist5",
        "fmnist",
        "cifar10",
        "mnist_pca",
        "mnist5_pca",
        "fmnist_pca",
        "cifar10_pca",
    ):
        assert f"skipping {name}: data files not found" in result.stderr
    assert "nothing to report" in result.stdout
    assert not (tmp_path / "t1").exists()


def idx_gz(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    return gzip.compress(raw)


def synthetic_mnist(root: Path, monkeypatch, n: tuple[int, int] = (200, 40)) -> None:
    """Tiny MNIST-like IDX files under ``root/mnist`` with their checksums registered."""
    rng = np.random.default_rng(1)
    for split, count in zip(("train", "t10k"), n, strict=False):
        labels = (np.arange(count) % 10).astype(np.uint8)
        # Each digit a brighter blob in its own rows, plus noise: clusterable but not trivial.
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 6, :] += 150
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            rel = f"mnist/{split}-{kind}-ubyte.gz"
            body = idx_gz(arr)
            (root / "mnist").mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(body)
            monkeypatch.setitem(dsfiles.SHA256, rel, hashlib.sha256(body).hexdigest())


def test_reproduce_table1_quick_on_synthetic_idx(tmp_path, monkeypatch):
    data = tmp_path / "data"
    synthetic_mnist(data, monkeypatch)
    out = tmp_path / "t1"
    common = [
        "reproduce",
        "table1",
        "--quick",
        "--epochs",
        "1",
        "--no-progress",
        "--data-dir",
        data,
        "--out",
        out,
    ]
    # All four methods on the 100-d PCA variant; EM with full covariances on 784 raw pixels is slow,
    # so the raw set runs the three others (a second call appending to the same directory).
    pca_args = [*common, "--datasets", "mnist5_pca"]
    result = invoke(*pca_args)
    assert result.exit_code == 0, result.output
    assert "8 new record(s)" in result.stdout
    raw = invoke(*common, "--datasets", "mnist5", "--methods", "flows", "--methods", "random,kmeans")
    assert raw.exit_code == 0, raw.output
    assert "6 new record(s)" in raw.stdout
    records = read_records(out)
    assert {(r["dataset"], r["n_samples"], r["n_features"]) for r in records} == {
        ("mnist5", 120, 784),
        ("mnist5_pca", 120, 100),
    }
    with (out / "table1.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 4 * 4 and all(r["quick"] == "True" for r in rows if r["ours"])
    assert {r["paper"] for r in rows if r["dataset"] == "mnist5" and r["method"] == "flows"} == {
        "0.5663",
        "0.3965",
        "0.5624",
    }
    assert {r["ours"] for r in rows if r["dataset"] == "mnist5" and r["method"] == "gmm"} == {""}
    assert all(r["ours"] for r in rows if r["dataset"] == "mnist5_pca")
    assert not any(r["method"] == "recipe" for r in rows)  # not asked for: not a column
    assert (out / "figures" / "contingency_mnist5.png").is_file()
    assert (out / "figures" / "contingency_mnist5_pca.png").is_file()
    md = (out / "report.md").read_text()
    assert "Table 3" in md and "Table 4" in md and "| MNIST5_PCA |" in md

    again = invoke(*pca_args)
    assert again.exit_code == 0 and "0 new record(s), 8 already done" in again.stdout

    # Tables 3-4: the flows runs of these settings are already in this directory.
    cont = invoke("reproduce", "contingency", *common[2:])
    assert cont.exit_code == 0, cont.output
    assert "0 new record(s), 4 already done" in cont.stdout


def test_contingency_reuses_the_table1_directory_by_default():
    from flowmix.paper.commands import reproduce_contingency, reproduce_table1

    def default_out(command):
        return next(p.default for p in command.params if p.name == "out")

    assert default_out(reproduce_contingency) == default_out(reproduce_table1) == "results/table1"
    help_text = " ".join(invoke("reproduce", "contingency", "--help").stdout.split())
    assert "[default: results/table1]" in help_text and "reused, not fitted again" in help_text


# ------------------------------------------------------------------------------------------------
# fit / predict / evaluate


def blobs_csv(path: Path, n: int = 150) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 20.0]])
    y = np.arange(n) % 3
    X = centres[y] + rng.normal(0, 1.0, (n, 2))
    with path.open("w") as fh:
        fh.write("a,b,label\n")
        for (a, b), label in zip(X, y, strict=False):
            fh.write(f"{a:.6f},{b:.6f},{label}\n")
    return y


def test_fit_predict_evaluate_round_trip(tmp_path):
    data = tmp_path / "blobs.csv"
    y = blobs_csv(data)
    model_dir = tmp_path / "model"
    fitted = invoke("fit", data, "-k", "3", "--label-column", "label", "--epochs", "40", "--seed", "1",
                    "--out", model_dir)  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    assert "final training loss (soft-em):" in fitted.stdout  # blobs: the Gaussian start, by soft EM
    assert "metrics: purity=" in fitted.stdout and f"model saved to {model_dir}" in fitted.stdout
    assert {p.name for p in model_dir.iterdir()} == {"config.json", "model.safetensors", "preprocessing.json"}
    prep = json.loads((model_dir / "preprocessing.json").read_text())
    # The table reaches the estimator as read; its own preprocessing rescales it.
    assert prep["scale"] == "none" and prep["label_column"] == "label"

    # predict drops the label column it was fitted without and reads the rows as fit did
    out_csv = tmp_path / "pred.csv"
    predicted = invoke("predict", model_dir, data, "--out", out_csv, "--proba")
    assert predicted.exit_code == 0, predicted.output
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(y) and list(rows[0]) == ["cluster", "proba_0", "proba_1", "proba_2"]
    proba = np.array([[float(r[f"proba_{j}"]) for j in range(3)] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-4)
    labels = np.array([int(r["cluster"]) for r in rows])
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))

    raw = np.loadtxt(data, delimiter=",", skiprows=1)[:, :2]
    model = FlowMixture.load(model_dir)
    np.testing.assert_array_equal(labels, model.predict(raw))

    to_stdout = invoke("predict", model_dir, data)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout.splitlines()[0] == "cluster"
    assert [int(v) for v in to_stdout.stdout.splitlines()[1:]] == labels.tolist()

    evaluated = invoke("evaluate", model_dir, data, "--label-column", "2")
    assert evaluated.exit_code == 0, evaluated.output
    values = dict(line.split()[:2] for line in evaluated.stdout.splitlines() if line.split()[0] in
                  ("purity", "ari", "nmi", "acc"))  # fmt: skip
    from flowmix.metrics import clustering_scores

    expected = clustering_scores(y, labels)
    assert {k: float(v) for k, v in values.items()} == pytest.approx(expected, abs=1e-4)


def test_fit_scale_minmax_is_repeated_by_predict(tmp_path):
    # What flowmix 0.1's `fit` did by default, and still does on request (and with --preset).
    data = tmp_path / "blobs.csv"
    blobs_csv(data, n=30)
    model_dir = tmp_path / "model"
    fitted = invoke("fit", data, "-k", "3", "--label-column", "label", "--epochs", "3", "--scale", "minmax",
                    "--out", model_dir)  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    prep = json.loads((model_dir / "preprocessing.json").read_text())
    assert prep["scale"] == "minmax"
    predicted = invoke("predict", model_dir, data)
    assert predicted.exit_code == 0, predicted.output
    raw = np.loadtxt(data, delimiter=",", skiprows=1)[:, :2]
    lo, span = np.array(prep["offset"]), np.array(prep["span"])
    expected = FlowMixture.load(model_dir).predict((raw - lo) / span)
    assert [int(v) for v in predicted.stdout.splitlines()[1:]] == expected.tolist()


def test_datasets_command(tmp_path):
    result = invoke("datasets", "--data-dir", tmp_path)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "samples"]
    assert any(line.split()[:2] == ["moons", "toy"] for line in lines)
    assert any(line.split()[0] == "cifar10_pca" and "no" in line.split() for line in lines)


# ------------------------------------------------------------------------------------------------
# Errors


def test_user_errors_exit_2_with_one_line(tmp_path):
    data = tmp_path / "blobs.csv"
    blobs_csv(data, n=12)

    assert_user_error(invoke("fit", tmp_path / "missing.csv", "-k", "2"), "No such file", "missing.csv")
    assert_user_error(invoke("fit", data, "-k", "0"), "-k must be a positive integer")
    out = tmp_path / "never"
    assert_user_error(invoke("fit", data, "-k", "50", "--out", out), "fewer than k=50")
    assert not out.exists()
    assert_user_error(invoke("fit", data, "-k", "2", "--label-column", "nope", "--out", out), "nope")
    assert_user_error(
        invoke("fit", data, "-k", "2", "--preset", "paper-bogus", "--out", out), "Unknown preset"
    )
    assert not out.exists()

    assert_user_error(invoke("predict", tmp_path / "no-model", data), "No such model directory")
    assert_user_error(
        invoke("evaluate", tmp_path, data, "--label-column", "label"), "is not a saved FlowMixture"
    )

    assert_user_error(
        invoke("reproduce", "table1", "--datasets", "mnist7", "--out", tmp_path / "x"),
        "Unknown experiment data set 'mnist7'",
    )
    assert_user_error(
        invoke("reproduce", "toy", "--datasets", "mnist", "--out", tmp_path / "x"), "not part of"
    )
    assert_user_error(
        invoke("reproduce", "toy", "--methods", "dbscan", "--out", tmp_path / "x"), "Unknown method(s) dbscan"
    )
    assert_user_error(
        invoke("reproduce", "table1", "--datasets", "mnist", "--no-progress", "--out", tmp_path / "x",
               "--data-dir", tmp_path / "nodata"),
        "mnist",
    )  # fmt: skip
    assert_user_error(invoke("report", tmp_path / "nothing"), "No such directory")
    assert_user_error(invoke("report", tmp_path), "has no records.jsonl")
    assert not (tmp_path / "x" / RECORDS_FILE).exists()


def test_type_errors_are_bugs_except_parameter_validation(tmp_path, monkeypatch):
    import flowmix.datasets
    from flowmix import presets

    data = tmp_path / "blobs.csv"
    blobs_csv(data, n=12)
    out = tmp_path / "never"
    # A parameter of the wrong type, caught by the estimator's validation: a user error.
    _, n_epochs, batch_size = presets.PRESETS["paper-toy"]
    # hidden units 32, not (32,)
    monkeypatch.setitem(presets.PRESETS, "bad-widths", (32, n_epochs, batch_size))
    assert_user_error(
        invoke("fit", data, "-k", "2", "--preset", "bad-widths", "--out", out), "hidden_units must be a tuple"
    )

    # Any other TypeError, even one whose text looks like a message, is a bug: it propagates.
    def broken(*args, **kwargs):
        raise TypeError("x must be a bug")

    monkeypatch.setattr(flowmix.datasets, "read_table", broken)
    with pytest.raises(TypeError, match="x must be a bug"):
        invoke("fit", data, "-k", "2", "--out", out)
    assert not out.exists()


def test_predict_checks_feature_count(tmp_path):
    data = tmp_path / "blobs.csv"
    blobs_csv(data, n=30)
    model_dir = tmp_path / "m"
    assert (
        invoke(
            "fit", data, "-k", "2", "--label-column", "label", "--epochs", "3", "--out", model_dir
        ).exit_code
        == 0
    )
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    assert_user_error(invoke("predict", model_dir, wide), "has 4 feature column(s)", "fitted on 2")


# ------------------------------------------------------------------------------------------------
# Logging and entry points


def test_verbose_shows_the_library_log_and_only_then(tmp_path):
    args = ["reproduce", "toy", "--datasets", "moons", "--methods", "random", "--runs", "1", "--no-progress",
            "--no-report", "--out", tmp_path / "toy"]  # fmt: skip
    skipped = "INFO flowmix.paper.runner: moons/random: 1 of 1 run(s) of config"
    first = invoke(*args)
    assert first.exit_code == 0 and "1 new record(s)" in first.stdout, first.output
    assert "flowmix." not in first.stderr  # no log lines without -v

    quiet = invoke(*args)
    assert quiet.exit_code == 0 and "resuming: 1 record(s)" in quiet.stderr  # the CLI's own message
    assert skipped not in quiet.stderr and "INFO" not in quiet.stderr

    loud = invoke("-v", *args)
    assert loud.exit_code == 0 and "0 new record(s), 1 already done" in loud.stdout
    assert skipped in loud.stderr and "DEBUG" not in loud.stderr
    assert skipped not in loud.stdout  # logs go to stderr only

    louder = invoke("-vv", *args)
    assert skipped in louder.stderr
    assert "DEBUG flowmix.paper.records: read 1 record(s) from" in louder.stderr

    # The handler and level are the CLI's for the command's duration only.
    logger = logging.getLogger("flowmix")
    assert logger.level == logging.NOTSET and not logger.handlers
    again = invoke(*args)
    assert again.exit_code == 0 and skipped not in again.stderr


def test_python_dash_m_flowmix(tmp_path):
    env = {**os.environ, "FLOWMIX_NO_DOWNLOAD": "1"}
    version = subprocess.run([sys.executable, "-m", "flowmix", "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"flowmix, version {flowmix.__version__}"
    missing = subprocess.run([sys.executable, "-m", "flowmix", "report", tmp_path / "nothing"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "No such directory" in missing.stderr


def test_package_is_typed():
    from importlib import resources

    assert resources.files("flowmix").joinpath("py.typed").is_file()
