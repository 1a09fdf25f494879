"""The memory budget of a fit (flowmix.memory_budget, FlowMixture's ``max_memory``)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowmix import FlowMixture
from flowmix.inference import Inference
from flowmix.memory_budget import (
    FLOAT_BYTES,
    INFERENCE_CHUNK_BYTES,
    OVERHEAD_BYTES,
    PARAMETER_COPIES,
    available_memory,
    fit_plan,
    flow_footprint,
    resolve_budget,
)
from flowmix.recipes import Candidates

GIB = 2**30


def test_the_parameter_count_is_the_built_flows():
    from flowmix.flows import make_flow

    for flow, hidden in (("spline", (16,)), ("maf", (32, 8))):
        count, floats = flow_footprint(
            flow, 5, hidden_units=hidden, n_layers=2, activation=None, flow_params=None
        )
        built = make_flow(flow, 3, 5, hidden_units=hidden, n_layers=2)
        assert count * 3 == sum(p.numel() for p in built.parameters())
        assert floats == built.training_floats_per_point()


def test_the_plan_adds_parameters_points_and_a_steps_activations():
    plan = fit_plan(n_samples=1000, dim=4, n_stack=6, flow_parameters=500, floats_per_point=70,
                    batch_size=512, auto_batch=True, budget=GIB)  # fmt: skip
    assert plan.parameters == PARAMETER_COPIES * FLOAT_BYTES * 6 * 500
    assert plan.data == FLOAT_BYTES * 1000 * (4 + 6) + INFERENCE_CHUNK_BYTES + OVERHEAD_BYTES
    assert plan.per_batch_point == FLOAT_BYTES * 6 * 70
    assert plan.peak == plan.parameters + plan.data + 512 * plan.per_batch_point
    assert plan.batch_size == 512 and not plan.shrunk


def test_an_automatic_batch_shrinks_to_the_largest_that_fits():
    common = {
        "n_samples": 10_000,
        "dim": 4,
        "n_stack": 6,
        "flow_parameters": 500,
        "floats_per_point": 70,
        "batch_size": 2048,
    }
    full = fit_plan(**common, auto_batch=True, budget=GIB)
    budget = full.parameters + full.data + 300 * full.per_batch_point + 7
    plan = fit_plan(**common, auto_batch=True, budget=budget)
    assert plan.shrunk and plan.batch_size == 300 and plan.peak <= budget
    with pytest.raises(ValueError, match="a smaller batch_size .or batch_size='auto', which shrinks to fit."):
        fit_plan(**common, auto_batch=False, budget=budget)


def test_the_automatic_budget_is_half_of_the_available_memory():
    cpu = torch.device("cpu")
    available, budget = available_memory(cpu), resolve_budget("auto", cpu)
    assert available > 0 and abs(budget - available / 2) < 0.05 * available  # memory moves meanwhile
    assert resolve_budget(12345, torch.device("cpu")) == 12345


def test_a_fit_too_large_for_its_budget_is_refused_before_it_allocates():
    # The case: 30 spline flows of 1024 hidden units on 784 pixels need ~28 GiB for their
    # parameters and Adam's state; the process was killed by the OOM killer half-way.
    X = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
    model = FlowMixture(
        10,
        # subspace_dim None: flows on all 784 pixels, as then (principal subspaces make this fit small)
        flow_params={"hidden_units": (1024,), "subspace_dim": None},
        n_epochs=1,
        recipe="single",
        max_memory=4 * GIB,
        random_state=0,
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = (
        r"needs about [0-9.]+ GiB but max_memory allows 4\.00 GiB: the parameters with their gradients and "
        r"Adam's moments need 25\.87 GiB.*Use smaller hidden_units, n_layers, n_components or n_init"
    )
    with pytest.raises(ValueError, match=message):
        model.fit(X)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < GIB // 4  # nothing of the 28 GiB was allocated


@pytest.mark.parametrize("value", [0, -5, 1.5, "lots", True])
def test_a_bad_budget_says_what_is_expected(value):
    with pytest.raises(ValueError, match="max_memory must be a positive integer or 'auto'"):
        FlowMixture(2, max_memory=value).fit(np.random.default_rng(0).random((50, 2)))


CHILD = """
import json, resource, sys
import numpy as np
from flowmix import FlowMixture
from flowmix.inference import Inference
from flowmix.recipes import SingleFit
budget = int(sys.argv[1])
X = np.random.default_rng(0).random((3000, 20), dtype=np.float32)
model = FlowMixture(4, flow_params={"hidden_units": (64,)}, n_epochs=2, covariance_type="diag",
                    recipe=SingleFit(selection="graph-cut", pretrain_epochs=1), max_memory=budget, random_state=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model.fit(X)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"grown": grown, "batch": model.memory_plan_.batch_size, "shrunk": model.memory_plan_.shrunk,
                  "peak": model.memory_plan_.peak}))
"""


def test_a_fit_under_a_tight_budget_takes_a_smaller_batch_and_stays_under_it():
    # The budget leaves room for about a tenth of the automatic batch (1500 points).
    count, floats = flow_footprint("spline", 20, hidden_units=(64,), n_layers=None, activation=None,
                                         flow_params=None)  # fmt: skip
    plan = fit_plan(n_samples=3000, dim=20, n_stack=12, flow_parameters=count, floats_per_point=floats,
                    batch_size=1500, auto_batch=True, budget=2**62)  # fmt: skip
    budget = plan.parameters + plan.data + 150 * plan.per_batch_point
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(budget)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shrunk"] and result["batch"] == 150 and result["peak"] <= budget
    assert result["grown"] <= budget, result


def test_predictions_keep_within_the_budget_and_refuse_below_one_chunk():
    X = np.random.default_rng(1).random((600, 3), dtype=np.float32)
    model = FlowMixture(
        2, n_epochs=3, recipe=Candidates().with_settings(pretrain_epochs=2), random_state=0
    ).fit(X)
    labels, scores = model.predict(X), model.score_samples(X)
    budget = 48 * 2**20
    outputs = 8 * len(X) * 2
    smaller = Inference(model.density_, torch.float32, max_bytes=budget - outputs).points_per_chunk
    assert smaller < Inference(model.density_, torch.float32).points_per_chunk  # the budget binds
    model.set_params(max_memory=budget)
    np.testing.assert_array_equal(model.predict(X), labels)
    np.testing.assert_array_equal(model.score_samples(X), scores)
    model.set_params(max_memory=10_000)
    with pytest.raises(ValueError, match="max_memory leaves 0.0 MiB for them"):
        model.predict(X)
