"""Figures of the paper from arrays: toy clusterings and densities, density animations, contingency tables.

Nothing here fits a model: callers evaluate a fitted model on a grid from :func:`grid_2d` and pass the
arrays in. Figures are built as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``, so importing or using this module neither changes the user's backend nor leaks global
figure state. Every file is written atomically (to a temporary file in the same folder, then renamed),
so an interrupted run never leaves a truncated figure behind.

Example
-------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(100, 2))
>>> xx, yy, points = grid_2d(X, n=30)
>>> xx.shape, points.shape
((30, 30), (900, 2))
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from flowmix._io import atomic_write

__all__ = [
    "ToyPanel",
    "contingency_heatmap",
    "density_animation",
    "density_panels",
    "grid_2d",
    "method_comparison_figure",
    "toy_figure",
    "toy_figure_row",
]

PathLike = str | os.PathLike
_STATIC_SUFFIXES = (".png", ".pdf", ".svg")
_DENSITY_CMAP = "magma"  # dark for low density, light for high, as in the paper's Figure 1


# ----------------------------------------------------------------------------------------------------------
# Saving


def _as_paths(path: PathLike | Sequence[PathLike] | None, allowed: tuple[str, ...]) -> list[Path]:
    """Normalise one path or several into a list, checking each suffix."""
    if path is None:
        return []
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    for p in paths:
        if p.suffix.lower() not in allowed:
            raise ValueError(
                f"cannot tell the file format of {str(p)!r}: its name must end in one of {', '.join(allowed)}"
            )
    return paths


def _save(fig: Figure, path: PathLike | Sequence[PathLike] | None, dpi: int) -> None:
    for p in _as_paths(path, _STATIC_SUFFIXES):
        fmt = p.suffix.lower()[1:]
        atomic_write(p, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; no pyplot, no global backend
    return fig


# ----------------------------------------------------------------------------------------------------------
# Validation and small helpers


def _points_2d(X: ArrayLike, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n_samples, 2) for a 2-D plot, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _labels(y: ArrayLike, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match X, got shape {y.shape}")
    return y


def _grid(xx: ArrayLike, yy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xx = np.asarray(xx, dtype=np.float64)
    yy = np.asarray(yy, dtype=np.float64)
    if xx.ndim != 2 or xx.shape != yy.shape:
        raise ValueError(f"xx and yy must be 2-D arrays of the same shape, got {xx.shape} and {yy.shape}")
    return xx, yy


def _on_grid(values: ArrayLike, xx: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != xx.shape:
        raise ValueError(
            f"{name} must have the grid's shape {xx.shape}, got {values.shape}; "
            "reshape the model's output on grid points with .reshape(xx.shape)"
        )
    return values


def _relative_density(log_density: np.ndarray) -> np.ndarray:
    """``exp(log_density - max)``: density relative to its peak, in ``[0, 1]``.

    Subtracting the maximum avoids overflow for sharp densities (log density above ~709) and keeps
    the colour scale comparable across panels; ``-inf`` maps to 0 and NaN/``+inf`` stay NaN (drawn in
    the colormap's 'bad' colour) so that a diverged run is visible rather than a crash.
    """
    ld = np.asarray(log_density, dtype=np.float64)
    finite = np.isfinite(ld)
    if not finite.any():
        raise ValueError("the log density has no finite value to plot")
    peak = ld[finite].max()
    out = np.full(ld.shape, np.nan)
    out[finite] = np.exp(ld[finite] - peak)
    out[ld == -np.inf] = 0.0
    return out


def _qualitative(n: int) -> ListedColormap:
    """A qualitative colormap with exactly ``n`` distinct colours."""
    from matplotlib import colormaps

    base = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    if n <= 20:
        colors = [base(i % base.N) for i in range(n)]
    else:  # more clusters than any qualitative map: sample a perceptual map instead
        colors = [colormaps["turbo"](i / max(n - 1, 1)) for i in range(n)]
    return ListedColormap(colors)


def _codes(y: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary labels onto ``0..m-1`` (sorted by value) for colouring."""
    values, codes = np.unique(y, return_inverse=True)
    return codes.ravel(), values.shape[0]


def _frame(ax: Axes, xx: np.ndarray, yy: np.ndarray) -> None:
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="box")


