"""The ``flowmix`` command line: thin wrappers that call the library and print.

::

    flowmix fit data.csv -k 3 --label-column label     # fit, print loss and metrics, save the model
    flowmix fit data.csv -k 3 --plot clusters.png      # ... and draw the clusters
    flowmix predict data.flowmix new.csv --out clusters.csv
    flowmix evaluate data.flowmix data.csv --label-column label
    flowmix datasets                                   # what can be loaded, and where from
    flowmix reproduce toy                              # Figures 1-2 (+ animations) of the paper
    flowmix reproduce table1 --data-dir DATA           # Table 1
    flowmix reproduce contingency --data-dir DATA      # Tables 3-4
    flowmix report results/toy                         # re-write report.md / report.html
    flowmix demo                                       # `make demo`: the toy protocol and its report
    flowmix -v reproduce toy                           # also show the library's log (-vv: debug)

``datasets``, ``reproduce``, ``report`` and ``demo`` belong to the paper's reproduction harness
(:mod:`flowmix.paper.commands`); the rest are the library's. ``python -m flowmix`` runs the same
command line. User errors (a missing file, a bad ``k``, an
unknown data set, ...) print one line on stderr and exit with status 2, without a traceback.

Only what a command needs is imported, when it runs: torch and scikit-learn (seconds) load with
the estimator, so ``flowmix --help`` and argument errors answer at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

import flowmix
from flowmix._cli_common import CommandGroup, UserError
from flowmix._io import atomic_write, atomic_write_dir, atomic_write_text
from flowmix.datasets.scaling import SCALINGS, apply_scaling, fit_table_scaling
from flowmix.paper.commands import PAPER_COMMANDS
from flowmix.preprocessing import PREPROCESSINGS

CLI_SIDECAR = "preprocessing.json"


def _label_column(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        return text


# ------------------------------------------------------------------------------------------------
# Logging


class _StderrHandler(logging.Handler):
    """Writes log records to the *current* ``sys.stderr``, through tqdm so that open bars stay whole."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: a failing handler reports and carries on
            self.handleError(record)


def _show_library_log(ctx: click.Context, verbose: int) -> None:
    """Send the "flowmix" logger's records to stderr: -v INFO, -vv (or more) DEBUG; undone on exit."""
    if verbose < 1:
        return
    logger = logging.getLogger("flowmix")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    ctx.call_on_close(restore)


# ------------------------------------------------------------------------------------------------
# The command group


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(flowmix.__version__, prog_name="flowmix")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Show the library's log on stderr (downloads, resumed runs, caches); -vv adds debugging detail.",
)
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Clustering and density estimation with mixtures of normalizing flows.

    Fit your own table with `flowmix fit`, or reproduce the paper's experiments with
    `flowmix reproduce toy|table1|contingency`.
    """
    _show_library_log(ctx, verbose)
    from flowmix import _memory  # light: no torch

    _memory.enable_for_process()  # this process is flowmix's own: keep freed tensor memory for reuse


# The paper harness's commands, beside the library's.
for _command in PAPER_COMMANDS:
    main.add_command(_command)


# ------------------------------------------------------------------------------------------------
# fit / predict / evaluate


def _read_prep(model_dir: Path) -> dict[str, Any]:
    """The preprocessing that `flowmix fit` wrote beside the model, checked (none if absent)."""
    path = model_dir / CLI_SIDECAR
    if not path.is_file():
        return {"scale": "none"}
    redo = f"fit the model again with `flowmix fit FILE -k K --out {model_dir}` (it writes {CLI_SIDECAR})"
    try:
        prep = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); {redo}.") from None
    scale = prep.get("scale", "none") if isinstance(prep, dict) else None
    ok = scale in SCALINGS and isinstance(prep.get("label_column"), int | str | None)
    if ok and scale != "none":
        offset, span = prep.get("offset"), prep.get("span")
        numbers = [v for v in (offset, span) if isinstance(v, list)]
        ok = (
            len(numbers) == 2
            and len(offset) == len(span) > 0
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in offset + span)
            and bool(np.isfinite(offset + span).all())
        )
    if not ok:
        raise UserError(f"{path} does not hold the preprocessing settings `flowmix fit` writes; {redo}.")
    return prep


def _load_model(model_dir: str, device: str | None = None) -> tuple[Any, dict[str, Any]]:
    from flowmix import FlowMixture

    path = Path(model_dir)
    if not path.is_dir():
        raise UserError(
            f"No such model directory: {model_dir} (write one with `flowmix fit FILE -k K --out DIR`)."
        )
    return FlowMixture.load(path, device=device), _read_prep(path)


def _read_points(
    file: str, model: Any, prep: dict[str, Any], label_column: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (scaled as at fit time) and labels of FILE for a fitted model."""
    from flowmix.datasets import read_table

    column = _label_column(label_column)
    X, y, _ = read_table(file, label_column=column)
    expected = int(model.n_features_in_)
    if column is None and X.shape[1] == expected + 1 and prep.get("label_column") is not None:
        # The file still has the label column the model was fitted without.
        X, y, _ = read_table(file, label_column=prep["label_column"])
    if X.shape[1] != expected:
        raise UserError(
            f"{file} has {X.shape[1]} feature column(s) but the model was fitted on {expected}; "
            "drop extra columns or name the label column with --label-column."
        )
    return apply_scaling(X, prep), y


