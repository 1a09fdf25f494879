"""`flowmix fit`: the table reaches the estimator as read, the help and summary describe the recipe, --plot."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowmix import FlowMixture, cli
from flowmix.cli import main
from flowmix.recipes import Trace, resolve

pytestmark = pytest.mark.usefixtures("offline")

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def tiny_fits(monkeypatch):
    """Fits of a few epochs, pretraining included (the command line has no option for the latter)."""
    fit = FlowMixture.fit

    def tiny(self, X, *args, **kwargs):
        recipe = resolve(self.recipe, self.get_params(deep=False)).with_settings(pretrain_epochs=2)
        self.set_params(recipe=recipe, n_epochs=min(self.n_epochs, 3))
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(FlowMixture, "fit", tiny)


def write_csv(path: Path, X: np.ndarray, header: list[str] | None = None, fmt: str = "%.6f") -> Path:
    np.savetxt(path, X, delimiter=",", fmt=fmt, header=",".join(header) if header else "", comments="")
    return path


def counts(n: int = 80) -> np.ndarray:
    """Two clusters of Poisson counts: integer-valued features."""
    rng = np.random.default_rng(0)
    rates = np.array([[2.0, 20.0], [20.0, 2.0]])
    return rng.poisson(rates[np.arange(n) % 2]).astype(np.int64)


def blobs(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 8.0, (3, d))
    return centres[np.arange(n) % 3] + rng.normal(0, 1.0, (n, d))


# ------------------------------------------------------------------------------------------------
# The table as read: the estimator's preprocessing and dequantisation see it


def test_integer_counts_reach_the_estimator_as_integers(tmp_path, tiny_fits):
    data = write_csv(tmp_path / "counts.csv", counts(), ["u", "v"], fmt="%d")
    out = tmp_path / "model"
    result = invoke("fit", data, "-k", "2", "--out", out)
    assert result.exit_code == 0, result.output
    model = FlowMixture.load(out)
    # Min-max scaling first (the old default) made the counts fractions: no dequantisation.
    assert model.dequantization_steps_ is not None
    np.testing.assert_array_equal(model.dequantization_steps_, [1.0, 1.0])
    assert model.preprocessing == "auto"
    assert json.loads((out / "preprocessing.json").read_text())["scale"] == "none"

    # predict reads the rows as they are, as fit did
    predicted = invoke("predict", out, data)
    assert predicted.exit_code == 0, predicted.output
    labels = [int(v) for v in predicted.stdout.splitlines()[1:]]
    assert labels == model.predict(counts().astype(np.float64)).tolist()


def test_preprocessing_option_is_the_estimators(tmp_path, tiny_fits):
    data = write_csv(tmp_path / "counts.csv", counts(40), ["u", "v"], fmt="%d")
    out = tmp_path / "model"
    result = invoke("fit", data, "-k", "2", "--preprocessing", "standardize", "--out", out)
    assert result.exit_code == 0, result.output
    assert FlowMixture.load(out).preprocessing == "standardize"
    bad = invoke("fit", data, "-k", "2", "--preprocessing", "minmax", "--out", out)
    assert bad.exit_code == 2 and "'minmax' is not one of" in bad.stderr


def test_a_model_saved_with_the_old_cli_scaling_still_predicts(tmp_path):
    # A model directory as flowmix 0.1's `fit` wrote it: the model plus the min-max scaling it applied.
    model_dir = tmp_path / "old.flowmix"
    shutil.copytree(FIXTURES / "format1_model", model_dir)
    rng = np.random.default_rng(2)
    raw = rng.uniform(-5.0, 30.0, (25, 3))
    offset, span = raw.min(axis=0), np.ptp(raw, axis=0)
    prep = {"scale": "minmax", "offset": offset.tolist(), "span": span.tolist(),
            "feature_names": ["a", "b", "c"], "label_column": None, "source": "old.csv"}  # fmt: skip
    (model_dir / "preprocessing.json").write_text(json.dumps(prep))
    data = write_csv(tmp_path / "new.csv", raw, ["a", "b", "c"], fmt="%.9g")

    predicted = invoke("predict", model_dir, data, "--proba")
    assert predicted.exit_code == 0, predicted.output
    rows = [line.split(",") for line in predicted.stdout.splitlines()[1:]]
    model = FlowMixture.load(model_dir)
    scaled = (np.loadtxt(data, delimiter=",", skiprows=1) - offset) / span
    assert [int(r[0]) for r in rows] == model.predict(scaled).tolist()
    np.testing.assert_allclose(
        [[float(v) for v in r[1:]] for r in rows], model.predict_proba(scaled), atol=1e-5
    )


def test_the_table_scaling_has_its_own_name():
    from flowmix.datasets import scaling
    from flowmix.preprocessing import fit_scaling as estimator_scaling

    X = np.array([[0.0, 10.0], [2.0, 30.0]])
    assert scaling.fit_table_scaling(X, "minmax") == {
        "scale": "minmax",
        "offset": [0.0, 10.0],
        "span": [2.0, 20.0],
    }
    assert "fit_scaling" not in scaling.__all__
    assert estimator_scaling("none", X).transform(X).tolist() == X.tolist()  # the estimator's: (kind, X)
    with pytest.warns(DeprecationWarning, match="renamed fit_table_scaling"):
        assert scaling.fit_scaling(X, "minmax") == scaling.fit_table_scaling(X, "minmax")


# ------------------------------------------------------------------------------------------------
# What fit says: its help, and the summary of what the recipe did


def test_fit_help_describes_the_current_recipe():
    text = " ".join(invoke("fit", "--help").stdout.split())
    for stale in ("refit", "0.2 nats", "3 restarts", "k-means"):
        assert stale not in text, stale
    for current in ("Genie", "spectral clustering", "Gaussian mixture", "normalised cut", "one mixture"):
        assert current in text, current
    assert "--preprocessing [auto|robust|standardize|global|none]" in text


def test_fit_prints_the_start_the_recipe_kept(tmp_path, tiny_fits):
    data = write_csv(tmp_path / "blobs.csv", blobs(60, 2), ["a", "b"])
    result = invoke("fit", data, "-k", "3", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert "restart" not in first
    kept = FlowMixture.load(tmp_path / "m")  # a loaded model has no trace: compare with the fit's words
    assert kept.n_components == 3
    assert first.startswith("fitted 3 components to 60 points x 2 features (")
    assert any(f"start kept: {name})" in first for name in ("genie", "spectral", "gmm-best")), first
    assert result.stdout.splitlines()[1].startswith("why: ")


def summary_of(*steps: dict, n_init: int = 1, best: int = 0) -> tuple[str, list[str]]:
    trace = Trace()
    for step in steps:
        trace.add(**step)
    model = type("Fitted", (), {"recipe_trace_": trace, "n_init": n_init, "best_restart_": best})()
    return cli._recipe_summary(model)


def test_recipe_summary_reads_the_trace():
    kept = summary_of(
        {"step": "candidates", "normalised_cut": {"genie": 0.1, "gmm-best": 0.5}},
        {"step": "decision", "kept": "genie", "why": "genie's cut is lower"},
        {"step": "fit", "settings": {"n_init": 1}, "start": "genie"},
        {"step": "empty components", "components": [2], "why": "lower n_components"},
    )
    assert kept == (
        "start kept: genie",
        ["why: genie's cut is lower", "warning: component(s) [2] ended without a point; lower n_components"],
    )
    single = summary_of({"step": "fit", "settings": {"n_init": 4, "init": "unit"}}, n_init=4, best=2)
    assert single == ("4 restarts from unit, best restart 2", [])
    assert summary_of({"step": "fit", "settings": {"n_init": 1, "init": "unit"}}) == ("start: unit", [])


# ------------------------------------------------------------------------------------------------
# --plot


def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


@pytest.mark.parametrize("n_features", [2, 5])
def test_plot_writes_a_png(tmp_path, tiny_fits, n_features):
    data = write_csv(tmp_path / "blobs.csv", blobs(60, n_features))
    image = tmp_path / "clusters.png"
    result = invoke("fit", data, "-k", "3", "--out", tmp_path / "m", "--plot", image)
    assert result.exit_code == 0, result.output
    assert f"clusters drawn to {image}" in result.stdout
    pixels = read_png(image)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert np.ptp(pixels[..., :3]) > 0.5  # something is drawn on the white
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_plot_problems_are_refused_before_fitting(tmp_path, monkeypatch):
    data = write_csv(tmp_path / "blobs.csv", blobs(30, 2))
    out = tmp_path / "never"

    def refused(result, fragment):
        assert result.exit_code == 2, result.output
        assert fragment in result.stderr and "Traceback" not in result.output
        assert not out.exists()

    refused(
        invoke("fit", data, "-k", "3", "--out", out, "--plot", tmp_path / "no" / "c.png"), "does not exist"
    )
    refused(
        invoke("fit", data, "-k", "3", "--out", out, "--plot", tmp_path / "c.bogus"), "unknown image format"
    )
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    refused(
        invoke("fit", data, "-k", "3", "--out", out, "--plot", tmp_path / "c.png"), "pip install matplotlib"
    )