def _draw_relative(
    ax: Axes, xx: np.ndarray, yy: np.ndarray, dens: np.ndarray, cmap: str | Colormap = _DENSITY_CMAP
) -> QuadMesh:
    """Draw a density already scaled to ``[0, 1]`` (NaN where undefined)."""
    mesh = ax.pcolormesh(
        xx, yy, np.ma.masked_invalid(dens), cmap=cmap, vmin=0.0, vmax=1.0, shading="nearest", rasterized=True
    )
    _frame(ax, xx, yy)
    return mesh


def _draw_density(ax: Axes, xx: np.ndarray, yy: np.ndarray, log_density: np.ndarray) -> QuadMesh:
    return _draw_relative(ax, xx, yy, _relative_density(log_density))


# ----------------------------------------------------------------------------------------------------------
# Grid


def grid_2d(X: ArrayLike, n: int = 200, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular ``n`` x ``n`` grid over the bounding box of 2-D data, padded by a margin.

    Parameters
    ----------
    X : array-like, shape (N, 2)
        The data.
    n : int, default 200
        Grid points per axis (at least 2).
    margin : float, default 0.1
        Padding on each side, as a fraction of the data's range along that axis. An axis on which all
        points coincide is padded by ``margin`` (or 0.5 if ``margin`` is 0) in absolute units.

    Returns
    -------
    xx, yy : ndarray of float64, shape (n, n)
        ``np.meshgrid`` coordinates (``xx[i, j]`` varies with ``j``, ``yy[i, j]`` with ``i``).
    points : ndarray of float32, shape (n*n, 2)
        The grid points in row-major order, ready for a model: ``model.predict(points).reshape(n, n)``
        lines up with ``xx`` and ``yy``.
    """
    X = _points_2d(X)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer of at least 2, got {n!r}")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a non-negative number, got {margin!r}")
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = hi - lo
    pad = np.where(span > 0, margin * span, margin if margin > 0 else 0.5)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    xx, yy = np.meshgrid(xs, ys)
    points = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float32)
    return xx, yy, points


# ----------------------------------------------------------------------------------------------------------
# Figure 1: toy data sets


@dataclass
class ToyPanel:
    """Everything Figure 1 shows for one toy data set (one row of the figure).

    Attributes
    ----------
    name : str
        Data set name, written at the left of the row.
    X : ndarray, shape (N, 2)
        The data.
    y_true : ndarray, shape (N,)
        True labels.
    y_pred : ndarray, shape (N,)
        Clusters of the best run.
    grid : tuple of two ndarrays, each shape (n, n)
        ``(xx, yy)`` from :func:`grid_2d`.
    grid_labels : ndarray of int, shape (n, n)
        Predicted cluster at each grid point (for the decision regions).
    grid_log_density : ndarray, shape (n, n)
        The mixture's log density at each grid point.
    n_clusters : int, optional
        Number of clusters of the model, so that colours stay fixed even if a cluster is empty
        (default: one more than the largest cluster index seen).

    Raises
    ------
    ValueError
        If the shapes do not fit together.
    """

    name: str
    X: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    grid: tuple[np.ndarray, np.ndarray]
    grid_labels: np.ndarray
    grid_log_density: np.ndarray
    n_clusters: int | None = None

    def __post_init__(self) -> None:
        self.X = _points_2d(self.X, f"{self.name}: X")
        n = self.X.shape[0]
        self.y_true = _labels(self.y_true, n, f"{self.name}: y_true")
        self.y_pred = _labels(self.y_pred, n, f"{self.name}: y_pred")
        if not isinstance(self.grid, (tuple, list)) or len(self.grid) != 2:
            raise ValueError(f"{self.name}: grid must be the pair (xx, yy) returned by grid_2d")
        xx, yy = _grid(*self.grid)
        self.grid = (xx, yy)
        self.grid_labels = _on_grid(self.grid_labels, xx, f"{self.name}: grid_labels")
        self.grid_log_density = _on_grid(self.grid_log_density, xx, f"{self.name}: grid_log_density")
        for arr, what in ((self.y_pred, "y_pred"), (self.grid_labels, "grid_labels")):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{self.name}: {what} must hold integer cluster indices, got {arr.dtype}")
            if arr.min() < 0:
                raise ValueError(f"{self.name}: {what} must hold non-negative cluster indices")
        seen = int(max(self.y_pred.max(), self.grid_labels.max())) + 1
        if self.n_clusters is None:
            self.n_clusters = seen
        elif self.n_clusters < seen:
            raise ValueError(f"{self.name}: n_clusters={self.n_clusters} but cluster index {seen - 1} occurs")


_TOY_COLUMNS = ("data", "clusters (best run)", "decision regions, true labels", "density")


def toy_figure_row(
    axes: Sequence[Axes], panel: ToyPanel, *, point_size: float = 4.0, titles: bool = False
) -> None:
    """Draw one row of Figure 1 into four axes.

    Columns: (a) the data in one colour; (b) points coloured by predicted cluster; (c) the decision
    regions of the model with points coloured by their true labels; (d) the mixture's density, dark
    where low and light where high.

    Parameters
    ----------
    axes : sequence of 4 Axes
    panel : ToyPanel
    point_size : float, default 4.0
        Marker area of the scatter plots.
    titles : bool, default False
        Write the column titles above the axes (for the first row).
    """
    if len(axes) != 4:
        raise ValueError(f"a toy figure row needs 4 axes, got {len(axes)}")
    xx, yy = panel.grid
    X = panel.X
    k = int(panel.n_clusters)
    cluster_cmap = _qualitative(k)
    cluster_norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)

    ax = axes[0]
    ax.scatter(X[:, 0], X[:, 1], s=point_size, c="#1f4e79", linewidths=0)

    ax = axes[1]
    ax.scatter(
        X[:, 0], X[:, 1], s=point_size, c=panel.y_pred, cmap=cluster_cmap, norm=cluster_norm, linewidths=0
    )

    ax = axes[2]
    ax.pcolormesh(
        xx,
        yy,
        panel.grid_labels,
        cmap=cluster_cmap,
        norm=cluster_norm,
        alpha=0.35,
        shading="nearest",
        rasterized=True,
    )
    codes, m = _codes(panel.y_true)
    # A darker qualitative palette for the true labels keeps them readable on the pale regions.
    true_cmap = (
        _qualitative(m)
        if m > 10
        else ListedColormap(
            [
                "#08306b",
                "#7f0000",
                "#00441b",
                "#3f007d",
                "#7f2704",
                "#252525",
                "#67001f",
                "#014636",
                "#4d004b",
                "#543005",
            ][:m]
        )
    )
    ax.scatter(
        X[:, 0],
        X[:, 1],
        s=point_size,
        c=codes,
        cmap=true_cmap,
        norm=BoundaryNorm(np.arange(m + 1) - 0.5, m),
        linewidths=0,
    )

    _draw_density(axes[3], xx, yy, panel.grid_log_density)

    for j, ax in enumerate(axes):
        _frame(ax, xx, yy)
        if titles:
            ax.set_title(_TOY_COLUMNS[j], fontsize=10)
    axes[0].set_ylabel(panel.name)


def toy_figure(
    rows: Sequence[ToyPanel],
    path: PathLike | Sequence[PathLike] | None = None,
    *,
    panel_size: float = 2.6,
    dpi: int = 150,
) -> Figure:
    """Figure 1 of the paper: one row per toy data set, four columns.

    Parameters
    ----------
    rows : sequence of ToyPanel
    path : path or sequence of paths, optional
        Where to save; the format follows each suffix (``.png``, ``.pdf``, ``.svg``).
    panel_size : float, default 2.6
        Width and height of each panel in inches.
    dpi : int, default 150
        Resolution of raster output.

    Returns
    -------
    Figure
    """
    rows = list(rows)
    if not rows:
        raise ValueError("toy_figure needs at least one ToyPanel")
    for r in rows:
        if not isinstance(r, ToyPanel):
            raise TypeError(f"rows must be ToyPanel objects, got {type(r).__name__}")
    _as_paths(path, _STATIC_SUFFIXES)  # fail on a bad suffix before drawing
    fig = _new_figure((4 * panel_size, len(rows) * panel_size))
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for i, panel in enumerate(rows):
        toy_figure_row(axes[i], panel, titles=(i == 0))
    _save(fig, path, dpi)
    return fig


def method_comparison_figure(
    rows: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]],
    path: PathLike | Sequence[PathLike] | None = None,
    *,
    panel_size: float = 2.2,
    dpi: int = 120,
    density_title: str = "density",
) -> Figure:
    """Clusters of several methods side by side, one row per 2-D data set, and one density.

    Parameters
    ----------
    rows : sequence of (name, X, labels, (xx, yy, log_density))
        ``labels`` maps each method's column title to its cluster labels of ``X`` (N,); the last
        column draws ``log_density`` on the grid ``xx``, ``yy`` (the density of the method that
        has one).
    path : path or sequence of paths, optional
        Where to save; the format follows each suffix.
    density_title : str, default "density"
        Title of the density column.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("method_comparison_figure needs at least one row")
    _as_paths(path, _STATIC_SUFFIXES)
    methods = list(rows[0][2])
    n_cols = len(methods) + 1
    fig = _new_figure((n_cols * panel_size, len(rows) * panel_size))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for i, (name, X, labels, (xx, yy, log_density)) in enumerate(rows):
        X = _points_2d(X)
        for j, method in enumerate(methods):
            codes, m = _codes(np.asarray(labels[method]))
            axes[i, j].scatter(
                X[:, 0], X[:, 1], s=2.5, c=codes, cmap=_qualitative(m), norm=BoundaryNorm(np.arange(m + 1) - 0.5, m),
                linewidths=0,
            )  # fmt: skip
            _frame(axes[i, j], xx, yy)
            if i == 0:
                axes[i, j].set_title(method, fontsize=9)
        _draw_density(axes[i, -1], xx, yy, _on_grid(log_density, xx, "log_density"))
        if i == 0:
            axes[i, -1].set_title(density_title, fontsize=9)
        axes[i, 0].set_ylabel(name)
    _save(fig, path, dpi)
    return fig


# ----------------------------------------------------------------------------------------------------------
# Figure 2: densities of other runs


def density_panels(
    densities: Sequence[tuple[str, ArrayLike, ArrayLike, ArrayLike]],
    path: PathLike | Sequence[PathLike] | None = None,
    ncols: int = 5,
    *,
    panel_size: float = 2.4,
    dpi: int = 150,
) -> Figure:
    """Figure 2 of the paper: a grid of density plots (e.g. runs other than the best).

    Parameters
    ----------
    densities : sequence of (title, xx, yy, log_density)
        ``xx``, ``yy`` and ``log_density`` of shape (n, n) each; grids may differ between panels.
    path : path or sequence of paths, optional
        Where to save (``.png``, ``.pdf``, ``.svg``).
    ncols : int, default 5
        Panels per row.
    panel_size : float, default 2.4
        Width and height of each panel in inches.
    dpi : int, default 150

    Returns
    -------
    Figure
    """
    densities = list(densities)
    if not densities:
        raise ValueError("density_panels needs at least one (title, xx, yy, log_density) entry")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    checked = []
    for entry in densities:
        if len(entry) != 4:
            raise ValueError("each density entry must be (title, xx, yy, log_density)")
        title, xx, yy, ld = entry
        xx, yy = _grid(xx, yy)
        checked.append((str(title), xx, yy, _on_grid(ld, xx, f"log_density of {title!r}")))
    _as_paths(path, _STATIC_SUFFIXES)
    ncols = min(ncols, len(checked))
    nrows = math.ceil(len(checked) / ncols)
    fig = _new_figure((ncols * panel_size, nrows * panel_size))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, xx, yy, ld) in zip(axes, checked, strict=False):
        _draw_density(ax, xx, yy, ld)
        ax.set_title(title, fontsize=9)
    for ax in axes[len(checked) :]:
        ax.set_axis_off()
    _save(fig, path, dpi)
    return fig


