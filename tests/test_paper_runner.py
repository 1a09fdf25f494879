"""The experiment grid: published values, configuration hashes, best-of-runs, records and resuming.

Every fit here is tiny (a few epochs on a toy set or a small fake image set).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from flowmix import FlowMixture
from flowmix.metrics import clustering_scores
from flowmix.paper import configs
from flowmix.paper.configs import (
    PAPER_TABLE1,
    PAPER_TABLE3,
    PAPER_TABLE4,
    TABLE1_DATASETS,
    TOY_DATASETS,
    get_dataset_config,
)
from flowmix.paper.data import DatasetError, load_dataset
from flowmix.paper.records import RECORDS_FILE, config_hash, read_records, select_best
from flowmix.paper.report import write_report
from flowmix.paper.runner import GridSpec, run_grid, unit_config
from flowmix.paper.tables import current_groups, table1_rows

pytestmark = pytest.mark.usefixtures("offline")


# ------------------------------------------------------------------------------------------------
# The grid and the published numbers


def test_grid_matches_the_paper():
    assert [d.name for d in TOY_DATASETS] == ["circles", "moons", "pinwheel", "smile", "two_bananas"]
    assert {d.name: d.k for d in TOY_DATASETS} == {
        "circles": 2,
        "moons": 2,
        "pinwheel": 5,
        "smile": 4,
        "two_bananas": 2,
    }
    assert all(d.preset == "paper-toy" for d in TOY_DATASETS)
    presets = {d.name: (d.k, d.preset) for d in TABLE1_DATASETS}
    assert presets == {
        "mnist": (10, "paper-mnist"),
        "mnist5": (5, "paper-mnist"),
        "fmnist": (10, "paper-fmnist"),
        "cifar10": (10, "paper-cifar10"),
        "mnist_pca": (10, "paper-pca"),
        "mnist5_pca": (5, "paper-pca"),
        "fmnist_pca": (10, "paper-pca"),
        "cifar10_pca": (10, "paper-pca"),
    }
    assert get_dataset_config("MNIST5-PCA").name == "mnist5_pca"
    with pytest.raises(ValueError, match="Unknown experiment data set 'nope'"):
        get_dataset_config("nope")


def test_published_table1_transcription():
    assert len(PAPER_TABLE1) == 8 * 4
    assert all(set(v) == {"purity", "ari", "nmi", "acc"} for v in PAPER_TABLE1.values())
    # Spot checks, including the cells printed with unusual precision.
    assert PAPER_TABLE1[("mnist", "kmeans")]["purity"] == 0.58035
    assert PAPER_TABLE1[("mnist5", "flows")] == {
        "purity": 0.5663,
        "ari": 0.3965,
        "nmi": 0.5624,
        "acc": 0.5663,
    }
    assert PAPER_TABLE1[("cifar10", "flows")] == {"purity": 0.1, "ari": 0.0, "nmi": 0.0, "acc": 0.1}
    assert PAPER_TABLE1[("cifar10_pca", "gmm")]["purity"] == 0.298
    assert PAPER_TABLE1[("fmnist", "flows")]["acc"] == 0.462
    assert PAPER_TABLE1[("mnist5_pca", "gmm")]["nmi"] == 0.7357
    assert PAPER_TABLE1[("fmnist_pca", "random")]["acc"] == 0.1045
    assert configs.PAPER_TABLE1_PRINTED[("mnist5", "kmeans", "purity")] == "0.8810"
    # Random labels have ARI 0 everywhere; ACC <= purity for every cell.
    assert all(PAPER_TABLE1[(d.name, "random")]["ari"] == 0 for d in TABLE1_DATASETS)
    assert all(v["acc"] <= v["purity"] + 1e-12 for v in PAPER_TABLE1.values())


def test_published_contingency_tables():
    assert PAPER_TABLE3.shape == PAPER_TABLE4.shape == (5, 5)
    assert np.isnan(PAPER_TABLE3[:, 3:]).all() and not np.isnan(PAPER_TABLE3[:, :3]).any()
    np.testing.assert_allclose(np.nansum(PAPER_TABLE3, axis=1), 1, atol=5e-4)  # truncated to 4 digits
    np.testing.assert_allclose(PAPER_TABLE4.sum(axis=1), 1, atol=5e-4)
    assert PAPER_TABLE3[0, 0] == 0.9818 and PAPER_TABLE4[4, 3] == 0.89


# ------------------------------------------------------------------------------------------------
# Configurations and best-of-runs


def test_config_hash_tracks_what_changes_results():
    moons = get_dataset_config("moons")
    base = unit_config(moons, "flows", GridSpec(datasets=["moons"]))
    # The restarts are the preset's training's (its recipe), the architecture its flow_params.
    assert base["params"]["n_epochs"] == 2000 and base["params"]["recipe"]["n_init"] == 10
    assert base["params"]["flow_params"]["hidden_units"] == [10] and base["quick"] is False
    same = unit_config(moons, "flows", GridSpec(datasets=["moons"], device="cuda"))
    assert config_hash(base) == config_hash(same)  # the device is not part of the experiment
    fewer_epochs = unit_config(moons, "flows", GridSpec(datasets=["moons"], epochs=5))
    assert config_hash(base) != config_hash(fewer_epochs)
    quick = unit_config(moons, "flows", GridSpec(datasets=["moons"], quick=True))
    assert quick["quick"] is True and quick["params"]["recipe"]["n_init"] == 2
    assert quick["params"]["n_epochs"] == 200
    # Baseline run i is seed i whatever the number of runs: runs are not in its hash.
    km = [unit_config(moons, "kmeans", GridSpec(datasets=["moons"], runs=r)) for r in (2, 10)]
    assert config_hash(km[0]) == config_hash(km[1]) and km[0]["n_init"] == 10
    image = unit_config(get_dataset_config("mnist"), "flows", GridSpec(datasets=["mnist"], quick=True))
    assert image["max_samples"] == 2000 and image["params"]["flow_params"]["hidden_units"] == [128]


def test_protocol_draw_options_change_the_flows_configuration_only_when_set():
    pca = get_dataset_config("mnist5_pca")
    base = unit_config(pca, "flows", GridSpec(datasets=[pca.name]))
    training = base["params"]["recipe"]  # the orders are settings of the preset's training
    assert "batch_order" not in training and "shuffle_buffer" not in training
    assert config_hash(unit_config(pca, "flows", GridSpec(datasets=[pca.name], seed=0))) == config_hash(base)
    drawn = unit_config(pca, "flows", GridSpec(datasets=[pca.name], seed=3))
    assert drawn["random_state"] == 3 and config_hash(drawn) != config_hash(base)
    reference = unit_config(
        pca, "flows", GridSpec(datasets=[pca.name], batch_order="per-restart", shuffle_buffer=1024)
    )
    training = reference["params"]["recipe"]
    assert training["batch_order"] == "per-restart" and training["shuffle_buffer"] == 1024
    # The baselines' runs are their own seeds: a flows draw leaves them alone.
    kmeans = [unit_config(pca, "kmeans", GridSpec(datasets=[pca.name], seed=s)) for s in (None, 3)]
    assert config_hash(kmeans[0]) == config_hash(kmeans[1])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"seed": -1}, "seed must be"),
        ({"batch_order": "mixed"}, "batch-order must be"),
        ({"shuffle_buffer": 0}, "shuffle"),
    ],
)
def test_bad_protocol_draw_options_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        GridSpec(datasets=["mnist5_pca"], **settings)


def _rec(method: str, run: int, objective, diverged: bool = False) -> dict:
    return {"dataset": "d", "method": method, "run": run, "objective": objective, "diverged": diverged}


def test_select_best_picks_lowest_objective():
    runs = [_rec("flows", 0, 3.0), _rec("flows", 1, 1.5), _rec("flows", 2, 2.0)]
    assert select_best(runs)["run"] == 1
    # diverged runs and runs without an objective are ignored; ties go to the lower run
    runs = [
        _rec("gmm", 0, -1.0, diverged=True),
        _rec("gmm", 1, None),
        _rec("gmm", 2, 0.5),
        _rec("gmm", 3, 0.5),
    ]
    assert select_best(runs)["run"] == 2
    # random labels optimise nothing: the first run
    assert select_best([_rec("random", 2, None), _rec("random", 0, None)])["run"] == 0
    assert select_best([]) is None
    assert select_best([_rec("kmeans", 0, None)]) is None


# ------------------------------------------------------------------------------------------------
# Running


def test_toy_flows_records_figures_and_resume(tmp_path):
    out = tmp_path / "toy"
    spec = GridSpec(datasets=["moons"], methods=["flows"], runs=3, epochs=12, snapshot_every=4, grid_size=20)
    summary = run_grid(spec, out, progress=False)
    assert summary.new_records == 3 and summary.skipped_records == 0
    records = read_records(out)
    assert [r["run"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["method"] == "flows" and r["dataset"] == "moons" and r["batched"] is True
        assert set(r["metrics"]) == {"purity", "ari", "nmi", "acc"}
        assert sum(r["cluster_sizes"]) == 1000 and len(r["cluster_sizes"]) == 2
        assert r["flowmix_version"] and r["machine"]["cpu_count"] and r["device"] == "cpu"
        assert r["config"]["params"]["n_epochs"] == 12 and r["quick"] is False
    assert len({r["objective"] for r in records}) == 3  # one objective per restart

    # The best run by final loss is the fitted (saved) model's restart, and its record holds the
    # model's own metrics.
    best = select_best(records)
    assert [r["is_best_restart"] for r in records].count(True) == 1 and best["is_best_restart"]
    model = FlowMixture.load(out / "models" / "moons")
    assert model.best_restart_ == best["run"]
    np.testing.assert_allclose(model.losses_[:, -1], [r["objective"] for r in records], rtol=1e-6)
    data = load_dataset("moons")
    assert best["metrics"] == pytest.approx(clustering_scores(data.y, model.predict(data.X)))

    figures = out / "figures"
    for name in ("figure1_toy.png", "figure1_toy.pdf", "moons_other_runs.png", "moons_other_runs.pdf"):
        assert (figures / name).stat().st_size > 1000, name
    with Image.open(figures / "moons_density.gif") as gif:
        assert gif.n_frames == 4  # epochs 0, 4, 8, 12
    arrays = np.load(out / "arrays" / "moons_flows.npz")
    assert arrays["final_log_density"].shape == (3, 20, 20)
    assert int(arrays["best_restart"]) == best["run"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]

    # A second run with the same settings does nothing new.
    before = (out / RECORDS_FILE).read_text()
    again = run_grid(spec, out, progress=False)
    assert again.new_records == 0 and again.skipped_records == 3
    assert (out / RECORDS_FILE).read_text() == before


def test_baselines_resume_after_interruption(tmp_path):
    out = tmp_path / "grid"
    spec = GridSpec(datasets=["smile"], methods=["random", "kmeans", "gmm"], runs=3, quick=True)
    assert run_grid(spec, out, progress=False).new_records == 9
    path = out / RECORDS_FILE
    lines = path.read_text().splitlines(keepends=True)
    # Interrupted: the last record lost and the one before it cut in the middle of its line.
    path.write_text("".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])
    assert len(read_records(out)) == 7
    messages = []
    summary = run_grid(spec, out, progress=False, echo=messages.append)
    assert summary.new_records == 2 and summary.skipped_records == 7
    assert any("resuming: 7 record(s)" in m for m in messages)
    records = read_records(out)
    assert len(records) == 9
    assert sorted((r["method"], r["run"]) for r in records) == sorted(
        (m, i) for m in ("random", "kmeans", "gmm") for i in range(3)
    )
    km = [r for r in records if r["method"] == "kmeans"]
    assert all(r["seed"] == r["run"] and r["config"]["n_init"] == 1 and r["quick"] for r in km)
    assert select_best(km)["objective"] == min(r["objective"] for r in km)


def test_image_rows_with_injected_loader(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.05, (40, 6)) for c in (0.2, 0.5, 0.8, 0.35, 0.65)]).astype(np.float32)
    y = np.repeat(np.arange(5), 40)
    calls = []

    def loader(name):
        calls.append(name)
        return SimpleNamespace(X=X, y=y)

    spec = GridSpec(datasets=["mnist5"], runs=2, epochs=2, quick=True, max_samples=150)
    summary = run_grid(spec, tmp_path / "t1", progress=False, loader=loader)
    assert calls == ["mnist5"] and summary.new_records == 8
    records = read_records(tmp_path / "t1")
    assert {r["method"] for r in records} == {"flows", "random", "kmeans", "gmm"}
    assert all(r["n_samples"] == 150 and r["quick"] and r["k"] == 5 for r in records)
    flows = [r for r in records if r["method"] == "flows"]
    assert flows[0]["config"]["params"]["flow_params"]["hidden_units"] == [128]
    assert all(np.asarray(r["contingency"]["counts"]).sum() == 150 for r in records)
    assert not (tmp_path / "t1" / "models").exists()  # image models are saved only on request


def test_flowmix_default_runs_beside_the_paper_methods_on_a_learned_feature_row(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, (60, 5)) for c in range(5)]).astype(np.float32)
    y = np.repeat(np.arange(5), 60)
    spec = GridSpec(
        datasets=["mnist5_umap5"], methods=["kmeans", "recipe"], runs=2, quick=True, recipe_epochs=3
    )
    summary = run_grid(spec, tmp_path / "t1", progress=False, loader=lambda name: SimpleNamespace(X=X, y=y))
    assert summary.new_records == 4
    recipe = [r for r in read_records(tmp_path / "t1") if r["method"] == "recipe"]
    assert [r["seed"] for r in recipe] == [0, 1]
    params = recipe[0]["config"]["params"]
    trainings = params["recipe"]["shapes"], params["recipe"]["gaussian"]  # the default recipe's two fits
    assert params["n_epochs"] == 3 and [t["pretrain_epochs"] for t in trainings] == [5, 5]
    assert params["flow"] == "spline" and params["init"] == "auto"  # the whole recipe is recorded
    assert all(r["objective"] is not None and np.isfinite(r["objective"]) for r in recipe)
    # Which start each run's recipe kept, and the bases it trained, are recorded beside the score.
    assert all(
        r["bases"] in ("full", "diag") and r["recipe"] in ("genie", "spectral", "gmm-best") for r in recipe
    )
    assert select_best(recipe)["objective"] == min(r["objective"] for r in recipe)
    # Well-separated blobs: the recipe finds them even with 3 epochs.
    assert select_best(recipe)["metrics"]["ari"] > 0.9
    rows = [r for r in table1_rows(current_groups(read_records(tmp_path / "t1"))) if r["metric"] == "ari"]
    ours = {r["method"]: r["ours"] for r in rows}
    assert ours["recipe"] == select_best(recipe)["metrics"]["ari"] and ours["flows"] is None
    assert all(r["paper"] is None for r in rows)  # the paper has no learned-feature rows
    md = (write_report(tmp_path / "t1").markdown).read_text()
    assert "MNIST5_UMAP5" in md and "flowmix default: ours" in md


def test_learned_feature_rows_load_the_features_of_their_image_set(tmp_path, monkeypatch):
    import flowmix.paper.data

    calls = []

    def fake_load(name, **options):
        calls.append((name, options.get("features"), options.get("n_features")))
        return SimpleNamespace(X=np.random.default_rng(0).normal(size=(60, 5)), y=np.arange(60) % 5)

    monkeypatch.setattr(flowmix.paper.data, "load_dataset", fake_load)
    spec = GridSpec(datasets=["mnist5_n2d5"], methods=["kmeans"], runs=1, quick=True, explicit=True)
    run_grid(spec, tmp_path, progress=False)
    assert calls == [("mnist5", "n2d", 5)]
    (record,) = read_records(tmp_path)
    assert record["config"]["features"] == {"method": "n2d", "n_features": 5, "source": "mnist5", "seed": 1}


def test_missing_image_data_is_skipped_unless_named(tmp_path):
    messages = []
    spec = GridSpec(datasets=["mnist", "cifar10_pca"], data_dir=tmp_path / "empty")
    summary = run_grid(spec, tmp_path / "out", progress=False, echo=messages.append)
    assert [name for name, _ in summary.skipped_datasets] == ["mnist", "cifar10_pca"]
    assert summary.new_records == 0 and not (tmp_path / "out").exists()
    assert any(m.startswith("skipping mnist: data files not found") for m in messages)
    named = GridSpec(datasets=["mnist"], methods=["random"], data_dir=tmp_path / "empty", explicit=True)
    with pytest.raises(DatasetError, match="mnist"):
        run_grid(named, tmp_path / "out", progress=False)


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="Unknown method"):
        GridSpec(datasets=["moons"], methods=["dbscan"])
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        GridSpec(datasets=["moons"], runs=0)
    with pytest.raises(ValueError, match="Unknown experiment data set"):
        GridSpec(datasets=["moon"])


def test_records_are_strict_json_lines(tmp_path):
    run_grid(GridSpec(datasets=["moons"], methods=["random"], runs=2), tmp_path, progress=False)
    text = (tmp_path / RECORDS_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    for run, line in enumerate(lines):
        record = json.loads(line)
        assert record["run"] == run and record["objective"] is None and record["objective_name"] is None
        assert {
            "config",
            "config_hash",
            "metrics",
            "cluster_sizes",
            "seconds",
            "device",
            "finished_at",
        } <= set(record)


def test_a_killed_image_fit_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from flowmix.checkpoint import FitCheckpoint

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.05, (40, 6)) for c in (0.2, 0.5, 0.8, 0.35, 0.65)]).astype(np.float32)
    y = np.repeat(np.arange(5), 40)
    spec = GridSpec(
        datasets=["mnist5"], methods=["flows"], runs=2, epochs=4, quick=True, checkpoint_seconds=1e-9
    )
    expected = read_records(
        run_grid(
            spec, tmp_path / "whole", progress=False, loader=lambda name: SimpleNamespace(X=X, y=y)
        ).out_dir
    )

    original, writes = FitCheckpoint.save, []

    def save_then_die(self, phase, tensors, meta):
        original(self, phase, tensors, meta)
        writes.append(meta["epochs_run"])
        if len(writes) == 2:
            raise KeyboardInterrupt  # killed after the second epoch's checkpoint

    monkeypatch.setattr(FitCheckpoint, "save", save_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_grid(spec, out, progress=False, loader=lambda name: SimpleNamespace(X=X, y=y))
    assert not read_records(out) and list((out / "checkpoints").iterdir())
    monkeypatch.setattr(FitCheckpoint, "save", original)
    resumed = []
    monkeypatch.setattr(
        FitCheckpoint, "load", lambda self, f=FitCheckpoint.load: resumed.append(f(self)) or resumed[-1]
    )
    run_grid(spec, out, progress=False, loader=lambda name: SimpleNamespace(X=X, y=y))
    assert resumed[0] is not None and resumed[0].meta["epochs_run"] == 2  # continued, not restarted
    got = read_records(out)
    assert [(r["run"], r["objective"], r["metrics"]) for r in got] == [
        (r["run"], r["objective"], r["metrics"]) for r in expected
    ]
    assert not list((out / "checkpoints").iterdir())  # deleted once the records were written
