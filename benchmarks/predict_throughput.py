"""Throughput and peak memory of ``predict`` for the paper's MNIST-sized model.

A K=10, 1024-hidden mixture on 784 features (weights from one short fit on random data) predicts
N random points. Peak memory: the process's resident-set high-water mark is reset just before
``predict`` (Linux: /proc/self/clear_refs) and read after it, so the figure is what predict itself
needed on top of the model and the input. Prediction works in chunks, so it does not grow with N
beyond the (N,) output.

Run:  .venv/bin/python benchmarks/predict_throughput.py [--points 70000] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from flowmix import FlowMixture


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


def predict_throughput(n_points: int, device: str = "cpu", dim: int = 784) -> dict:
    rng = np.random.RandomState(0)
    model = FlowMixture(10, hidden_units=(1024,), n_epochs=1, batch_size=64, random_state=0, device=device)
    model.fit(rng.rand(64, dim).astype(np.float32))
    X = rng.rand(n_points, dim).astype(np.float32)
    model.predict(X[:100])  # warm-up
    if not reset_peak_rss():
        print("note: cannot reset the peak RSS here; the figure includes the fit")
    before = peak_rss_mib()
    start = time.perf_counter()
    labels = model.predict(X)
    seconds = time.perf_counter() - start
    return {
        "points": n_points,
        "seconds": seconds,
        "points_per_s": n_points / seconds,
        "peak_increase_mib": peak_rss_mib() - before,
        "input_mib": X.nbytes / 2**20,
        "n_labels": len(labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=70000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    row = predict_throughput(args.points, args.device)
    print(
        f"predict {row['points']} x 784, K=10, H=1024: {row['points_per_s']:.0f} points/s "
        f"({row['seconds']:.1f} s); peak RSS grew {row['peak_increase_mib']:.0f} MiB "
        f"(input itself {row['input_mib']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