# ----------------------------------------------------------------------------------------------------------
# Animated density during training


def density_animation(
    frames: Sequence[tuple[int, ArrayLike]],
    xx: ArrayLike,
    yy: ArrayLike,
    path: PathLike,
    fps: int = 10,
    X: ArrayLike | None = None,
    *,
    title: str | None = None,
    size: float = 4.0,
    dpi: int = 80,
) -> Path:
    """An animated GIF of the mixture's density during training, one frame per snapshot.

    Each frame is scaled to its own peak, so the shape stays visible while the density sharpens.

    Parameters
    ----------
    frames : sequence of (epoch, log_density)
        ``log_density`` of shape (n, n) on the grid ``(xx, yy)``.
    xx, yy : array-like, shape (n, n)
        The grid, e.g. from :func:`grid_2d`.
    path : path
        Output file; must end in ``.gif``.
    fps : int, default 10
        Frames per second.
    X : array-like, shape (N, 2), optional
        Data drawn faintly on top of the density.
    title : str, optional
        Prefix of each frame's title (e.g. the data set name); the epoch is appended.
    size : float, default 4.0
        Width and height in inches.
    dpi : int, default 80

    Returns
    -------
    Path
        The written file.
    """
    from matplotlib.animation import PillowWriter

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("path must be a single file name ending in .gif")
    (out,) = _as_paths(path, (".gif",))
    xx, yy = _grid(xx, yy)
    frames = list(frames)
    if not frames:
        raise ValueError("density_animation needs at least one (epoch, log_density) frame")
    checked = []
    for entry in frames:
        if len(entry) != 2:
            raise ValueError("each frame must be (epoch, log_density)")
        epoch, ld = entry
        checked.append((epoch, _relative_density(_on_grid(ld, xx, f"log_density at epoch {epoch}"))))
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    pts = None if X is None else _points_2d(X)

    fig = _new_figure((size, size))
    ax = fig.subplots()
    mesh = _draw_relative(ax, xx, yy, checked[0][1])
    if pts is not None:
        ax.scatter(pts[:, 0], pts[:, 1], s=1.0, c="white", alpha=0.25, linewidths=0)
    prefix = f"{title}: " if title else ""

    def write(tmp: Path) -> None:
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, str(tmp), dpi):
            for epoch, dens in checked:
                mesh.set_array(np.ma.masked_invalid(dens))
                ax.set_title(f"{prefix}epoch {epoch}", fontsize=10)
                writer.grab_frame()

    atomic_write(out, write)
    return out


