"""Throughput and peak memory of ``predict`` for the paper's MNIST-sized model, float32 and float64.

The model is the paper's MNIST mixture: K=10 MAFs of one MADE with 1024 tanh units on 784
features. With ``--data-dir`` holding the MNIST files it is fitted for a few epochs on 2000 MNIST
images and predicts all 70000 (or ``--points``) of them; without, its weights come from one short
fit on random data and it predicts random points (the figures before 2026-12-01 used those).

By default both inference precisions (``inference_dtype``) run in the same process, interleaved
so that a busy machine slows both alike: the points are cut into ``--blocks`` blocks and each
block is predicted in float32 and in float64, the first precision alternating from block to
block. The report gives each precision's throughput over all blocks, their ratio (with the
range of the per-block ratios) and how far float32 results are from float64 ones: the largest
absolute and relative difference of ``score_samples`` and the fraction of ``predict`` labels
that differ.

Peak memory: the process's resident-set high-water mark is reset just before each ``predict``
(Linux: /proc/self/clear_refs) and read after it, so the figure is what predict itself needed on
top of the model and the input. Prediction works in chunks, so it does not grow with N beyond
the (N,) output.

Run:  .venv/bin/python benchmarks/predict_throughput.py [--points 70000] [--device cpu]
          [--dtype both|float32|float64] [--data-dir DIR] [--blocks 10] [--score-points 5000]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from flowmix import FlowMixture
from flowmix.paper.data import load_dataset

DIM = 784


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark to the current size; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The resident-set high-water mark (since the last reset where supported)."""
    try:
        return _status_mib("VmHWM")
    except (OSError, RuntimeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paper_mnist_model(device: str, data_dir: str | None, n_points: int) -> tuple[FlowMixture, np.ndarray]:
    """(fitted paper-MNIST-sized model, float32 points to predict (n_points, 784))."""
    rng = np.random.RandomState(0)
    if data_dir is None:
        model = FlowMixture.from_preset(
            "paper-mnist", 10, n_epochs=1, n_init=1, batch_size=64, random_state=0, device=device
        )
        model.fit(rng.rand(64, DIM).astype(np.float32))
        return model, rng.rand(n_points, DIM).astype(np.float32)
    images = load_dataset("mnist", data_dir=data_dir, download=False).X
    model = FlowMixture.from_preset(
        "paper-mnist", 10, n_epochs=5, n_init=1, batch_size=500, random_state=0, device=device
    )
    model.fit(images[rng.choice(len(images), 2000, replace=False)])
    picked = images if n_points == len(images) else images[rng.choice(len(images), n_points)]
    return model, np.ascontiguousarray(picked, dtype=np.float32)


def timed_predict(model: FlowMixture, X: np.ndarray, dtype: str) -> dict:
    """Predict X in ``dtype``: labels, seconds, points/s and the peak memory predict added."""
    model.set_params(inference_dtype=dtype)
    model.predict(X[:100])  # warm-up
    if not reset_peak_rss():
        print("note: cannot reset the peak RSS here; the figure includes the fit")
    before = peak_rss_mib()
    start = time.perf_counter()
    labels = model.predict(X)
    seconds = time.perf_counter() - start
    return {
        "dtype": dtype,
        "points": len(X),
        "seconds": seconds,
        "points_per_s": len(X) / seconds,
        "peak_increase_mib": peak_rss_mib() - before,
        "input_mib": X.nbytes / 2**20,
        "n_labels": len(labels),
        "labels": labels,
    }


def predict_throughput(n_points: int, device: str = "cpu", dim: int = DIM, dtype: str = "float64") -> dict:
    """One precision's predict figures on random points (the row benchmarks/run_all.py reports)."""
    if dim != DIM:
        raise ValueError(f"the paper's MNIST model has {DIM} features, got dim={dim}")
    model, X = paper_mnist_model(device, None, n_points)
    row = timed_predict(model, X, dtype)
    del row["labels"]
    return row


def score_differences(model: FlowMixture, X: np.ndarray) -> dict:
    """Largest absolute and relative difference of float32 from float64 ``score_samples`` on X."""
    scores = {}
    for dtype in ("float32", "float64"):
        scores[dtype] = model.set_params(inference_dtype=dtype).score_samples(X)
    diff = np.abs(scores["float32"] - scores["float64"])
    return {
        "score_points": len(X),
        "score_max_abs_diff": float(diff.max()),
        "score_max_rel_diff": float((diff / np.abs(scores["float64"])).max()),
        "score_range": (float(scores["float64"].min()), float(scores["float64"].max())),
    }


def compare_dtypes(
    n_points: int, device: str, data_dir: str | None, score_points: int, n_blocks: int
) -> dict:
    """float32 and float64 predict interleaved block by block: throughputs, ratio, float32 error."""
    model, X = paper_mnist_model(device, data_dir, n_points)
    dtypes = ("float32", "float64")
    per_block: dict[str, list[dict]] = {dtype: [] for dtype in dtypes}
    for index, block in enumerate(np.array_split(X, n_blocks)):
        for dtype in dtypes if index % 2 == 0 else dtypes[::-1]:
            per_block[dtype].append(timed_predict(model, block, dtype))
    runs = []
    for dtype in dtypes:
        seconds = sum(row["seconds"] for row in per_block[dtype])
        runs.append(
            {
                "dtype": dtype,
                "points": len(X),
                "seconds": seconds,
                "points_per_s": len(X) / seconds,
                "peak_increase_mib": max(row["peak_increase_mib"] for row in per_block[dtype]),
                "input_mib": X.nbytes / 2**20,
            }
        )
    block_ratios = [b64["seconds"] / b32["seconds"] for b32, b64 in zip(*per_block.values(), strict=True)]
    labels = {dtype: np.concatenate([row["labels"] for row in per_block[dtype]]) for dtype in dtypes}
    return {
        "data": "MNIST images" if data_dir else "random points",
        "blocks": n_blocks,
        "runs": runs,
        "ratio": runs[1]["seconds"] / runs[0]["seconds"],
        "block_ratios": (min(block_ratios), max(block_ratios)),
        "labels_differ": float((labels["float32"] != labels["float64"]).mean()),
        **score_differences(model, X[:score_points]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=70000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("both", "float32", "float64"), default="both")
    parser.add_argument(
        "--data-dir", default=None, help="folder with mnist/ (idx files); random data if unset"
    )
    parser.add_argument("--blocks", type=int, default=10, help="blocks of points, dtypes interleaved")
    parser.add_argument("--score-points", type=int, default=5000, help="points of the score comparison")
    args = parser.parse_args()
    header = f"predict {args.points} x {DIM}, K=10, H=1024 (paper-mnist), {args.device}"
    if args.dtype != "both":
        model, X = paper_mnist_model(args.device, args.data_dir, args.points)
        rows = [timed_predict(model, X, args.dtype)]
    else:
        result = compare_dtypes(args.points, args.device, args.data_dir, args.score_points, args.blocks)
        rows = result["runs"]
        header += f", {result['data']}, {result['blocks']} blocks, dtypes interleaved"
    print(header)
    for row in rows:
        print(
            f"  {row['dtype']}: {row['points_per_s']:.0f} points/s ({row['seconds']:.1f} s); peak RSS grew "
            f"{row['peak_increase_mib']:.0f} MiB (input itself {row['input_mib']:.0f} MiB)"
        )
    if args.dtype == "both":
        low, high = result["score_range"]
        print(
            f"  float32 / float64 throughput: {result['ratio']:.2f}x "
            f"(per block {result['block_ratios'][0]:.2f}x to {result['block_ratios'][1]:.2f}x)\n"
            f"  labels that differ: {result['labels_differ']:.2e} of {args.points}\n"
            f"  score_samples on {result['score_points']} points (float64 from {low:.1f} to {high:.1f}): "
            f"max abs diff {result['score_max_abs_diff']:.2e}, max rel diff {result['score_max_rel_diff']:.2e}"
        )


if __name__ == "__main__":
    main()
