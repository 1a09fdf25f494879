"""The ``flowmix`` command line: thin wrappers that call the library and print.

::

    flowmix fit data.csv -k 3 --label-column label     # fit, print loss and metrics, save the model
    flowmix predict data.flowmix new.csv --out clusters.csv
    flowmix evaluate data.flowmix data.csv --label-column label
    flowmix datasets                                   # what can be loaded, and where from
    flowmix reproduce toy                              # Figures 1-2 (+ animations) of the paper
    flowmix reproduce table1 --data-dir DATA           # Table 1
    flowmix reproduce contingency --data-dir DATA      # Tables 3-4
    flowmix report results/toy                         # re-write report.md / report.html
    flowmix demo                                       # `make demo`: the toy protocol and its report
    flowmix -v reproduce toy                           # also show the library's log (-vv: debug)

``python -m flowmix`` runs the same command line. User errors (a missing file, a bad ``k``, an
unknown data set, ...) print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

import flowmix
from flowmix._io import atomic_write_dir, atomic_write_text
from flowmix.datasets.scaling import SCALINGS, apply_scaling, fit_scaling

CLI_SIDECAR = "preprocessing.json"
#: Default output directory of `reproduce table1`, shared by `reproduce contingency`.
TABLE1_OUT = "results/table1"


# ------------------------------------------------------------------------------------------------
# Errors


class UserError(click.ClickException):
    """A mistake in the command's input: one line on stderr, exit status 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class _Group(click.Group):
    """Turns the library's input errors into :class:`UserError` for every sub-command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        # The library reports bad input as ValueError (DatasetError is one) or as a missing or
        # unusable path; anything else (a TypeError included) is a bug and keeps its traceback.
        except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError) as err:  # fmt: skip
            raise UserError(str(err) or type(err).__name__) from err


# ------------------------------------------------------------------------------------------------
# Small helpers


def _split_list(values: Sequence[str]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``."""
    out: list[str] = []
    for v in values:
        out += [part.strip() for part in str(v).split(",") if part.strip()]
    return out


