"""What batch-invariant float32 inference costs: fixed-width blocks against whole chunks.

float32 inference (flowmix.inference) runs every pass on blocks of one fixed width, the last
block padded, so that a point's results do not depend on the other points of its call. Before,
each chunk of points ran whole, in one pass as wide as the chunk (the "whole chunks" path, which
this script alone keeps, by patching :class:`~flowmix.inference.Inference`). Both paths are timed
in the same process, interleaved repeat by repeat, best of ``--repeats``:

- ``score_samples`` on ``--points`` points (default 20000), uniform in the data's box;
- ``score_samples`` on 10 points, where the fixed width pads the single block.

Models: the estimator's default (2-D spline flows, K=3, fitted a few epochs on 2-D blobs) and the
paper's PCA image model (``paper-pca``: K=10 MAFs of one MADE with 1024 tanh units, D=100, the
blocked MAF path), its weights from one short fit on random points; ``--models`` may add the
paper's MNIST model (``maf-mnist``, D=784). ``--block-floats`` also times fixed widths set by
other activation budgets than flowmix's (``_BLOCK_FLOATS``).

Run:  .venv/bin/python benchmarks/block_width.py [--points 20000] [--repeats 7]
          [--models spline-2d,maf-pca,maf-mnist] [--block-floats 4194304,16777216]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from sklearn.datasets import make_blobs

from flowmix import FlowMixture
from flowmix import density as density_module
from flowmix import inference as inference_module
from flowmix.inference import Inference

WHOLE = "whole chunks"


def spline_2d() -> tuple[FlowMixture, np.ndarray]:
    """The estimator's defaults (spline, K=3) fitted briefly on 2-D blobs, and its data."""
    X, _ = make_blobs(2000, 2, centers=3, random_state=0)
    return FlowMixture(3, n_epochs=20, random_state=0).fit(X), X


def maf_pca() -> tuple[FlowMixture, np.ndarray]:
    """The paper's PCA image model (K=10, 1024 hidden, D=100) after one epoch on random points."""
    X = np.random.RandomState(0).rand(2000, 100).astype(np.float32)
    model = FlowMixture.from_preset("paper-pca", 10, n_epochs=1, n_init=1, random_state=0)
    return model.fit(X), X


def maf_mnist() -> tuple[FlowMixture, np.ndarray]:
    """The paper's MNIST model (K=10, 1024 hidden, D=784) after one epoch on 64 random points."""
    X = np.random.RandomState(0).rand(64, 784).astype(np.float32)
    model = FlowMixture.from_preset("paper-mnist", 10, n_epochs=1, n_init=1, random_state=0)
    return model.fit(X), X


MODELS: dict[str, Callable[[], tuple[FlowMixture, np.ndarray]]] = {
    "spline-2d": spline_2d,
    "maf-pca": maf_pca,
    "maf-mnist": maf_mnist,
}
DEFAULT_MODELS = "spline-2d,maf-pca"


def _whole_chunk_joint_log_prob(self: Inference, x: torch.Tensor) -> torch.Tensor:
    """The float32 path before fixed blocks: one pass over the whole chunk, as wide as it is."""
    x = x.to(self.dtype)
    with torch.inference_mode():
        if self.blocked is None:
            return self.density.joint_log_prob(x)
        return self._block(x.T.contiguous())


@contextlib.contextmanager
def inference_path(path: str | int) -> Iterator[None]:
    """Inference as flowmix runs it (``"fixed"``), with whole chunks (:data:`WHOLE`), or with
    fixed blocks sized by another activation budget (an int, in place of ``_BLOCK_FLOATS``)."""
    original_init, original_joint = Inference.__init__, Inference.joint_log_prob
    original_floats = inference_module._BLOCK_FLOATS

    def whole_chunks_init(
        self: Inference,
        density: density_module.MixtureOfFlows,
        dtype: torch.dtype,
        max_bytes: int | None = None,
    ) -> None:
        original_init(self, density, dtype, max_bytes=max_bytes)
        if self.points_per_block is not None:
            per_point = (
                self.blocked.floats_per_point()
                if self.blocked is not None
                else density.n_restarts * density.n_components * density.flows.floats_per_point()
            )
            self.points_per_chunk = max(1, 2 * density_module.INFERENCE_CHUNK_FLOATS // per_point)

    try:
        if path == WHOLE:
            Inference.__init__ = whole_chunks_init
            Inference.joint_log_prob = _whole_chunk_joint_log_prob
        elif isinstance(path, int):
            inference_module._BLOCK_FLOATS = path
        yield
    finally:
        Inference.__init__, Inference.joint_log_prob = original_init, original_joint
        inference_module._BLOCK_FLOATS = original_floats


def widths(model: FlowMixture, path: str | int) -> tuple[int | None, int]:
    """(block width, chunk) of ``path`` for ``model``'s float32 inference."""
    with inference_path(path):
        inference = Inference(model.density_, torch.float32)
    return (None if path == WHOLE else inference.points_per_block), inference.points_per_chunk


def _power(value: int) -> str:
    """2^k for a power of two, else the number."""
    return f"2^{value.bit_length() - 1}" if value > 0 and value & (value - 1) == 0 else str(value)


def compare(model: FlowMixture, X: np.ndarray, paths: list[str | int], repeats: int) -> dict:
    """Best-of-``repeats`` seconds of every path on X and on X[:10], interleaved repeat by repeat."""
    sets = {"many": X, "ten": X[:10]}
    best = {(path, name): np.inf for path in paths for name in sets}
    for repeat in range(repeats):
        for path in paths if repeat % 2 == 0 else paths[::-1]:
            with inference_path(path):
                for name, points in sets.items():
                    model.score_samples(points[:64])  # warm-up
                    start = time.perf_counter()
                    model.score_samples(points)
                    best[path, name] = min(best[path, name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument(
        "--block-floats", default="", help="comma-separated activation budgets to time as well (ints)"
    )
    args = parser.parse_args()
    others = [int(value) for value in args.block_floats.split(",") if value]
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; flowmix _BLOCK_FLOATS = "
        f"{inference_module._BLOCK_FLOATS}; best of {args.repeats}"
    )
    print(
        "| model | path | block width | chunk | score_samples, N points | N / s | vs whole chunks | 10 points |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model, data = MODELS[name]()
        low, high = data.min(0), data.max(0)
        X = np.random.RandomState(1).uniform(low, high, size=(args.points, data.shape[1]))
        paths: list[str | int] = [WHOLE, "fixed", *others]
        best = compare(model, X, paths, args.repeats)
        for path in paths:
            width, chunk = widths(model, path)
            floats = inference_module._BLOCK_FLOATS if path == "fixed" else path
            label = WHOLE if path == WHOLE else f"fixed blocks, _BLOCK_FLOATS = {_power(floats)}"
            label += " (flowmix)" if path == "fixed" else ""
            seconds = best[path, "many"]
            print(
                f"| {name} | {label} | {width or 'chunk'} | {chunk} | {seconds * 1e3:.1f} ms | "
                f"{args.points / seconds:.0f} | {seconds / best[WHOLE, 'many']:.2f}x | "
                f"{best[path, 'ten'] * 1e3:.1f} ms |"
            )


if __name__ == "__main__":
    main()
