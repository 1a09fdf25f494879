"""The harness's command line: ``reproduce``, ``report``, ``demo`` and ``datasets``.

These commands are the harness's one entry point: :mod:`flowmix.cli` adds :data:`PAPER_COMMANDS`
to the ``flowmix`` command line beside the library's own (``fit``, ``predict``, ``evaluate``).
Everything heavy is imported when a command runs, so ``flowmix --help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from flowmix._cli_common import CommandGroup, UserError, echo_err, print_table, split_list

#: Default output directory of `reproduce table1`, shared by `reproduce contingency`.
TABLE1_OUT = "results/table1"


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
    from flowmix.paper.configs import get_dataset_config
    from flowmix.paper.runner import GridSpec, check_device, run_grid
    from flowmix.paper.workers import auto_jobs

    named = split_list(datasets)
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
        methods=split_list(methods),
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
    echo_err(
        f"reproduce {experiment}: {', '.join(names)} x {', '.join(spec.methods)}, {spec.n_runs} runs each, "
        f"{mode}, device {device} -> {out}"
    )
    if jobs == 0:
        jobs = auto_jobs(device, len(names) * len(spec.methods) * spec.n_runs)
    summary = run_grid(spec, out, progress=not no_progress, echo=echo_err, jobs=jobs)
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
        from flowmix.paper.report import write_report

        files = write_report(out)
        click.echo(f"report: {files.html} and {files.markdown}")


def _print_best(out: str, datasets: Sequence[str], methods: Sequence[str]) -> None:
    from flowmix.paper.configs import PAPER_TABLE1
    from flowmix.paper.records import read_records, select_best
    from flowmix.paper.tables import current_groups

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
        print_table(header, rows)
        click.echo("")


@click.group(cls=CommandGroup)
def reproduce() -> None:
    """Reproduce the paper's experiments (records.jsonl, figures, report)."""


@reproduce.command("toy")
@_grid_options("results/toy", "flows")
@click.option("--snapshot-every", type=int, default=None,
              help="Epochs between density frames of the animations. [default: 40; quick: 10]")  # fmt: skip
def reproduce_toy(snapshot_every: int | None, **kwargs: Any) -> None:
    """Figures 1-2 on the five toy sets, with an animated GIF of each best run's density."""
    from flowmix.paper.configs import TOY_DATASETS

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
    from flowmix.paper.configs import FEATURE_DATASETS, TABLE1_DATASETS

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
    from flowmix.paper.configs import CONTINGENCY_DATASETS

    _run_reproduce(
        experiment="contingency",
        allowed=list(CONTINGENCY_DATASETS),
        default_datasets=list(CONTINGENCY_DATASETS),
        **kwargs,
    )


@click.command("report")
@click.argument("directory", type=click.Path())
def report(directory: str) -> None:
    """Re-write report.md and report.html of an experiment DIRECTORY from its records."""
    from flowmix.paper.report import write_report

    if not Path(directory).is_dir():
        raise UserError(f"No such directory: {directory}")
    files = write_report(directory)
    click.echo(f"report: {files.html} and {files.markdown}")
    for path in (files.table1_md, files.table1_csv, files.toy_csv):
        if path is not None:
            click.echo(f"table: {path}")


@click.command("demo")
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
    from flowmix.paper.comparison import compare_on_toy_sets
    from flowmix.paper.configs import TOY_DATASETS
    from flowmix.paper.report import write_report
    from flowmix.paper.workers import auto_jobs

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
    echo_err("flowmix's default recipe beside k-means, a GMM and spectral clustering:")
    compare_on_toy_sets(out, names, seed=0, quick=quick, echo=echo_err, jobs=jobs)
    files = write_report(out)
    click.echo(f"report: {files.html} and {files.markdown}")


@click.command("datasets")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the image sets.")
def datasets(data_dir: str | None) -> None:
    """List the data sets flowmix can load, and whether their files are present."""
    from flowmix.paper.data import list_datasets

    rows = [
        [r["name"], r["kind"], r["n_samples"], r["n_features"], r["n_classes"],
         "yes" if r["available"] else "no", r["location"] or ("bundled/generated" if r["kind"] == "toy" else "-")]
        for r in list_datasets(data_dir)
    ]  # fmt: skip
    print_table(["name", "kind", "samples", "features", "classes", "available", "location"], rows)


#: The commands :mod:`flowmix.cli` adds to the ``flowmix`` group.
PAPER_COMMANDS: tuple[click.Command, ...] = (reproduce, report, demo, datasets)
