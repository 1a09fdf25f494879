"""How the cost of a fit grows: time against N, K and D, and the peak memory of raw-pixel fits.

The model is the paper's image model (:mod:`flowmix.presets`: one MAF layer with 1024 tanh hidden
units, Adam at 1e-3), one restart (``n_init=1``: restarts are stacked flows, so R restarts cost R
times one, and one keeps the runs short), a fixed number of epochs on U(0, 1) data:

1. N sweep: fit time against N on the PCA-size model (``paper-pca``: D=100, batch 1000, K=10),
   and a shorter one on the raw-pixel model (``paper-mnist``: D=784, batch 4000); a least-squares
   slope of log(time) on log(N) says how it grows (1 = linear);
2. K sweep and D sweep at fixed N (D=100, batch 1000; K=10 for the D sweep);
3. peak memory (the process's resident-set high-water mark, reset once the data are loaded) of one
   epoch of a fit on raw MNIST (70000 x 784, K=10, ``paper-mnist``) and raw CIFAR-10 (50000 x 3072,
   K=10, ``paper-cifar10``), each in a fresh process, on the real images when ``$FLOWMIX_DATA`` holds
   them, else on random data of the same shape; with what each further restart adds (a two-step fit
   with 1 and 2 restarts) so the paper's 10 restarts can be read off.

Each fit's time is split with an epoch callback: *train* is from the call to the last epoch's end
(initialisation, data transfer and the epochs), *labels* the rest of ``fit`` (selection and the
labelling of the training points at the estimator's ``inference_dtype``, see ``FlowMixture.fit``).

Run:  .venv/bin/python benchmarks/cost_growth.py [--epochs 2] [--write]
      (--write puts the section into benchmarks/RESULTS.md, below the marker line)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from predict_throughput import peak_rss_mib, reset_peak_rss

from flowmix import FlowMixture

RESULTS = Path(__file__).with_name("RESULTS.md")
KEEP_MARKER = "<!-- Sections below come from their own commands; run_all.py keeps them. -->"
BEGIN = "<!-- cost_growth.py: begin -->"
END = "<!-- cost_growth.py: end -->"

N_SWEEP = (1000, 3000, 10000, 30000, 100000)
N_SWEEP_RAW = (1000, 3000, 10000)
K_SWEEP = (1, 2, 5, 10, 20)
D_SWEEP = (25, 50, 100, 200, 400, 784)
MEMORY_CASES = {
    # name: (data set, preset, shape of the random stand-in)
    "mnist": ("mnist", "paper-mnist", (70000, 784)),
    # The 50000 training images (the first 50000 rows of the 60000), to keep the run shorter.
    "cifar10": ("cifar10", "paper-cifar10", (50000, 3072)),
}


# ------------------------------------------------------------------------------------------------
# Timing


def timed_fit(X: np.ndarray, k: int, preset: str, epochs: int, **overrides) -> dict:
    """Fit ``preset`` with one restart; wall time split into train and labels (see the module doc)."""
    marks: list[float] = []
    model = FlowMixture.from_preset(preset, k, n_epochs=epochs, n_init=1, random_state=0, **overrides)
    start = time.perf_counter()
    model.fit(X, callback=lambda epoch, density: marks.append(time.perf_counter()), callback_every=1)
    end = time.perf_counter()
    train = (marks[-1] if marks else end) - start
    n, d = X.shape
    return {
        "n": n,
        "d": d,
        "k": k,
        "epochs": epochs,
        "fit_s": end - start,
        "train_s": train,
        "labels_s": end - start - train,
        "us_per_point_epoch": train / (n * epochs) * 1e6,
    }


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x): 1 means y grows in proportion to x; nan for < 2 points."""
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _slope(rows: list[dict], x: str, y: str, at_least: int = 0) -> float:
    kept = [r for r in rows if r[x] >= at_least]
    return loglog_slope([r[x] for r in kept], [r[y] for r in kept])


def sweeps(epochs: int, sizes: tuple[int, ...], sizes_raw: tuple[int, ...], n_fixed: int) -> dict:
    rng = np.random.default_rng(0)
    timed_fit(rng.random((500, 100)), 10, "paper-pca", 1)  # warm-up: first-call costs out of the figures
    out: dict[str, list[dict]] = {"n": [], "n_raw": [], "k": [], "d": []}
    for n in sizes:
        out["n"].append(timed_fit(rng.random((n, 100)), 10, "paper-pca", epochs))
        _progress(out["n"][-1])
    for n in sizes_raw:
        out["n_raw"].append(timed_fit(rng.random((n, 784)), 10, "paper-mnist", epochs))
        _progress(out["n_raw"][-1])
    X = rng.random((n_fixed, 100))
    for k in K_SWEEP:
        out["k"].append(timed_fit(X, k, "paper-pca", epochs))
        _progress(out["k"][-1])
    for d in D_SWEEP:
        out["d"].append(timed_fit(rng.random((n_fixed, d)), 10, "paper-pca", epochs))
        _progress(out["d"][-1])
    return out


