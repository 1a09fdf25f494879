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

``datasets``, ``reproduce``, ``report`` and ``demo`` belong to the paper's reproduction harness
(:mod:`flowmix.paper.commands`); the rest are the library's. ``python -m flowmix`` runs the same
command line. User errors (a missing file, a bad ``k``, an
unknown data set, ...) print one line on stderr and exit with status 2, without a traceback.
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
from flowmix._io import atomic_write_dir, atomic_write_text
from flowmix.datasets.scaling import SCALINGS, apply_scaling, fit_scaling
from flowmix.paper.commands import PAPER_COMMANDS

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
    from flowmix.metrics import clustering_scores

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
            _end_process()  # every process holds the same model; the first one writes it
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
