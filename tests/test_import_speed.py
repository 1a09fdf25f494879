"""What `import flowmix` and the command line's help and argument errors load: no torch, no scikit-learn.

Seconds are not measured here (the machines are noisy): the modules that cost them are. Each case
runs in a fresh interpreter, since this test session has long imported everything.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "scipy", "matplotlib")


def loaded_heavy(code: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run ``code`` in a fresh interpreter; the heavy packages it imported (-X importtime), and the run."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120
    )
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in run.stderr.splitlines()
        if line.startswith("import time:")
    }
    return sorted(imported & set(HEAVY)), run


def test_import_flowmix_loads_neither_torch_nor_sklearn():
    heavy, run = loaded_heavy(
        "import sys, flowmix; print('torch' in sys.modules, 'sklearn' in sys.modules, flowmix.__version__)"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[:2] == ["False", "False"]
    assert heavy == []


def test_lazy_names_still_resolve():
    import flowmix
    from flowmix import FlowMixture, load_dataset
    from flowmix.datasets import load_dataset as direct
    from flowmix.estimator import FlowMixture as Estimator

    assert FlowMixture is Estimator and flowmix.FlowMixture is Estimator
    assert load_dataset is direct
    assert set(flowmix.__all__) == {
        "Checkpointing",
        "EarlyStopping",
        "FlowMixture",
        "__version__",
        "load_dataset",
    }
    from flowmix import Checkpointing, EarlyStopping, options

    assert Checkpointing is options.Checkpointing and EarlyStopping is options.EarlyStopping
    assert set(flowmix.__all__) <= set(dir(flowmix))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = flowmix.nope


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["--help"], 0, "Usage: flowmix"),
        (["fit", "--help"], 0, "Usage: flowmix fit"),
        (["predict", "--help"], 0, "Usage: flowmix predict"),
        (["reproduce", "toy", "--help"], 0, "Usage: flowmix reproduce toy"),
        (["fit"], 2, "Missing argument"),  # an argument error
        (["fit", "data.csv", "-k", "x"], 2, "is not a valid integer"),
        (["--version"], 0, "version"),
    ],
)
def test_help_and_argument_errors_load_neither_torch_nor_sklearn(args, status, says):
    # `python -m flowmix` runs the same `main` as the installed `flowmix` script.
    code = f"import runpy, sys; sys.argv = ['flowmix', *{args!r}]; runpy.run_module('flowmix', run_name='__main__')"
    heavy, run = loaded_heavy(code)
    assert run.returncode == status, run.stderr[-2000:]
    assert says in run.stdout + run.stderr
    assert heavy == []


def test_version_is_a_literal_and_names_the_release_in_the_changelog():
    # pyproject.toml reads `flowmix.__version__` statically: it must stay a literal assignment.
    tree = ast.parse((ROOT / "src" / "flowmix" / "__init__.py").read_text(encoding="utf-8"))
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    import flowmix

    assert literals == [flowmix.__version__]
    # The newest changelog entry is the release this version number is for.
    changelog = (ROOT / "docs" / "changelog.rst").read_text(encoding="utf-8")
    newest = re.search(r"^(?:Unreleased \()?v?(\d+\.\d+\.\d+)\)?\s*$", changelog, re.MULTILINE)
    assert newest is not None
    assert flowmix.__version__ == newest.group(1) == "0.2.0"