def _progress(row: dict) -> None:
    print(
        f"  N={row['n']} D={row['d']} K={row['k']}: fit {row['fit_s']:.2f} s "
        f"(train {row['train_s']:.2f} s, labels {row['labels_s']:.2f} s)",
        file=sys.stderr,
        flush=True,
    )


# ------------------------------------------------------------------------------------------------
# Memory (one fresh process per case)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_case(name: str, restarts: int, max_points: int | None, epochs: int) -> dict:
    """Peak RSS of one fit of case ``name``; runs in the calling process (a fresh one)."""
    dataset, preset, shape = MEMORY_CASES[name]
    source = "random U(0,1)"
    X = None
    if os.environ.get("FLOWMIX_DATA"):
        from flowmix.paper.data import load_dataset

        try:
            X = np.asarray(load_dataset(dataset, download=False).X)
            source = f"{dataset} from $FLOWMIX_DATA"
        except (ValueError, OSError) as err:
            print(f"  {dataset}: {err}; random data instead", file=sys.stderr)
    if X is None:
        X = np.random.default_rng(0).random(shape, dtype=np.float32)
    X = X[: shape[0] if max_points is None else max_points]
    before = _rss_mib()
    resettable = reset_peak_rss()
    start = time.perf_counter()
    model = FlowMixture.from_preset(preset, 10, n_epochs=epochs, n_init=restarts, random_state=0)
    model.fit(X)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    return {
        "case": name,
        "source": source,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "dtype": str(X.dtype),
        "restarts": restarts,
        "epochs": epochs,
        "batch": model.batch_size,
        "data_mib": X.nbytes / 2**20,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "peak_reset": resettable,
        "fit_s": seconds,
        "n_parameters": int(sum(p.numel() for p in model.density_.parameters())),
    }