def _save_model_dir(model: Any, prep: dict[str, Any], out: Path) -> None:
    """Write the model and its preprocessing sidecar together (one directory, put in place at once)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise UserError(f"{out} exists and is not a flowmix model directory; choose another --out.")

    def write(tmp: Path) -> None:
        model.save(tmp)
        (tmp / CLI_SIDECAR).write_text(json.dumps(prep, indent=2), encoding="utf-8")

    atomic_write_dir(out, write)


def _estimator_from_args(
    k: int,
    preset: str | None,
    *,
    epochs: int | None,
    n_init: int | None,
    preprocessing: str | None,
    seed: int,
    device: str,
    checkpoint_dir: str | None,
    early_stopping: bool | None,
    distributed: str | None,
    verbose: bool,
) -> Any:
    """The estimator that `fit`'s options describe: FlowMixture's defaults (or the preset's) plus the options given.

    The one place where command-line options become constructor parameters; it checks them with
    the estimator's own validation before any data are read.
    """
    from flowmix import FlowMixture, _params

    overrides: dict[str, Any] = {"device": device, "random_state": seed, "verbose": verbose}
    overrides.update(checkpoint=checkpoint_dir, distributed=distributed)
    if early_stopping is not None:
        overrides["early_stopping"] = early_stopping
    if epochs is not None:
        overrides["n_epochs"] = epochs
    if n_init is not None:
        overrides["n_init"] = n_init
    if preprocessing is not None:
        overrides["preprocessing"] = preprocessing
    model = FlowMixture.from_preset(preset, k, **overrides) if preset else FlowMixture(k, **overrides)
    try:
        _params.validate(model.get_params(deep=False))  # the estimator's own checks, before the data
    except TypeError as err:  # a parameter of the wrong type: the user's input, not a bug
        raise UserError(str(err)) from err
    return model


def _recipe_summary(model: Any) -> tuple[str, list[str]]:
    """What the fit's recipe did, read from ``recipe_trace_``: a short phrase and lines of detail.

    The phrase names the start the recipe kept (or a single fit's restarts); the details say why,
    and name any component left without a point.
    """
    steps = getattr(getattr(model, "recipe_trace_", None), "steps", None) or []

    def last(name: str) -> dict[str, Any]:
        return next((s for s in reversed(steps) if isinstance(s, dict) and s.get("step") == name), {})

    decision, fit = last("decision"), last("fit")
    details = []
    if "kept" in decision:
        short = f"start kept: {decision['kept']}"
        if decision.get("why"):
            details.append(f"why: {decision['why']}")
    else:
        settings = fit.get("settings") or {}
        start = fit.get("start") or settings.get("init")
        restarts = settings.get("n_init", 1)
        short = f"start: {start}" if isinstance(start, str) else "one start"
        if isinstance(restarts, int) and restarts > 1:
            short = f"{restarts} restarts from {start}, best restart {model.best_restart_}"
    empty = last("empty components")
    if empty.get("components"):
        details.append(
            f"warning: component(s) {empty['components']} ended without a point; {empty.get('why', '')}"
        )
    return short, details


def _print_summary(model: Any, shape: tuple[int, ...], y: np.ndarray | None) -> None:
    """What `fit` did: the recipe's start, the final loss, the cluster sizes and, with labels, the metrics."""
    from flowmix.metrics import clustering_scores

    k = int(model.n_components)
    final = float(model.loss_curve_[-1])
    kept, details = _recipe_summary(model)
    click.echo(
        f"fitted {k} components to {shape[0]} points x {shape[1]} features ({model.n_iter_} epochs, {kept})"
    )
    for line in details:
        click.echo(line)
    click.echo(f"final training loss ({model.algorithm_ or model.algorithm}): {final:.4f}")
    sizes = np.bincount(model.labels_, minlength=k)
    click.echo("cluster sizes: " + ", ".join(str(int(s)) for s in sizes))
    if y is not None:
        scores = clustering_scores(y, model.labels_)
        click.echo("metrics: " + ", ".join(f"{name}={value:.4f}" for name, value in scores.items()))


# ------------------------------------------------------------------------------------------------
# fit --plot


def _check_plot_path(plot: str) -> None:
    """Refuse, before any fitting, a --plot that could not be written: no matplotlib, no folder, no format."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(
            "--plot needs matplotlib, which is not installed: `pip install matplotlib`, or leave out --plot."
        ) from None
    path = Path(plot)
    folder = path.parent
    if not folder.is_dir():
        raise UserError(
            f"--plot {plot}: the folder {folder} does not exist; create it or choose another path."
        )
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise UserError(
            f"--plot {plot}: unknown image format {path.suffix or '(no extension)'}; end the name with one of "
            + ", ".join(f".{ext}" for ext in sorted(formats))
            + "."
        )


def _plot_clusters(model: Any, X: np.ndarray, names: list[str] | None, path: str) -> None:
    """Draw the training points coloured by cluster: 2-D data with the mixture's density contours,
    wider data on its two leading principal components. Written atomically; matplotlib's Agg canvas."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from flowmix.subspace import leading_directions

    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(model.labels_)
    k = int(model.n_components)
    palette = matplotlib.colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"]
    colours = palette(np.arange(k) % palette.N if k <= 20 else np.linspace(0, 1, k))
    fig = Figure(figsize=(6.4, 5.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    size = float(np.clip(3000 / max(len(X), 1), 1.0, 25.0))
    if X.shape[1] == 2:
        xy = X
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = 0.08 * np.where(hi > lo, hi - lo, 1.0)
        gx, gy = (np.linspace(a, b, 120) for a, b in zip(lo - pad, hi + pad, strict=True))
        xx, yy = np.meshgrid(gx, gy)
        grid = np.column_stack([xx.ravel(), yy.ravel()])
        log_density = np.asarray(model.score_samples(grid), dtype=np.float64).reshape(xx.shape)
        # Contours at the log densities of the training points' quantiles: the lines enclose about
        # 95%, 75%, 50% and 25% of the points, whatever the data's scale.
        at_points = np.asarray(model.score_samples(X), dtype=np.float64)
        levels = np.unique(np.quantile(at_points[np.isfinite(at_points)], [0.05, 0.25, 0.5, 0.75]))
        if levels.size and np.isfinite(log_density).any():
            ax.contour(
                xx,
                yy,
                log_density,
                levels=levels,
                colors="0.35",
                linewidths=0.8,
                linestyles="solid",
                zorder=1,
            )
        ax.set_xlabel(names[0] if names else "feature 0")
        ax.set_ylabel(names[1] if names else "feature 1")
        ax.set_title(
            f"{k} clusters; the mixture's density, contours around 25, 50, 75 and 95% of the points",
            fontsize=10,
        )
    else:
        centred = X - X.mean(axis=0)
        variances, directions = leading_directions(centred, min(2, X.shape[1]))
        xy = centred @ directions
        if xy.shape[1] == 1:  # one feature: spread the points along the cluster index
            xy = np.column_stack([xy[:, 0], labels + 0.0])
        total = float((centred**2).sum()) or 1.0
        shares = [f"{100 * v / total:.0f}%" for v in variances]
        ax.set_xlabel(f"principal component 1 ({shares[0]} of the variance)")
        ax.set_ylabel(
            f"principal component 2 ({shares[1]} of the variance)" if len(shares) > 1 else "cluster"
        )
        ax.set_title(
            f"{k} clusters of {X.shape[1]} features, on the two leading principal components", fontsize=10
        )
    ax.scatter(xy[:, 0], xy[:, 1], c=colours[labels], s=size, linewidths=0, zorder=2)
    if k <= 20:
        counts = np.bincount(labels, minlength=k)
        handles = [
            Line2D([], [], ls="", marker="o", color=colours[j], label=f"{j} ({counts[j]})") for j in range(k)
        ]
        ax.legend(handles=handles, title="cluster (points)", fontsize=8, title_fontsize=8, loc="best")
    atomic_write(path, lambda tmp: fig.savefig(tmp))


# ------------------------------------------------------------------------------------------------
# fit


@main.command("fit")
@click.argument("file", type=click.Path())
@click.option("-k", "--n-components", "k", type=int, required=True, help="Number of clusters (components).")
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Model directory to write. [default: ./<FILE stem>.flowmix]",
)
@click.option(
    "--preset",
    default=None,
    help="Start from a paper preset (paper-toy, paper-mnist, paper-fmnist, paper-cifar10, paper-pca).",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="Training epochs after pretraining (default: the preset's, or 200).",
)
@click.option(
    "--n-init",
    type=int,
    default=None,
    help="Restarts trained together, the best kept (default: the preset's; the default recipe trains one "
    "from the start it keeps).",
)
@click.option(
    "--label-column",
    default=None,
    help="Column with true labels (0-based index or header name): left out of the features, "
    "used to print clustering metrics.",
)
@click.option(
    "--preprocessing",
    type=click.Choice(PREPROCESSINGS),
    default=None,
    help="How the estimator rescales the features (FlowMixture's preprocessing; part of the saved "
    "model). [default: auto; with --preset, the preset's: none]",
)
@click.option(
    "--scale",
    type=click.Choice(SCALINGS),
    default=None,
    help="Rescale the table before the estimator sees it; predict and evaluate repeat it. "
    "[default: minmax (to [0, 1], the paper's protocol) with --preset, else none: --preprocessing "
    "rescales, and integer features stay integers, for the estimator's dequantisation]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu or cuda.")
@click.option(
    "--checkpoint-dir",
    type=click.Path(),
    default=None,
    help="Write a checkpoint there every 10 epochs; run the same command again to resume a killed fit.",
)
@click.option(
    "--early-stopping/--no-early-stopping",
    default=None,
    help="Hold out 10% of the rows and stop training (pretraining included) when their likelihood "
    "stops improving. [default: on when the default recipe trains from the Gaussian mixture, off "
    "when it trains from a graph partition, and off for the presets]",
)
@click.option(
    "--distributed",
    type=click.Choice(["restarts", "data"]),
    default=None,
    help="Under torchrun: split the restarts (exact) or the mini-batches (DDP) over the processes.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the clusters to this image (.png, .pdf, .svg, ...): 2-D data with the mixture's "
    "density contours, wider data on its two leading principal components. Needs matplotlib.",
)
@click.option("--verbose", "-v", is_flag=True,
              help="Show progress: a bar with the loss on a terminal, one log line per stage otherwise.")  # fmt: skip
def fit(
    file: str,
    k: int,
    out: str | None,
    preset: str | None,
    epochs: int | None,
    n_init: int | None,
    label_column: str | None,
    preprocessing: str | None,
    scale: str | None,
    seed: int,
    device: str,
    checkpoint_dir: str | None,
    early_stopping: bool | None,
    distributed: str | None,
    plot: str | None,
    verbose: bool,
) -> None:
    """Fit a mixture of flows with K components to the table FILE and save it.

    FILE: .csv/.tsv/.txt/.dat text, .npy or .parquet; one row per point.

    Without --preset this is flowmix's default recipe: the estimator rescales the features
    (--preprocessing) and dequantises integer-valued ones; Genie, spectral clustering and a
    Gaussian mixture propose partitions; the normalised cut of the k-nearest-neighbour graph
    picks one (a graph partition where it cuts clearly fewer edges than the Gaussian one,
    i.e. clusters separated by gaps, else the Gaussian mixture's); one mixture of spline flows
    is trained from that start. The summary names the start it kept.

    With --preset: the paper's settings on the table min-max scaled to [0, 1], --n-init restarts
    trained together and the best kept.

    Under torchrun (e.g. `torchrun --nproc-per-node 4 -m flowmix fit data.csv -k 3 --distributed
    restarts`), every process fits its share and the first writes the model.
    """
    from flowmix.datasets import read_table

    if k < 1:
        raise UserError(f"-k must be a positive integer, got {k}.")
    if plot is not None:
        _check_plot_path(plot)
    if scale is None:
        scale = "minmax" if preset else "none"
    column = _label_column(label_column)
    X, y, names = read_table(file, label_column=column)
    if X.shape[0] < k:
        raise UserError(f"{file} has {X.shape[0]} rows, fewer than k={k} clusters; lower -k.")
    prep = {**fit_table_scaling(X, scale), "feature_names": names, "label_column": column,
            "source": str(file)}  # fmt: skip
    # As read unless --scale asks otherwise: integer counts stay integers, so that the estimator's
    # dequantize="auto" sees them, and its preprocessing is the only rescaling.
    Xs = apply_scaling(X, prep)
    model = _estimator_from_args(
        k,
        preset,
        epochs=epochs,
        n_init=n_init,
        preprocessing=preprocessing,
        seed=seed,
        device=device,
        checkpoint_dir=checkpoint_dir,
        early_stopping=early_stopping,
        distributed=distributed,
        verbose=verbose,
    )
    if distributed is not None:
        from flowmix.distributed import init_from_environment, leave_group, world

        if not init_from_environment(device):
            raise UserError("--distributed needs several processes: launch with torchrun --nproc-per-node N.")
        rank = world()[0]
        if rank != 0:
            model.verbose = False  # one progress bar, the first process's
    model.fit(Xs)
    if distributed is not None:
        leave_group()
        if rank != 0:
            _end_process()  # every process holds the same model; the first one writes it
    target = Path(out) if out else Path.cwd() / f"{Path(file).stem}.flowmix"
    _save_model_dir(model, prep, target)

    _print_summary(model, X.shape, y)
    click.echo(f"model saved to {target}")
    if plot is not None:
        _plot_clusters(model, Xs, names, plot)
        click.echo(f"clusters drawn to {plot}")
    if distributed is not None:
        _end_process()


def _end_process() -> None:
    """Exit a torchrun process now, its output flushed, without the interpreter's teardown.

    gloo's threads can outlive ``destroy_process_group`` by a moment; a process whose interpreter
    is torn down meanwhile aborts ("terminate called without an active exception", exit code -6)
    although its work is done and written, which makes torchrun report the whole run as failed.
    It happens most on a loaded machine. Everything this command writes is atomic and complete here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.command("predict")
@click.argument("model_dir", type=click.Path())
@click.argument("file", type=click.Path())
@click.option("--out", type=click.Path(), default=None, help="CSV to write (default: standard output).")
@click.option("--proba", is_flag=True, help="Add the posterior probability of every cluster.")
@click.option("--label-column", default=None, help="Column of FILE to leave out (e.g. true labels).")
def predict(model_dir: str, file: str, out: str | None, proba: bool, label_column: str | None) -> None:
    """Cluster every row of FILE with the model in MODEL_DIR; write a CSV (cluster[, proba_*])."""
    model, prep = _load_model(model_dir)
    X, _ = _read_points(file, model, prep, label_column)
    labels = model.predict(X)
    header = ["cluster"]
    columns: list[np.ndarray] = [labels[:, None].astype(str)]
    if proba:
        P = model.predict_proba(X)
        header += [f"proba_{j}" for j in range(P.shape[1])]
        columns.append(np.char.mod("%.6g", P))
    table = np.concatenate(columns, axis=1)
    text = ",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in table)
    if out is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(out, text)
    click.echo(f"wrote {len(labels)} prediction(s) to {out}")


@main.command("evaluate")
@click.argument("model_dir", type=click.Path())
@click.argument("file", type=click.Path())
@click.option(
    "--label-column", required=True, help="Column with the true labels (0-based index or header name)."
)
def evaluate(model_dir: str, file: str, label_column: str) -> None:
    """Clustering metrics (purity, ARI, NMI, ACC) and mean log-likelihood of the model on FILE."""
    from flowmix.metrics import clustering_scores

    model, prep = _load_model(model_dir)
    X, y = _read_points(file, model, prep, label_column)
    labels = model.predict(X)
    scores = clustering_scores(y, labels)
    for name, value in scores.items():
        click.echo(f"{name:<8}{value:.4f}")
    click.echo(f"{'loglik':<8}{model.score(X):.4f}  (mean log density per point, scaled features)")
    sizes = np.bincount(labels, minlength=int(model.n_components))
    click.echo("cluster sizes: " + ", ".join(str(int(s)) for s in sizes))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