# ----------------------------------------------------------------------------------------------------------
# Contingency tables (Tables 2-4)


def contingency_heatmap(
    table: ArrayLike,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    path: PathLike | Sequence[PathLike] | None = None,
    title: str | None = None,
    *,
    fmt: str = "{:.4f}",
    dpi: int = 150,
) -> Figure:
    """An annotated heatmap of a row-normalised contingency table, the row maxima in bold.

    Parameters
    ----------
    table : array-like, shape (n_classes, n_clusters), or a ``flowmix.metrics.ContingencyTable``
        Rows are true labels, columns clusters. A ``ContingencyTable`` supplies its own labels.
    row_labels : sequence of length n_classes, optional
        Default: the table's, or ``0..n_classes-1``.
    col_labels : sequence of length n_clusters, optional
        Default: the table's, or ``0..n_clusters-1``.
    path : path or sequence of paths, optional
        Where to save (``.png``, ``.pdf``, ``.svg``).
    title : str, optional
    fmt : str, default ``"{:.4f}"``
        Format of the annotations (the paper prints four decimals).
    dpi : int, default 150

    Returns
    -------
    Figure
    """
    if hasattr(table, "table") and hasattr(table, "row_labels"):
        row_labels = table.row_labels if row_labels is None else row_labels
        col_labels = table.col_labels if col_labels is None else col_labels
        table = table.table
    T = np.asarray(table, dtype=np.float64)
    if T.ndim != 2 or T.size == 0:
        raise ValueError(f"table must be a non-empty 2-D array, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("table contains NaN or infinite values")
    rows = list(range(T.shape[0])) if row_labels is None else list(row_labels)
    cols = list(range(T.shape[1])) if col_labels is None else list(col_labels)
    if len(rows) != T.shape[0] or len(cols) != T.shape[1]:
        raise ValueError(
            f"table has shape {T.shape} but {len(rows)} row labels and {len(cols)} column labels were given"
        )
    _as_paths(path, _STATIC_SUFFIXES)

    fig = _new_figure((1.2 + 1.05 * T.shape[1], 0.9 + 0.55 * T.shape[0]))
    ax = fig.subplots()
    # Fractions share a fixed 0..1 scale across tables; raw counts use their own maximum.
    vmax = max(1.0, float(T.max()))
    im = ax.imshow(T, cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(T.shape[1]), [str(c) for c in cols])
    ax.set_yticks(range(T.shape[0]), [str(r) for r in rows])
    ax.set_xlabel("cluster")
    ax.set_ylabel("true label")
    ax.tick_params(length=0)
    row_max = T.max(axis=1)
    for i in range(T.shape[0]):
        for j in range(T.shape[1]):
            v = T[i, j]
            ax.text(
                j,
                i,
                fmt.format(v),
                ha="center",
                va="center",
                fontsize=8,
                # White text on dark cells keeps the numbers readable.
                color="white" if v / vmax > 0.6 else "black",
                fontweight="bold" if v == row_max[i] and v > 0 else "normal",
            )
    fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title)
    _save(fig, path, dpi)
    return fig
