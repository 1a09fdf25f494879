"""Run every flowmix benchmark, print a table and write benchmarks/RESULTS.md.

1. toy protocol: wall time of the paper's full toy protocol (5 sets x 10 restarts x 2000 epochs),
   figures and report included, as `make demo` runs it;
2. batched vs loop: steps/s of the batched mixture against a per-component Python loop,
   K in {2, 5, 10} and restarts in {1, 10}, each pair measured back to back;
3. image model efficiency: one training step of the paper's image model and its PCA variant, as
   a fraction of the float32 matmul rate measured in the same run;
4. torch.compile against the eager step: compile time and steady-state speed;
5. predict throughput and peak memory on 70000 x 784;
6. flowmix against a list-of-flows mixture of zuko MAFs, if zuko is installed;
7. with --with-baselines (needs the MNIST files): the torch k-means and EM against scikit-learn's.

Run:  make bench      (or .venv/bin/python benchmarks/run_all.py [--device cpu] [--skip-toy])
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines_device import compare as baselines_compare
from batched_vs_loop import compare
from compile_step import compare as compile_compare
from image_step import image_step, matmul_gflops
from predict_throughput import predict_throughput
from vs_zuko import compare as zuko_compare

RESULTS = Path(__file__).with_name("RESULTS.md")
KEEP_MARKER = "<!-- Sections below come from their own commands; run_all.py keeps them. -->"


def toy_protocol_seconds(device: str) -> float:
    from flowmix.paper.configs import TOY_DATASETS
    from flowmix.paper.report import write_report
    from flowmix.paper.runner import GridSpec, run_grid

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        spec = GridSpec(datasets=[d.name for d in TOY_DATASETS], methods=["flows"], device=device)
        run_grid(spec, tmp, progress=False)
        write_report(tmp)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-toy", action="store_true", help="leave out the toy protocol (about a minute)")
    parser.add_argument("--predict-points", type=int, default=70000)
    parser.add_argument(
        "--with-baselines",
        action="store_true",
        help="also time the torch baselines on MNIST5-PCA (about 5 min)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    lines = [
        "# flowmix benchmark results",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {torch.get_num_threads()} torch threads, "
        f"{platform.processor() or platform.machine()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        f"- torch {torch.__version__}",
        f"- command: `.venv/bin/python benchmarks/run_all.py --device {args.device}"
        + (" --with-baselines`" if args.with_baselines else "`"),
        "",
    ]

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    if not args.skip_toy:
        seconds = toy_protocol_seconds(args.device)
        emit("## Toy protocol (5 sets x 10 restarts x 2000 epochs, figures and report included)")
        emit()
        emit(f"Wall time: **{seconds:.1f} s** (target <= 60 s on 2 cores).")
        emit()

    emit("## Batched mixture vs per-component Python loop (N=1000, D=2, 10 hidden, 200 steps)")
    emit()
    emit("| K | restarts | batched steps/s | loop steps/s | speed-up |")
    emit("|---|---|---|---|---|")
    for k in (2, 5, 10):
        for restarts in (1, 10):
            row = compare(k, restarts, 200)
            emit(
                f"| {k} | {restarts} | {row['batched_steps_per_s']:.1f} | {row['loop_steps_per_s']:.1f} | "
                f"{row['speedup']:.1f}x |"
            )
    emit()

    peak_before = matmul_gflops(device)
    rows = [
        (name, image_step(dim, 1024, 10, batch, device))
        for name, dim, batch in (("raw pixels", 784, 4000), ("PCA-100", 100, 1000))
    ]
    # The reference is the higher of two GEMM measurements, before and after the steps: the
    # shared machine's speed drifts, and the higher rate gives the more conservative fraction.
    peak = max(peak_before, matmul_gflops(device))
    emit("## Image model: one training step (K=10, 1024 hidden, one restart)")
    emit()
    emit(
        f"Measured float32 matmul rate (2048^2, best of before/after the steps): **{peak:.1f} GFLOP/s** "
        f"(before: {peak_before:.1f})."
    )
    emit()
    emit("| model | D | batch | s/step | GFLOP/s | fraction of matmul |")
    emit("|---|---|---|---|---|---|")
    for name, row in rows:
        emit(
            f"| {name} | {row['dim']} | {row['batch']} | {row['seconds']:.3f} | {row['gflops']:.1f} | "
            f"{row['gflops'] / peak:.0%} |"
        )
    emit()

    emit("## torch.compile against the eager step (not used by flowmix)")
    emit()
    emit("| case | eager steps/s | compiled steps/s | compile time | break-even |")
    emit("|---|---|---|---|---|")
    for row in compile_compare():
        emit(
            f"| {row['case']} | {row['eager_steps_per_s']:.1f} | {row['compiled_steps_per_s']:.1f} | "
            f"{row['compile_seconds']:.1f} s | {row['break_even_steps']:.0f} steps |"
        )
    emit()

    zuko_rows = zuko_compare()
    if zuko_rows is not None:
        emit("## flowmix vs a list of zuko MAFs (one mixture per restart, one Adam each)")
        emit()
        emit("| case | flowmix restart-steps/s | zuko restart-steps/s | speed-up |")
        emit("|---|---|---|---|")
        for row in zuko_rows:
            emit(f"| {row['case']} | {row['flowmix']:.1f} | {row['zuko']:.1f} | {row['speedup']:.1f}x |")
        emit()

    row = predict_throughput(args.predict_points, args.device)
    emit(f"## predict on {row['points']} x 784 (K=10, 1024 hidden, float64 inference, chunked)")
    emit()
    emit(
        f"{row['points_per_s']:.0f} points/s ({row['seconds']:.1f} s); the process's peak resident memory "
        f"grew by {row['peak_increase_mib']:.0f} MiB during predict, high-water mark reset just before "
        f"(the input array is "
        f"{row['input_mib']:.0f} MiB)."
    )
    if args.with_baselines:
        emit()
        emit("## Baselines on MNIST5-PCA (35735 x 100, k=5, n_init=10, seed 0): scikit-learn vs torch")
        emit()
        emit(f"| method | scikit-learn (CPU) | torch ({device}) | objective sklearn | objective torch |")
        emit("|---|---|---|---|---|")
        for row in baselines_compare(args.device):
            emit(
                f"| {row['method']} | {row['sklearn_seconds']:.1f} s | {row['torch_seconds']:.1f} s | "
                f"{row['sklearn_objective']:.4f} | {row['torch_objective']:.4f} |"
            )
    # Sections measured by their own commands (below the marker) are kept as they are.
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    kept = previous[previous.index(KEEP_MARKER) :] if KEEP_MARKER in previous else ""
    RESULTS.write_text("\n".join(lines) + "\n\n" + kept)
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
