"""Is the paper preset's gap to the paper noise or an error? Several protocol draws of the mixture of flows.

One protocol draw is what `flowmix reproduce table1` runs for the mixture of flows: one fit of the
paper preset with 10 restarts, the restart with the lowest final training loss reported. This runs
``--seeds`` draws per variant on each set and asks where the paper's numbers fall among them:

- ``shared``: flowmix's protocol (one mini-batch order per epoch for all restarts, a full permutation);
- ``per-restart``: every restart its own order (the reference code ran each in its own process);
- ``buffer``: TensorFlow's 1024-point shuffle buffer over the stored order (the reference's input);
- ``reference``: both.

Each draw is a `reproduce table1` run in its own folder under ``--out`` (resumable: a finished draw
is not run again). Prints a markdown table per set and writes ``<out>/fidelity_<set>.png``: the
best-by-loss ACC of every draw per variant, all restarts faint, the paper's value as a line.

    .venv/bin/python benchmarks/fidelity_draws.py [--sets mnist5_pca] [--seeds 0 1 2 3 4]
        [--variants shared,per-restart,buffer,reference] [--out results/fidelity] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flowmix.paper.configs import PAPER_TABLE1
from flowmix.paper.records import read_records
from flowmix.paper.runner import GridSpec, run_grid

VARIANTS: dict[str, dict] = {
    "shared": {},
    "per-restart": {"batch_order": "per-restart"},
    "buffer": {"shuffle_buffer": 1024},
    "reference": {"batch_order": "per-restart", "shuffle_buffer": 1024},
}
METRICS = ("acc", "ari", "nmi", "purity")


def draw_folder(out: Path, name: str, variant: str, seed: int) -> Path:
    return out / f"{name}-{variant}-seed{seed}"


def run_draw(out: Path, name: str, variant: str, seed: int, data_dir: str | None) -> None:
    spec = GridSpec(
        datasets=[name], methods=["flows"], seed=seed, data_dir=data_dir, explicit=True, **VARIANTS[variant]
    )
    summary = run_grid(spec, draw_folder(out, name, variant, seed), progress=False, echo=print)
    print(
        f"{name} {variant} seed {seed}: {summary.new_records} new record(s) in {summary.seconds:.0f} s",
        flush=True,
    )


def draw_records(out: Path, name: str, variant: str, seed: int) -> list[dict]:
    """The finished restarts of one draw (empty if it has not run)."""
    return [r for r in read_records(draw_folder(out, name, variant, seed)) if r["method"] == "flows"]


def best_by(records: list[dict], key: str) -> dict | None:
    """The restart with the lowest ``key`` (the paper's rule with flowmix's or the reference's epoch loss)."""
    usable = [r for r in records if r.get(key) is not None and r.get("metrics")]
    return min(usable, key=lambda r: (r[key], r["run"])) if usable else None


# (row label, variant, objective): flowmix's epoch loss weights batches by size, the reference's
# weights them equally; "reference" is the reference code's protocol in all three respects.
ROWS = [(v, v, "objective") for v in VARIANTS] + [
    ("reference, batch-mean loss", "reference", "objective_batch_mean")
]


def summarise(out: Path, name: str, variants: list[str], seeds: list[int]) -> None:
    paper = PAPER_TABLE1[(name, "flows")]
    print(f"\n### {name}: the best restart by final loss of each draw (seeds {', '.join(map(str, seeds))})\n")
    print(
        "| protocol | draws | "
        + " | ".join(f"{m} mean (min-max)" for m in METRICS)
        + " | paper ACC inside | draws >= paper ACC | restarts >= paper ACC | fit s |"
    )
    print("|---|---|" + "---|" * len(METRICS) + "---|---|---|---|")
    plotted = {}
    for label, variant, key in ROWS:
        if variant not in variants:
            continue
        draws = [draw_records(out, name, variant, s) for s in seeds]
        bests = [best_by(d, key) for d in draws if d]
        bests = [b for b in bests if b is not None]
        if not bests:
            continue
        values = {m: np.array([b["metrics"][m] for b in bests]) for m in METRICS}
        cells = [f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})" for v in values.values()]
        inside = values["acc"].min() <= paper["acc"] <= values["acc"].max()
        seconds = np.mean([b["fit_seconds"] for b in bests])
        print(
            f"| {label} | {len(bests)} | "
            + " | ".join(cells)
            + f" | {'yes' if inside else 'no'} | {int((values['acc'] >= paper['acc']).sum())}"
            + f" | {sum(r['metrics']['acc'] >= paper['acc'] for d in draws for r in d if r.get('metrics'))}"
            + f" of {sum(1 for d in draws for r in d if r.get('metrics'))} | {seconds:.0f} |"
        )
        if key == "objective":
            everything = [[r["metrics"]["acc"] for r in d if r.get("metrics")] for d in draws if d]
            plotted[variant] = (values["acc"], [np.array(e) for e in everything])
    print("\npaper: " + ", ".join(f"{m} {paper[m]:.3f}" for m in METRICS))
    if plotted:
        _figure(out / f"fidelity_{name}.png", name, plotted, paper["acc"])


def _figure(path: Path, name: str, plotted: dict, paper_acc: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(plotted), 3.2))
    rng = np.random.default_rng(0)
    for i, (bests, restarts) in enumerate(plotted.values()):
        everything = np.concatenate(restarts)
        ax.scatter(i + rng.uniform(-0.25, 0.25, everything.size), everything, s=6, color="0.75", zorder=1)
        ax.scatter(i + rng.uniform(-0.1, 0.1, bests.size), bests, s=28, color="C0", zorder=2)
    ax.axhline(paper_acc, color="C3", linestyle="--", label=f"paper {paper_acc:.3f}")
    ax.set_xticks(range(len(plotted)), list(plotted))
    ax.set_ylabel("ACC")
    ax.set_title(f"{name}: best-by-loss per draw (blue), all restarts (grey)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="mnist5_pca")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", default="shared,per-restart,buffer,reference")
    parser.add_argument("--out", type=Path, default=Path("results/fidelity"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--summary-only", action="store_true", help="Summarise the finished draws; run none.")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    names = args.sets.split(",")
    if not args.summary_only:
        for name in names:  # seed-major, so that a stopped run leaves every variant about as many draws
            for seed in args.seeds:
                for variant in variants:
                    run_draw(args.out, name, variant, seed, args.data_dir)
    for name in names:
        summarise(args.out, name, variants, args.seeds)


if __name__ == "__main__":
    main()
