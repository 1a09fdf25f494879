"""Figures: valid files, right grid shapes, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from flowmix.metrics import contingency_table
from flowmix.paper.figures import (
    ToyPanel,
    contingency_heatmap,
    density_animation,
    density_panels,
    grid_2d,
    toy_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
N = 30


def two_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0.25, 0.05, (50, 2)), rng.normal(0.75, 0.05, (50, 2))])
    return X, np.repeat([0, 1], 50)


def log_density(points: np.ndarray, centres: np.ndarray, scale: float = 0.1) -> np.ndarray:
    """Log density of an equal-weight isotropic Gaussian mixture; shape (len(points),)."""
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
    comp = -0.5 * d2 / scale**2 - np.log(2 * np.pi * scale**2)
    return np.logaddexp.reduce(comp, axis=1) - np.log(len(centres))


def make_panel(name: str = "blobs") -> ToyPanel:
    X, y = two_blobs()
    xx, yy, pts = grid_2d(X, n=N)
    centres = np.array([[0.25, 0.25], [0.75, 0.75]])
    grid_labels = (pts.sum(axis=1) > 1.0).astype(int).reshape(N, N)
    return ToyPanel(
        name=name,
        X=X,
        y_true=y,
        y_pred=1 - y,
        grid=(xx, yy),
        grid_labels=grid_labels,
        grid_log_density=log_density(pts, centres).reshape(N, N),
    )


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp" in p.name]


# ----------------------------------------------------------------------------------------------------------
# grid_2d


def test_grid_shapes_and_coverage():
    X, _ = two_blobs()
    xx, yy, points = grid_2d(X, n=N, margin=0.1)
    assert xx.shape == yy.shape == (N, N)
    assert points.shape == (N * N, 2) and points.dtype == np.float32
    span = X.max(0) - X.min(0)
    np.testing.assert_allclose([xx.min(), yy.min()], X.min(0) - 0.1 * span)
    np.testing.assert_allclose([xx.max(), yy.max()], X.max(0) + 0.1 * span)
    # Row-major: point i*N + j is (xx[i, j], yy[i, j]), so model outputs reshape onto the grid.
    np.testing.assert_allclose(points[N + 2], [xx[1, 2], yy[1, 2]], rtol=1e-6)
    assert np.all(np.diff(xx[0]) > 0) and np.all(np.diff(yy[:, 0]) > 0)


def test_grid_degenerate_axis_is_padded():
    X = np.array([[0.0, 1.0], [1.0, 1.0]])  # no spread along y
    _, yy, _ = grid_2d(X, n=5, margin=0.1)
    assert yy.min() < 1.0 < yy.max()


@pytest.mark.parametrize(
    ("X", "kwargs", "match"),
    [
        (np.zeros((5, 3)), {}, r"shape \(n_samples, 2\)"),
        (np.zeros((0, 2)), {}, "empty"),
        (np.array([[0.0, np.nan]]), {}, "NaN"),
        (np.zeros((5, 2)), {"n": 1}, "at least 2"),
        (np.zeros((5, 2)), {"margin": -0.1}, "non-negative"),
    ],
)
def test_grid_bad_input(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        grid_2d(X, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Figure 1


def test_toy_figure_png_and_pdf(tmp_path):
    png, pdf = tmp_path / "fig1.png", tmp_path / "out" / "fig1.pdf"
    fig = toy_figure([make_panel("a"), make_panel("b")], [png, pdf])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.read_bytes()[:5] == PDF_MAGIC
    with Image.open(png) as im:
        assert im.width > im.height  # four columns, two rows
    assert no_temp_files(tmp_path) and no_temp_files(tmp_path / "out")


def test_toy_figure_without_path_draws_only():
    fig = toy_figure([make_panel()])
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["data", "clusters (best run)", "decision regions, true labels", "density"]


def test_toy_figure_handles_infinite_log_density(tmp_path):
    panel = make_panel()
    panel.grid_log_density[0, :] = -np.inf  # zero density far from the data
    panel.grid_log_density[1, 0] = np.nan
    toy_figure([panel], tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0


def test_toy_panel_shape_errors():
    good = make_panel()
    with pytest.raises(ValueError, match=r"y_pred must have shape \(100,\)"):
        ToyPanel(
            "x", good.X, good.y_true, good.y_pred[:-1], good.grid, good.grid_labels, good.grid_log_density
        )
    with pytest.raises(ValueError, match=r"grid_labels must have the grid's shape \(30, 30\)"):
        ToyPanel(
            "x", good.X, good.y_true, good.y_pred, good.grid, good.grid_labels[:, :-1], good.grid_log_density
        )
    with pytest.raises(ValueError, match="same shape"):
        ToyPanel(
            "x",
            good.X,
            good.y_true,
            good.y_pred,
            (good.grid[0], good.grid[1][:-1]),
            good.grid_labels,
            good.grid_log_density,
        )
    with pytest.raises(ValueError, match="n_clusters=1"):
        ToyPanel(
            "x",
            good.X,
            good.y_true,
            good.y_pred,
            good.grid,
            good.grid_labels,
            good.grid_log_density,
            n_clusters=1,
        )


def test_toy_figure_bad_suffix_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"must end in one of \.png, \.pdf, \.svg"):
        toy_figure([make_panel()], tmp_path / "fig.jpeg")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def boom(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"partial")  # a writer that dies half-way
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    target = tmp_path / "fig.png"
    with pytest.raises(OSError, match="disk full"):
        toy_figure([make_panel()], target)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_replaced(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    toy_figure([make_panel()], target)
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert no_temp_files(tmp_path)


# ----------------------------------------------------------------------------------------------------------
# Figure 2


def test_density_panels(tmp_path):
    X, _ = two_blobs()
    xx, yy, pts = grid_2d(X, n=N)
    entries = [
        (f"run {i}", xx, yy, log_density(pts, np.array([[0.2 + 0.1 * i, 0.5]])).reshape(N, N))
        for i in range(7)
    ]
    fig = density_panels(entries, tmp_path / "fig2.png", ncols=5)
    assert (tmp_path / "fig2.png").read_bytes()[:8] == PNG_MAGIC
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 10 and len(visible) == 7
    assert no_temp_files(tmp_path)


def test_density_panels_bad_input(tmp_path):
    xx, yy, _ = grid_2d(np.random.default_rng(0).random((10, 2)), n=N)
    with pytest.raises(ValueError, match="at least one"):
        density_panels([], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"grid's shape \(30, 30\)"):
        density_panels([("a", xx, yy, np.zeros((N, N + 1)))], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no finite value"):
        density_panels([("a", xx, yy, np.full((N, N), np.nan))], tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------
# Animation


def test_density_animation_gif(tmp_path):
    X, _ = two_blobs()
    xx, yy, pts = grid_2d(X, n=N)
    frames = [
        (epoch, log_density(pts, np.array([[0.25, 0.25], [0.75, 0.75]]), scale=s).reshape(N, N))
        for epoch, s in [(0, 0.5), (100, 0.25), (200, 0.1)]
    ]
    out = density_animation(frames, xx, yy, tmp_path / "train.gif", fps=5, X=X)
    assert out == tmp_path / "train.gif"
    assert out.read_bytes()[:6] in GIF_MAGIC
    with Image.open(out) as im:
        assert im.n_frames == 3
    assert no_temp_files(tmp_path)


def test_density_animation_bad_input(tmp_path):
    xx, yy, _ = grid_2d(np.random.default_rng(0).random((10, 2)), n=N)
    with pytest.raises(ValueError, match=r"\.gif"):
        density_animation([(0, np.zeros((N, N)))], xx, yy, tmp_path / "a.png")
    with pytest.raises(ValueError, match="at least one"):
        density_animation([], xx, yy, tmp_path / "a.gif")
    with pytest.raises(ValueError, match="epoch 5"):
        density_animation([(5, np.zeros((N - 1, N)))], xx, yy, tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        density_animation([(0, np.zeros((N, N)))], xx, yy, tmp_path / "a.gif", X=np.zeros(4))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------
# Contingency tables


def test_contingency_heatmap(tmp_path):
    ct = contingency_table([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 0], n_clusters=4)
    fig = contingency_heatmap(ct.table, ct.row_labels, ct.col_labels, tmp_path / "t.pdf", title="MNIST5")
    assert (tmp_path / "t.pdf").read_bytes()[:5] == PDF_MAGIC
    ax = fig.axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert len(ax.texts) == 3 * 4
    assert texts["1.0000"].get_fontweight() == "bold"
    assert ax.get_title() == "MNIST5"
    assert no_temp_files(tmp_path)


def test_contingency_heatmap_accepts_table_object(tmp_path):
    ct = contingency_table([3, 3, 5], [0, 2, 2])
    fig = contingency_heatmap(ct, path=tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG_MAGIC
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["3", "5"]


def test_contingency_heatmap_label_mismatch():
    with pytest.raises(ValueError, match=r"shape \(2, 3\) but 2 row labels and 2 column labels"):
        contingency_heatmap(np.eye(2, 3), ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="2-D"):
        contingency_heatmap(np.ones(3), None, None)


def test_method_comparison_figure_draws_one_row_per_set_and_checks_the_grid(tmp_path):
    from flowmix.paper.figures import grid_2d, method_comparison_figure

    X = np.random.default_rng(0).normal(size=(50, 2))
    xx, yy, points = grid_2d(X, n=10)
    density = -np.sum(points.astype(np.float64) ** 2, axis=1).reshape(xx.shape)
    labels = {"k-means": np.arange(50) % 2, "flowmix": np.arange(50) % 3}
    fig = method_comparison_figure([("a", X, labels, (xx, yy, density))] * 2, tmp_path / "c.png")
    assert (tmp_path / "c.png").is_file() and len(fig.axes) == 2 * 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["k-means", "flowmix", "density"]
    with pytest.raises(ValueError, match="at least one row"):
        method_comparison_figure([])
    with pytest.raises(ValueError, match="grid's shape"):
        method_comparison_figure([("a", X, labels, (xx, yy, density.ravel()))])
