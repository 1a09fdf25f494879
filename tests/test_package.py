"""The package's two layers: the library, and the paper's reproduction harness (flowmix.paper)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from flowmix.cli import main

ROOT = Path(__file__).resolve().parents[1] / "src" / "flowmix"
# The command line is the one library module that reaches the harness (to add its commands).
ENTRY_POINTS = {"cli.py", "__main__.py"}


def test_importing_the_library_imports_no_harness_module():
    code = (
        "import json, sys, flowmix, flowmix.estimator, flowmix.datasets, flowmix.metrics, flowmix.persistence; "
        "flowmix.load_dataset('moons'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('flowmix'))))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert "flowmix.estimator" in loaded and "flowmix.datasets" in loaded  # the check sees the library
    assert [m for m in loaded if m.startswith("flowmix.paper") or m == "flowmix.cli"] == []


def test_no_library_module_names_the_harness():
    library = [p for p in ROOT.rglob("*.py") if "paper" not in p.relative_to(ROOT).parts[:1]]
    assert len(library) > 20
    offenders = [
        str(p.relative_to(ROOT))
        for p in library
        if p.name not in ENTRY_POINTS and re.search(r"(from|import) flowmix\.paper", p.read_text())
    ]
    assert offenders == []


def test_the_command_line_keeps_the_library_and_harness_commands():
    assert {"fit", "predict", "evaluate", "reproduce", "report", "demo", "datasets"} <= set(main.commands)
    for command in main.commands:
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
