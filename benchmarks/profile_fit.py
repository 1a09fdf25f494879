"""Where the default fit's time goes, stage by stage (wall-clock timers around each stage's function).

For each set, ``FlowMixture(k, random_state=0).fit(X)`` runs once with timers wrapped around
the functions that make up its stages: the candidates recipe's three partitions (Genie, spectral
clustering, the best of 10 GMM runs) and their normalised cuts, pretraining, EM (and the E-steps
inside it), selection of the kept restart and the labelling of every point; "trainings" counts
the trainings the recipe ran.
The timers cost microseconds per call (cProfile, tried first, made the spline's many small
operations ten times slower). Prints a markdown table.

    .venv/bin/python benchmarks/profile_fit.py
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.preprocessing import StandardScaler

import flowmix.distributed
import flowmix.fitting
import flowmix.init
import flowmix.recipes
import flowmix.training.algorithms
import flowmix.training.core
from flowmix import FlowMixture, load_dataset

# (column, owner, name): where each stage's function is looked up when the fit calls it (a module
# or class attribute, or a registry entry). A function imported by name into several modules is
# looked up in each of them, so it has one row per module, under one column.
STAGES = [
    ("Genie", flowmix.init.INITIALISATIONS, "genie"),
    ("spectral", flowmix.init.INITIALISATIONS, "spectral"),
    ("GMM (10 runs)", flowmix.init.INITIALISATIONS, "gmm-best"),
    ("cuts", flowmix.recipes, "normalised_cuts"),
    ("pretraining", flowmix.fitting, "pretrain"),
    ("EM", flowmix.training.algorithms, "expectation_maximisation"),
    ("E-steps and scores", flowmix.training.algorithms, "joint_log_prob_in_chunks"),
    ("E-steps and scores", flowmix.training.core, "joint_log_prob_in_chunks"),
    ("selection", flowmix.distributed, "select"),
    ("labels", flowmix.fitting.Trainer, "_labels"),
    ("trainings", flowmix.fitting.Trainer, "train"),
]
COLUMNS = list(dict.fromkeys(column for column, _, _ in STAGES))


@contextlib.contextmanager
def timed(seconds: dict[str, float], calls: dict[str, int]) -> Iterator[None]:
    """Wrap every stage's function with a timer for the duration of the block."""
    originals = [(owner, name, _get(owner, name)) for _, owner, name in STAGES]

    def wrap(column: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timer(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[column] += time.perf_counter() - started
                calls[column] += 1

        return timer

    try:
        for (column, owner, name), (_, _, function) in zip(STAGES, originals, strict=True):
            _set(owner, name, wrap(column, function))
        yield
    finally:
        for owner, name, function in originals:
            _set(owner, name, function)


def _get(owner: Any, name: str) -> Callable[..., Any]:
    return owner[name] if isinstance(owner, dict) else getattr(owner, name)


def _set(owner: Any, name: str, function: Callable[..., Any]) -> None:
    if isinstance(owner, dict):
        owner[name] = function
    else:
        setattr(owner, name, function)


def sets() -> dict[str, tuple[np.ndarray, int]]:
    out = {name: (load_dataset(name).X, k) for name, k in (("moons", 2), ("pinwheel", 5), ("smile", 4))}
    for name, loader, k in (("wine", load_wine, 3), ("breast cancer", load_breast_cancer, 2)):
        out[name] = (StandardScaler().fit_transform(loader().data).astype(np.float32), k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=None, help="Set names (default: all).")
    args = parser.parse_args()
    chosen = sets()
    names = args.sets or list(chosen)
    header = ["set", "N x D", "fit (s)", *COLUMNS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in names:
        X, k = chosen[name]
        seconds: dict[str, float] = collections.defaultdict(float)
        calls: dict[str, int] = collections.defaultdict(int)
        started = time.perf_counter()
        with timed(seconds, calls):
            FlowMixture(k, random_state=0).fit(X)
        total = time.perf_counter() - started
        cells = [f"{seconds[column]:.2f}" for column in COLUMNS[:-1]] + [str(calls["trainings"])]
        print(f"| {name} | {X.shape[0]} x {X.shape[1]} | {total:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