def run_memory_case(name: str, restarts: int, max_points: int | None, epochs: int, timeout: float) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--memory-case",
        name,
        "--restarts",
        str(restarts),
        "--epochs",
        str(epochs),
    ]
    if max_points is not None:
        cmd += ["--max-points", str(max_points)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"case": name, "restarts": restarts, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"case": name, "restarts": restarts, "error": done.stderr.strip().splitlines()[-1:]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  memory {name} R={restarts} N={row['n']}: peak {row['peak_rss_mib']:.0f} MiB in {row['fit_s']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return row


def memory(timeout: float) -> list[dict]:
    rows = []
    for name, (_, preset, _) in MEMORY_CASES.items():
        rows.append(run_memory_case(name, 1, None, 1, timeout))
        # What one more restart adds: two short fits (two batches of points, one epoch).
        small = 2 * FlowMixture.from_preset(preset, 10).batch_size
        rows.append(run_memory_case(name, 1, small, 1, timeout))
        rows.append(run_memory_case(name, 2, small, 1, timeout))
    return rows


# ------------------------------------------------------------------------------------------------
# Report


def _table(rows: list[dict], first: str) -> list[str]:
    lines = [
        f"| {first} | fit s | train s | labels s | train µs per point-epoch |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r[first.lower()]} | {r['fit_s']:.2f} | {r['train_s']:.2f} | {r['labels_s']:.2f} | "
            f"{r['us_per_point_epoch']:.1f} |"
        )
    return lines


def render(result: dict, args: argparse.Namespace, seconds: float) -> str:
    s = result["sweeps"]
    epochs = args.epochs
    lines = [
        BEGIN,
        f"## Cost growth: fit time against N, K and D; peak memory (`benchmarks/cost_growth.py --epochs {epochs}`)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu; "
        f"the whole command took {seconds / 60:.1f} min",
        f"- one restart (`n_init=1`), {epochs} epochs, U(0,1) data, one measurement per row; *train* = "
        "initialisation + epochs, *labels* = the rest of `fit` (selection and labels of the training "
        "points at the default `inference_dtype`)",
        "",
    ]
    if s["n"]:
        rows = s["n"]
        lines += [
            f"### N sweep, PCA-size model (`paper-pca`: D=100, K=10, 1024 hidden, batch 1000, {epochs} epochs)",
            "",
            *_table(rows, "N"),
            "",
            f"log-log slope of train time on N: **{_slope(rows, 'n', 'train_s'):.2f}** "
            f"(N >= 10k: {_slope(rows, 'n', 'train_s', 10000):.2f}); of the whole fit: "
            f"{_slope(rows, 'n', 'fit_s'):.2f} (N >= 10k: {_slope(rows, 'n', 'fit_s', 10000):.2f}).",
            "",
        ]
    if s["n_raw"]:
        rows = s["n_raw"]
        lines += [
            f"### N sweep, raw-pixel model (`paper-mnist`: D=784, K=10, 1024 hidden, batch 4000, {epochs} epochs)",
            "",
            *_table(rows, "N"),
            "",
            f"log-log slope of train time on N: **{_slope(rows, 'n', 'train_s'):.2f}**; "
            f"of the whole fit: {_slope(rows, 'n', 'fit_s'):.2f}.",
            "",
        ]
    if s["k"]:
        rows = s["k"]
        lines += [
            f"### K sweep (N={rows[0]['n']}, D=100, 1024 hidden, batch 1000, {epochs} epochs)",
            "",
            *_table(rows, "K"),
            "",
            f"log-log slope of train time on K: **{_slope(rows, 'k', 'train_s'):.2f}** "
            f"(K >= 5: {_slope(rows, 'k', 'train_s', 5):.2f}).",
            "",
        ]
    if s["d"]:
        rows = s["d"]
        lines += [
            f"### D sweep (N={rows[0]['n']}, K=10, 1024 hidden, batch 1000, {epochs} epochs)",
            "",
            *_table(rows, "D"),
            "",
            f"log-log slope of train time on D: **{_slope(rows, 'd', 'train_s'):.2f}** "
            f"(D >= 100: {_slope(rows, 'd', 'train_s', 100):.2f}).",
            "",
        ]
    if result["memory"]:
        lines += _memory_lines(result["memory"])
    lines.append(END)
    return "\n".join(lines) + "\n"


def _memory_lines(rows: list[dict]) -> list[str]:
    lines = [
        "### Peak memory of a fit (one epoch; resident-set high-water mark, reset after loading the data)",
        "",
        "| data | N x D | restarts | epochs | data MiB | RSS before fit MiB | peak RSS MiB | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | | {r['restarts']} | | | | {r['error']} | |")
            continue
        lines.append(
            f"| {r['source']} | {r['n']} x {r['d']} | {r['restarts']} | {r['epochs']} | {r['data_mib']:.0f} | "
            f"{r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} | {r['fit_s']:.1f} |"
        )
    lines.append("")
    for name in MEMORY_CASES:
        full = [r for r in rows if r.get("case") == name and "error" not in r]
        if len(full) != 3:
            continue
        whole, one, two = full
        per_restart = (two["peak_rss_mib"] - two["rss_before_mib"]) - (
            one["peak_rss_mib"] - one["rss_before_mib"]
        )
        paper = whole["peak_rss_mib"] + 9 * per_restart
        lines.append(
            f"- {name}: each further restart adds about {per_restart:.0f} MiB (two-batch fits with 1 and 2 "
            f"restarts), so the paper's 10 restarts would peak near {paper / 1024:.1f} GiB "
            f"({whole['peak_rss_mib']:.0f} MiB + 9 x {per_restart:.0f} MiB)."
        )
    lines.append("")
    return lines


def write_section(text: str) -> None:
    """Put ``text`` below the marker of RESULTS.md, replacing an earlier cost-growth section."""
    old = RESULTS.read_text(encoding="utf-8")
    if KEEP_MARKER not in old:
        raise SystemExit(f"{RESULTS} has no marker line {KEEP_MARKER!r}; add it first.")
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new, encoding="utf-8")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every timed fit (default 2)")
    parser.add_argument(
        "--sizes", type=_ints, default=N_SWEEP, help="N of the PCA-size sweep, comma-separated"
    )
    parser.add_argument("--sizes-raw", type=_ints, default=N_SWEEP_RAW, help="N of the raw-pixel sweep")
    parser.add_argument("--n-fixed", type=int, default=5000, help="N of the K and D sweeps (default 5000)")
    parser.add_argument("--skip-sweeps", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-timeout", type=float, default=900, help="seconds per memory case")
    parser.add_argument("--write", action="store_true", help="write the section into RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--memory-case", choices=sorted(MEMORY_CASES), help=argparse.SUPPRESS)
    parser.add_argument("--restarts", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--max-points", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    if args.memory_case:  # the child process of one memory measurement
        print(json.dumps(memory_case(args.memory_case, args.restarts, args.max_points, args.epochs)))
        return

    started = time.perf_counter()
    result: dict = {"sweeps": {"n": [], "n_raw": [], "k": [], "d": []}, "memory": []}
    if not args.skip_sweeps:
        result["sweeps"] = sweeps(args.epochs, args.sizes, args.sizes_raw, args.n_fixed)
    if not args.skip_memory:
        result["memory"] = memory(args.memory_timeout)
    text = render(result, args, time.perf_counter() - started)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.write:
        write_section(text)
        print(f"wrote the section into {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
