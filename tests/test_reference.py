"""The paper presets (and the default estimator) give bit for bit the results of flowmix 0.1.0.

tests/fixtures/preset_reference.safetensors holds every fitted tensor, the loss curves, the labels
and the log densities of small fits, written by flowmix 0.1.0 (commit bd0a3f8) with
tests/fixtures/make_reference.py. Floating-point results are reproducible on the same machine
only, so the comparison runs where the CPU, its kernels and torch match the recorded ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from make_reference import fitted_tensors, machine_identity, reference_cases  # noqa: E402


def _reference():
    with safe_open(str(FIXTURES / "preset_reference.safetensors"), "pt") as f:
        return f.metadata(), {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118


METADATA, REFERENCE = _reference()


@pytest.mark.skipif(
    machine_identity() != METADATA,
    reason=f"reference written on {METADATA}; this machine is {machine_identity()} (bits differ across CPUs)",
)
@pytest.mark.parametrize("case", reference_cases(), ids=lambda case: case[0])
def test_fit_is_bit_identical_to_flowmix_0_1(case):
    name, model, X = case
    # flowmix 0.1.0 predicted and scored in float64 (float32 inference: tests/test_inference.py).
    model.set_params(inference_dtype="float64")
    got = fitted_tensors(name, model.fit(X), X)
    expected = {key: value for key, value in REFERENCE.items() if key.startswith(f"{name}/")}
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key].numpy(), value.numpy(), err_msg=key)
