"""The default's labels on every set of the shared battery, written for a refactor's before/after check.

A change meant to keep behaviour (a refactor) must leave every label of ``FlowMixture(k,
random_state=seed)`` unchanged on the same machine. Run it before the change and after, then compare:

    python benchmarks/battery_labels.py --seeds 0 1 --out before.npz
    python benchmarks/battery_labels.py --seeds 0 1 --out after.npz
    python benchmarks/battery_labels.py --compare before.npz after.npz

The output is written atomically at the end; an interrupted run resumes from ``OUT.partial.npz``,
which holds the fits done so far.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchsuite

from flowmix import FlowMixture


def key(name: str, seed: int) -> str:
    return f"{name}@{seed}"


def record(seeds: list[int], out: Path) -> None:
    partial = out.with_suffix(".partial.npz")
    labels = dict(np.load(partial)) if partial.exists() else {}
    for name in benchsuite.names():
        data = benchsuite.load(name)
        for seed in seeds:
            if key(name, seed) in labels:
                continue
            start = time.perf_counter()
            labels[key(name, seed)] = FlowMixture(data.n_clusters, random_state=seed).fit_predict(data.X)
            print(f"{name} seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
            np.savez(partial, **labels)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **labels)
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)


def compare(before: Path, after: Path) -> int:
    a, b = np.load(before), np.load(after)
    missing = sorted(set(a.files) ^ set(b.files))
    changed = [k for k in sorted(set(a.files) & set(b.files)) if not np.array_equal(a[k], b[k])]
    print(f"{len(set(a.files) & set(b.files))} fits compared; {len(changed)} differ; {len(missing)} missing")
    for k in changed + missing:
        print("  ", k)
    return 1 if changed or missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("give --out FILE.npz or --compare BEFORE AFTER")
    record(args.seeds, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
