"""The compiled spline step (flowmix.flows.spline_native) against the reference spline, and its fallback."""

from __future__ import annotations

import os
import shutil
import stat
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch

import flowmix
from flowmix import FlowMixture
from flowmix.flows import spline_native
from flowmix.flows.spline import RationalQuadratic, _FusedSpline, _NativeSpline
from flowmix.recipes import Candidates

needs_kernel = pytest.mark.skipif(
    not spline_native.ENABLED or spline_native.library() is None, reason="no compiled spline kernel here"
)


def _layer_input(dtype, n_bins=8, shape=(3, 2, 257), seed=0):
    """Points (S, D, N), a tenth outside [-1, 1], and MADE outputs (S, 3B - 1, D, N) far from the identity."""
    gen = torch.Generator().manual_seed(seed)
    s, d, n = shape
    x = torch.rand(shape, generator=gen, dtype=dtype) * 2.2 - 1.1
    params = torch.randn((s, 3 * n_bins - 1, d, n), generator=gen, dtype=dtype) * 1.5
    return x, params


def _value_and_gradients(step, x, params):
    x, params = x.clone().requires_grad_(), params.clone().requires_grad_()
    y, log_det = step(x, params)
    gen = torch.Generator().manual_seed(1)
    weights = (
        torch.randn(y.shape, generator=gen, dtype=y.dtype),
        torch.randn(y.shape, generator=gen, dtype=y.dtype),
    )
    grads = torch.autograd.grad((y * weights[0]).sum() + (log_det * weights[1]).sum(), (x, params))
    return (y.detach(), log_det.detach(), *grads)


@pytest.mark.parametrize(
    "step",
    [pytest.param(_NativeSpline, marks=needs_kernel, id="compiled"), pytest.param(_FusedSpline, id="torch")],
)
@pytest.mark.parametrize("n_bins", [2, 8, 13, 70])
def test_the_training_steps_equal_the_reference_spline_in_float64(step, n_bins):
    # Float64 throughout: the torch step once rounded its bin edges to float32 (about 1e-7 off).
    x, params = _layer_input(torch.float64, n_bins)
    reference = _value_and_gradients(
        lambda a, b: RationalQuadratic(n_bins).forward(a, b, fused=False), x, params
    )
    fast = _value_and_gradients(lambda a, b: step.apply(a, b, n_bins), x, params)
    for name, got, expected in zip(["y", "log_det", "grad x", "grad params"], fast, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9, msg=name)


@needs_kernel
def test_the_compiled_step_in_float32_equals_the_torch_step():
    x, params = _layer_input(torch.float32)
    torch_step = _value_and_gradients(lambda a, b: _FusedSpline.apply(a, b, 8), x, params)
    compiled = _value_and_gradients(lambda a, b: _NativeSpline.apply(a, b, 8), x, params)
    for name, got, expected in zip(
        ["y", "log_det", "grad x", "grad params"], compiled, torch_step, strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=name)


@needs_kernel
def test_outside_the_box_and_nan_the_compiled_step_is_the_identity():
    x = torch.tensor([[[-3.0, 1.5, float("nan"), 0.2]]], dtype=torch.float64)
    params = torch.zeros(1, 23, 1, 4, dtype=torch.float64)
    y, log_det = _NativeSpline.apply(x, params, 8)
    torch.testing.assert_close(y, x, equal_nan=True)
    assert log_det[0, 0, :2].tolist() == [0.0, 0.0] and log_det[0, 0, 3] == pytest.approx(0.0, abs=1e-12)


@needs_kernel
def test_the_layer_takes_the_compiled_step_only_where_it_is_faster():
    small, params = _layer_input(torch.float32, shape=(2, 2, 64))
    assert spline_native.usable(small, params)
    large = torch.zeros(1, 1, spline_native.MAX_ELEMENTS + 1)
    assert not spline_native.usable(large, torch.zeros(1, 23, 1, large.shape[-1]))
    assert not spline_native.usable(small.half(), params.half())


@needs_kernel
def test_a_built_kernel_is_reused():
    path = spline_native.build()
    stamp = path.stat().st_mtime_ns
    assert spline_native.build() == path and path.stat().st_mtime_ns == stamp
    assert path.parent == spline_native.cache_dir()


def test_without_a_compiler_training_falls_back_to_torch_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-flowmix")
    monkeypatch.setenv("FLOWMIX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(spline_native, "ENABLED", True)
    spline_native.library.cache_clear()
    try:
        X = np.random.RandomState(0).normal(size=(60, 2))
        recipe = Candidates().with_settings(pretrain_epochs=1)
        with pytest.warns(RuntimeWarning, match="could not build its compiled spline kernel .no C compiler"):
            model = FlowMixture(2, n_epochs=2, recipe=recipe, random_state=0).fit(X)
        assert np.isfinite(model.score(X))
        assert list(tmp_path.iterdir()) == []  # nothing half-built left behind
    finally:
        spline_native.library.cache_clear()


def test_the_kernel_source_is_package_data():
    # A wheel holds the package's modules and its declared package data only: without the C source
    # there, an installed flowmix has nothing to compile (`make wheel-check` builds and installs one).
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    package_dir = Path(flowmix.__file__).parent
    shipped = []
    for package, patterns in declared.items():
        base = package_dir.joinpath(*package.split(".")[1:])
        if spline_native.SOURCE.is_relative_to(base):
            name = spline_native.SOURCE.relative_to(base).as_posix()
            shipped += [pattern for pattern in patterns if fnmatch(name, pattern)]
    assert shipped, f"{spline_native.SOURCE.name} is not in [tool.setuptools.package-data] {declared}"


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_a_read_only_install_builds_into_the_cache(monkeypatch, tmp_path):
    # As from site-packages: the source's folder cannot be written, the build goes to the cache.
    installed = tmp_path / "site" / "spline_kernel.c"
    installed.parent.mkdir()
    shutil.copy(spline_native.SOURCE, installed)
    installed.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setattr(spline_native, "SOURCE", installed)
    monkeypatch.setenv("FLOWMIX_CACHE_DIR", str(tmp_path / "cache"))
    try:
        built = spline_native.build()
        assert built.parent == tmp_path / "cache" and built.is_file()
        assert [p.name for p in installed.parent.iterdir()] == ["spline_kernel.c"]
    finally:
        installed.parent.chmod(stat.S_IRWXU)