def _label_column(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        return text


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    for i, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
        if i == 0:
            click.echo("  ".join("-" * w for w in widths))


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


# ------------------------------------------------------------------------------------------------
# reproduce


def _jobs_option(default: int) -> Callable:
    return click.option(
        "--jobs", type=click.IntRange(min=0), default=default, show_default=True,
        help="Processes that share the fits on this machine, each with its share of the CPU threads; "
        "toy-sized fits finish about N times sooner on N cores, "
        "image-sized ones are best left to one process. 0: one per CPU core (one on a GPU).",
    )  # fmt: skip


def _grid_options(default_out: str, default_methods: str) -> Callable:
    def decorate(fn: Callable) -> Callable:
        options = [
            click.option("--out", "out", default=default_out, show_default=True, type=click.Path(),
                         help="Output directory (records, figures, models, report)."),
            click.option("--datasets", "datasets", multiple=True,
                         help="Data sets to run (comma-separated or repeated). Default: all of this experiment."),
            click.option("--methods", "methods", multiple=True, default=(default_methods,), show_default=True,
                         help="Methods among flows, random, kmeans, gmm (comma-separated or repeated)."),
            click.option("--runs", type=int, default=None,
                         help="Runs per method, the best reported: baselines use seeds 0..runs-1; the flows' "
                         "runs are the restarts of one seeded fit. [default: 10; quick: 2]"),
            click.option("--epochs", type=int, default=None,
                         help="Override the epochs of the mixture of flows (default: the paper's preset)."),
            click.option("--device", default="cpu", show_default=True, help="Torch device of the flows: cpu or cuda."),
            click.option("--quick", is_flag=True,
                         help="Tiny smoke-run settings (2 runs, few epochs, subsampled image sets); "
                         "labelled quick in the records and the report."),
            click.option("--no-progress", is_flag=True, help="Hide the progress bars."),
            click.option("--no-report", is_flag=True, help="Do not write report.md / report.html afterwards."),
            _jobs_option(1),
        ]  # fmt: skip
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _image_options(fn: Callable) -> Callable:
    options = [
        click.option("--data-dir", type=click.Path(), default=None,
                     help="Folder with mnist/, fashion-mnist/, cifar-10/ (else $FLOWMIX_DATA or the cache)."),
        click.option("--max-samples", type=int, default=None,
                     help="Subsample each image set to at most this many points (quick: 2000)."),
        click.option("--save-models", is_flag=True, help="Also save the best model of each image set (large)."),
        click.option("--download/--no-download", default=True, show_default=True,
                     help="Download the files of data sets named with --datasets when missing."),
        click.option("--baselines-on-device", is_flag=True,
                     help="Run k-means and EM/GMM in torch on --device (for GPUs) instead of scikit-learn "
                     "on the CPU, the paper's protocol; recorded as a separate configuration."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run_reproduce(
    *,
    experiment: str,
    allowed: Sequence[str],
    default_datasets: Sequence[str],
    out: str,
    datasets: Sequence[str],
    methods: Sequence[str],
    runs: int | None,
    epochs: int | None,
    device: str,
    quick: bool,
    no_progress: bool,
    no_report: bool,
    data_dir: str | None = None,
    max_samples: int | None = None,
    save_models: bool = False,
    download: bool = True,
    snapshot_every: int | None = None,
    baselines_on_device: bool = False,
    seed: int | None = None,
    batch_order: str = "shared",
    shuffle_buffer: int | None = None,
    recipe_epochs: int | None = None,
    recipe_pretrain_epochs: int | None = None,
    jobs: int = 1,
) -> None:
    from flowmix.experiments.configs import get_dataset_config
    from flowmix.experiments.runner import GridSpec, check_device, run_grid
    from flowmix.experiments.workers import auto_jobs

    named = _split_list(datasets)
    explicit = bool(named)
    names = [get_dataset_config(n).name for n in named] if explicit else list(default_datasets)
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise UserError(
            f"{', '.join(wrong)} is not part of `reproduce {experiment}`; choose from {', '.join(allowed)}."
        )
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        # Started by torchrun: one GPU per process; the processes share the grid through its claims.
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    spec = GridSpec(
        datasets=names,
        methods=_split_list(methods),
        runs=runs,
        epochs=epochs,
        device=device,
        baselines_on_device=baselines_on_device,
        data_dir=data_dir,
        quick=quick,
        max_samples=max_samples,
        snapshot_every=snapshot_every,
        save_models=True if save_models else None,
        explicit=explicit,
        download=download,
        seed=seed,
        batch_order=batch_order,
        shuffle_buffer=shuffle_buffer,
        recipe_epochs=recipe_epochs,
        recipe_pretrain_epochs=recipe_pretrain_epochs,
    )
    if {"flows", "recipe"} & set(spec.methods) or baselines_on_device:
        check_device(device)
    mode = "QUICK smoke-run settings" if quick else "the paper's protocol"
    _echo_err(
        f"reproduce {experiment}: {', '.join(names)} x {', '.join(spec.methods)}, {spec.n_runs} runs each, "
        f"{mode}, device {device} -> {out}"
    )
    if jobs == 0:
        jobs = auto_jobs(device, len(names) * len(spec.methods) * spec.n_runs)
    summary = run_grid(spec, out, progress=not no_progress, echo=_echo_err, jobs=jobs)
    ran = [n for n in names if n not in {s for s, _ in summary.skipped_datasets}]
    click.echo(
        f"{summary.new_records} new record(s), {summary.skipped_records} already done, "
        + (f"{summary.claimed_elsewhere} left to another process, " if summary.claimed_elsewhere else "")
        + f"in {summary.seconds:.1f} s -> {Path(out) / 'records.jsonl'}"
    )
    if not ran:
        click.echo(
            f"No data set of `reproduce {experiment}` could be run (see the messages above); nothing to report."
        )
        return
    _print_best(out, ran, spec.methods)
    if not no_report:
        from flowmix.experiments.report import write_report

        files = write_report(out)
        click.echo(f"report: {files.html} and {files.markdown}")


def _print_best(out: str, datasets: Sequence[str], methods: Sequence[str]) -> None:
    from flowmix.experiments.configs import PAPER_TABLE1
    from flowmix.experiments.records import read_records, select_best
    from flowmix.experiments.tables import current_groups

    groups = current_groups(read_records(out))
    rows = []
    for name in datasets:
        for method in methods:
            group = groups.get((name, method))
            best = select_best(group) if group else None
            if best is None:
                continue
            metrics = best.get("metrics") or {}
            paper = PAPER_TABLE1.get((name, method), {})
            rows.append(
                [name, method, f"{best['run']}/{len(group)}", best.get("objective"), metrics.get("purity"),
                 metrics.get("ari"), metrics.get("nmi"), metrics.get("acc"), paper.get("acc")]
            )  # fmt: skip
    if rows:
        header = ["dataset", "method", "best/runs", "objective", "purity", "ARI", "NMI", "ACC", "paper ACC"]
        if all(row[-1] is None for row in rows):  # toy sets: the paper has figures only
            header, rows = header[:-1], [row[:-1] for row in rows]
        click.echo("")
        _print_table(header, rows)
        click.echo("")


@main.group(cls=_Group)
def reproduce() -> None:
    """Reproduce the paper's experiments (records.jsonl, figures, report)."""


@reproduce.command("toy")
@_grid_options("results/toy", "flows")
@click.option("--snapshot-every", type=int, default=None,
              help="Epochs between density frames of the animations. [default: 40; quick: 10]")  # fmt: skip
def reproduce_toy(snapshot_every: int | None, **kwargs: Any) -> None:
    """Figures 1-2 on the five toy sets, with an animated GIF of each best run's density."""
    from flowmix.experiments.configs import TOY_DATASETS

    names = [d.name for d in TOY_DATASETS]
    _run_reproduce(
        experiment="toy", allowed=names, default_datasets=names, snapshot_every=snapshot_every, **kwargs
    )


@reproduce.command("table1")
@_grid_options(TABLE1_OUT, "flows,random,kmeans,gmm")
@_image_options
@click.option(
    "--seed",
    type=int,
    default=None,
    help="random_state of the mixture of flows (another protocol draw of its runs). [default: 0]",
)
@click.option(
    "--batch-order",
    type=click.Choice(["shared", "per-restart"]),
    default="shared",
    show_default=True,
    help="One mini-batch order for all runs of the mixture of flows, or one per run (the reference "
    "code ran each in its own process).",
)
@click.option("--shuffle-buffer", type=int, default=None,
              help="Shuffle through a buffer of this many points (the reference code's 1024) instead of a full "
              "permutation each epoch.")  # fmt: skip
@click.option(
    "--recipe-epochs",
    type=int,
    default=None,
    help="n_epochs of the flowmix-default method (--methods recipe). [default: 200; quick: 5]",
)
@click.option("--recipe-pretrain-epochs", type=int, default=None,
              help="pretrain_epochs of the flowmix-default method. [default: 100; quick: 5]")  # fmt: skip
def reproduce_table1(**kwargs: Any) -> None:
    """Table 1: the mixture of flows, random labels, k-means and EM/GMM on the image sets.

    --methods recipe adds flowmix's default recipe (run i: FlowMixture(k, random_state=i), kept by
    its own selection score); --datasets also takes the learned-feature rows (mnist_umap10,
    mnist5_umap5, fmnist_umap10, cifar10_umap10, mnist_n2d10, mnist5_n2d5, fmnist_n2d10).

    Rows whose data files are missing are skipped with a message, unless named with --datasets.
    A results folder's tables show each row's most recent configuration: give each --seed,
    --batch-order or --shuffle-buffer draw its own --out to compare them.
    """
    from flowmix.experiments.configs import FEATURE_DATASETS, TABLE1_DATASETS

    names = [d.name for d in TABLE1_DATASETS]
    allowed = names + [d.name for d in FEATURE_DATASETS]
    _run_reproduce(experiment="table1", allowed=allowed, default_datasets=names, **kwargs)


@reproduce.command("contingency")
@_grid_options(TABLE1_OUT, "flows")
@_image_options
def reproduce_contingency(**kwargs: Any) -> None:
    """Tables 3-4: contingency tables of the best mixture-of-flows runs on MNIST5 and MNIST5_PCA.

    These are the MNIST5 and MNIST5_PCA flows runs of `reproduce table1`, so the default --out is
    table1's directory: records are keyed by their configuration, so runs that `reproduce table1`
    already finished with the same settings are reused, not fitted again. With another --out they
    are fitted there.
    """
    from flowmix.experiments.configs import CONTINGENCY_DATASETS

    _run_reproduce(
        experiment="contingency",
        allowed=list(CONTINGENCY_DATASETS),
        default_datasets=list(CONTINGENCY_DATASETS),
        **kwargs,
    )


@main.command("report")
@click.argument("directory", type=click.Path())
def report(directory: str) -> None:
    """Re-write report.md and report.html of an experiment DIRECTORY from its records."""
    from flowmix.experiments.report import write_report

    if not Path(directory).is_dir():
        raise UserError(f"No such directory: {directory}")
    files = write_report(directory)
    click.echo(f"report: {files.html} and {files.markdown}")
    for path in (files.table1_md, files.table1_csv, files.toy_csv):
        if path is not None:
            click.echo(f"table: {path}")


@main.command("demo")
@click.option("--out", default="results/demo", show_default=True, type=click.Path(), help="Output directory.")
@click.option("--quick", is_flag=True, help="Tiny settings (2 runs, 200 epochs) for a smoke run.")
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu or cuda.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@_jobs_option(0)
def demo(out: str, quick: bool, device: str, no_progress: bool, jobs: int) -> None:
    """What `make demo` runs: the paper's protocol and flowmix's default recipe on the five toy sets.

    First `reproduce toy` (the paper's MAF preset, 10 runs x 2000 epochs per set), then
    `FlowMixture(k, random_state=0)` (flowmix's default: spline flows, spectral/GMM/k-means
    starts, hard EM) beside k-means, a GMM and spectral clustering on the same sets; the report
    (report.html) shows both, with a figure of every method's clusters. The fits of both halves
    run side by side, one process per CPU core (--jobs).
    """
    from flowmix.experiments.comparison import compare_on_toy_sets
    from flowmix.experiments.configs import TOY_DATASETS
    from flowmix.experiments.report import write_report
    from flowmix.experiments.workers import auto_jobs

    names = [d.name for d in TOY_DATASETS]
    jobs = jobs or auto_jobs(device, len(names))
    _run_reproduce(
        experiment="toy",
        allowed=names,
        default_datasets=names,
        out=out,
        datasets=(),
        methods=("flows",),
        runs=None,
        epochs=None,
        device=device,
        quick=quick,
        no_progress=no_progress,
        no_report=True,
        jobs=jobs,
    )
    _echo_err("flowmix's default recipe beside k-means, a GMM and spectral clustering:")
    compare_on_toy_sets(out, names, seed=0, quick=quick, echo=_echo_err, jobs=jobs)
    files = write_report(out)
    click.echo(f"report: {files.html} and {files.markdown}")


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
    return apply_scaling(X.astype(np.float64), prep), y


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
@click.option("--n-init", type=int, default=None, help="Restarts trained together; the best is kept.")
@click.option(
    "--label-column",
    default=None,
    help="Column with true labels (0-based index or header name): left out of the features, "
    "used to print clustering metrics.",
)
@click.option(
    "--scale",
    type=click.Choice(SCALINGS),
    default="minmax",
    show_default=True,
    help="Rescale the features before fitting (the paper: min-max to [0, 1]); predict repeats it.",
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
    help="Hold out 10% of the rows and stop each restart (pretraining included) when their "
    "likelihood stops improving. [default: on for the default's full-covariance fit, off for its "
    "diagonal one and for the presets]",
)
@click.option(
    "--distributed",
    type=click.Choice(["restarts", "data"]),
    default=None,
    help="Under torchrun: split the restarts (exact) or the mini-batches (DDP) over the processes.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show a progress bar with the loss.")  # fmt: skip
def fit(
    file: str,
    k: int,
    out: str | None,
    preset: str | None,
    epochs: int | None,
    n_init: int | None,
    label_column: str | None,
    scale: str,
    seed: int,
    device: str,
    checkpoint_dir: str | None,
    early_stopping: bool | None,
    distributed: str | None,
    verbose: bool,
) -> None:
    """Fit a mixture of flows with K components to the table FILE and save it.

    FILE: .csv/.tsv/.txt/.dat text, .npy or .parquet; one row per point.

    Without --preset this is flowmix's default recipe: spline flows; 3 restarts started from
    spectral clustering (kNN graph), a GMM and k-means, each component pretrained on its cluster,
    then hard EM. It first fits with every component started as its cluster's full-covariance
    Gaussian (10% of the rows held out) and keeps the restart whose clusters Gaussians fit best.
    If that model is within 0.2 nats per point and dimension of a GMM on the held-out rows, the
    clusters are about Gaussian and it refits that restart with soft EM, which it keeps. If it
    beats the GMM by more, the clusters are not Gaussian: it fits again with diagonal bases on
    all rows, and keeps that fit's restart or the first fit's model, whichever partition the
    kNN graph's spectral embedding supports best (spectral clustering's objective).

    Under torchrun (e.g. `torchrun --nproc-per-node 4 -m flowmix fit data.csv -k 3 --distributed
    restarts`), every process fits its share and the first writes the model.
    """
    from flowmix import FlowMixture
    from flowmix.datasets import read_table
    from flowmix.eval.metrics import clustering_scores

    if k < 1:
        raise UserError(f"-k must be a positive integer, got {k}.")
    column = _label_column(label_column)
    X, y, names = read_table(file, label_column=column)
    if X.shape[0] < k:
        raise UserError(f"{file} has {X.shape[0]} rows, fewer than k={k} clusters; lower -k.")
    prep = {**fit_scaling(X.astype(np.float64), scale), "feature_names": names, "label_column": column,
            "source": str(file)}  # fmt: skip
    Xs = apply_scaling(X.astype(np.float64), prep)
    overrides: dict[str, Any] = {"device": device, "random_state": seed, "verbose": verbose}
    overrides.update(checkpoint_dir=checkpoint_dir, distributed=distributed)
    if early_stopping is not None:
        overrides["early_stopping"] = early_stopping
    if epochs is not None:
        overrides["n_epochs"] = epochs
    if n_init is not None:
        overrides["n_init"] = n_init
    model = FlowMixture.from_preset(preset, k, **overrides) if preset else FlowMixture(k, **overrides)
    try:
        model._check_params()  # the estimator's own validation, before the data are touched
    except TypeError as err:  # a parameter of the wrong type: the user's input, not a bug
        raise UserError(str(err)) from err
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
            return  # every process holds the same model; the first one writes it
    target = Path(out) if out else Path.cwd() / f"{Path(file).stem}.flowmix"
    _save_model_dir(model, prep, target)

    final = float(model.loss_curve_[-1])
    click.echo(
        f"fitted {k} components to {X.shape[0]} points x {X.shape[1]} features "
        f"({model.n_iter_} epochs, {model.n_init} restart(s), best restart {model.best_restart_})"
    )
    click.echo(f"final training loss ({model.algorithm_ or model.algorithm}): {final:.4f}")
    sizes = np.bincount(model.labels_, minlength=k)
    click.echo("cluster sizes: " + ", ".join(str(int(s)) for s in sizes))
    if y is not None:
        scores = clustering_scores(y, model.labels_)
        click.echo("metrics: " + ", ".join(f"{name}={value:.4f}" for name, value in scores.items()))
    click.echo(f"model saved to {target}")


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
    from flowmix.eval.metrics import clustering_scores

    model, prep = _load_model(model_dir)
    X, y = _read_points(file, model, prep, label_column)
    labels = model.predict(X)
    scores = clustering_scores(y, labels)
    for name, value in scores.items():
        click.echo(f"{name:<8}{value:.4f}")
    click.echo(f"{'loglik':<8}{model.score(X):.4f}  (mean log density per point, scaled features)")
    sizes = np.bincount(labels, minlength=int(model.n_components))
    click.echo("cluster sizes: " + ", ".join(str(int(s)) for s in sizes))


@main.command("datasets")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the image sets.")
def datasets(data_dir: str | None) -> None:
    """List the data sets flowmix can load, and whether their files are present."""
    from flowmix.datasets import list_datasets

    rows = [
        [r["name"], r["kind"], r["n_samples"], r["n_features"], r["n_classes"],
         "yes" if r["available"] else "no", r["location"] or ("bundled/generated" if r["kind"] == "toy" else "-")]
        for r in list_datasets(data_dir)
    ]  # fmt: skip
    _print_table(["name", "kind", "samples", "features", "classes", "available", "location"], rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
