"""Sphinx configuration of flowmix's documentation (``make docs``, ``make docs-quick``).

The build is offline: no intersphinx inventories, no MathJax, and a theme (pydata-sphinx-theme)
that ships its fonts and scripts; ``docs/check_site.py`` confirms that a browser opening the site
requests nothing from the network. Warnings are errors (``-W --keep-going`` in the Makefile), and
``nitpicky`` makes a broken cross-reference a warning.

``FLOWMIX_DOCS_QUICK=1`` (``make docs-quick``, run by CI) executes only the fastest gallery examples;
the others are rendered as code without their figures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import flowmix

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "flowmix"
author = "flowmix developers"
copyright = "flowmix developers, MIT licence"
version = release = flowmix.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# The gallery's own sources are read by sphinx-gallery; what it writes lands in auto_examples/.
exclude_patterns = ["_build", "examples", "**/_generated", "auto_examples/*.ipynb", "auto_examples/*.py"]
templates_path = ["_templates"]
myst_heading_anchors = 3

# -- Cross-references and docstrings -------------------------------------------------------------

nitpicky = True
# Types from other libraries: with no network there are no intersphinx inventories to resolve
# them against, so they stay plain text instead of failing the build.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(numpy|np|torch|sklearn|scipy|matplotlib|click|safetensors|tqdm|pathlib|os|collections|concurrent|ctypes)\b.*",
    ),
    (r"py:.*", r"(Tensor|ndarray|ArrayLike|array-like|Path|PathLike|Figure|Axes|Callable|Sequence|Mapping)"),
    (r"py:.*", r"(Any|Iterable|Iterator|Generator|IO|Module|Parameter|Optimizer|RandomState)"),
    (r"py:.*", r"(optional|default|None|True|False|callable|path|ndarray of .*)"),
    # Private helpers (a name part starting with "_") are not in the reference by design.
    (r"py:.*", r"(.*\.)?_[A-Za-z].*"),
]

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
# Signatures show the annotations; numpydoc's Parameters sections give shapes and meaning.
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
autoclass_content = "class"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- HTML ----------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"flowmix {release}"
html_static_path = ["_static"]
html_css_files = ["flowmix.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 7,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"index": [], "getting_started": [], "changelog": []}
html_last_updated_fmt = None
html_copy_source = True

# -- Gallery -------------------------------------------------------------------------------------

QUICK = os.environ.get("FLOWMIX_DOCS_QUICK", "") not in ("", "0")
# The examples that finish in a few seconds: CI's quick build runs these only.
QUICK_EXAMPLES = ("plot_anomaly_scores.py", "plot_density_sampling.py")

sphinx_gallery_conf = {
    "examples_dirs": str(DOCS / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": (
        "/(" + "|".join(re.escape(name) for name in QUICK_EXAMPLES) + ")$" if QUICK else r"/plot_"
    ),
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_signature": False,
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 1,
    # The timing pages load jQuery and DataTables from a CDN: not written, so the site stays offline.
    "write_computation_times": False,
    # A failing example fails the build (reported after every example has run).
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
}

# -- Generated pages -----------------------------------------------------------------------------


def _write_cli_help() -> None:
    """Write the help of every ``flowmix`` command to ``user_guide/_generated/cli_help.txt``.

    Generated at build time from the click commands, so the page never drifts from the CLI.
    """
    from click.testing import CliRunner

    from flowmix.cli import main

    commands = [
        [],
        ["fit"],
        ["predict"],
        ["evaluate"],
        ["datasets"],
        ["demo"],
        ["report"],
        ["reproduce"],
        ["reproduce", "toy"],
        ["reproduce", "table1"],
        ["reproduce", "contingency"],
    ]
    runner = CliRunner()
    out = DOCS / "user_guide" / "_generated"
    for args in commands:
        result = runner.invoke(main, [*args, "--help"], prog_name="flowmix", terminal_width=100)
        if result.exit_code != 0:
            raise RuntimeError(f"flowmix {' '.join(args)} --help failed: {result.output}")
        name = "_".join(args) or "main"
        text = result.output.rstrip() + "\n"
        _write_if_changed(out / f"cli_{name}.txt", text)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds it (an incremental build then skips the page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


# The registries the estimator's string options are looked up in, as (file stem, module, name, what
# the keys are, the role that links to a value).
_REGISTRIES = [
    ("flows", "flowmix.flows", "FLOW_FAMILIES", "``flow=`` names", "class"),
    ("init", "flowmix.init", "INITIALISATIONS", "``init=`` names", "func"),
    ("training", "flowmix.training", "ALGORITHMS", "``algorithm=`` names", "func"),
    ("selection", "flowmix.selection", "SELECTIONS", "``SingleFit(selection=...)`` names", "func"),
    ("presets", "flowmix.presets", "PRESETS", "preset names of ``FlowMixture.from_preset``", None),
    ("baselines", "flowmix.paper.baselines", "BASELINES", "baseline names of ``run_baseline``", "func"),
]


def _write_registries() -> None:
    """One ``py:data`` entry per registry, its keys read from the registry itself.

    The dicts map names to functions or classes; listing them from the live objects keeps the
    page in step with the code, and ``nitpicky`` checks every link.
    """
    import importlib

    for stem, module_name, name, keys, role in _REGISTRIES:
        module = importlib.import_module(module_name)
        registry = getattr(module, name)
        lines = [
            f".. py:data:: {name}",
            f"   :module: {module_name}",
            "",
            f"   Registry of the {keys}; adding an entry makes a new name available.",
            "",
        ]
        for key, value in registry.items():
            if role is None:  # a preset: (hidden units, epochs, batch size); the rest is shared
                hidden, n_epochs, batch_size = value
                settings = (
                    f"``hidden_units={hidden!r}``, ``n_epochs={n_epochs}``, ``batch_size={batch_size}``"
                )
                lines.append(f"   - ``{key!r}``: {settings}")
            else:
                # A function the registry's module re-exports (flowmix.training's algorithms, defined
                # in its submodules) is documented under that module's name; classes under their own.
                reexported = role == "func" and getattr(module, value.__name__, None) is value
                home = module_name if reexported else value.__module__
                lines.append(f"   - ``{key!r}``: :{role}:`~{home}.{value.__qualname__}`")
        _write_if_changed(DOCS / "api" / "_generated" / f"registry_{stem}.rst", "\n".join(lines) + "\n")


_write_cli_help()
_write_registries()

# -- Checks and filters on what autodoc documents ---------------------------------------------------

# scikit-learn adds metadata-routing setters (set_fit_request, ...) to every estimator; their
# docstrings point into scikit-learn's own site and say nothing about flowmix.
_SKLEARN_GENERATED = re.compile(r"^set_\w+_request$")


def _skip_member(app, what, name, obj, skip, options):
    if _SKLEARN_GENERATED.match(name):
        return True
    return None


def _require_docstring(app, what, name, obj, options, lines):
    """A public module, class, function or method shown in the API reference must say what it is.

    autodoc hands over the docstring after inheritance (an override documented by its base class
    counts), so an empty one here is a public name nobody documented: a warning, which ``-W``
    turns into a failed build.
    """
    from sphinx.util import logging

    public = not name.rsplit(".", 1)[-1].startswith("_")
    documentable = what in ("module", "class", "exception", "function", "method")
    if public and documentable and not any(line.strip() for line in lines):
        logging.getLogger("flowmix.docs").warning(
            f"{name} has no docstring: document it (numpydoc style) or make it private",
            type="flowmix",
            subtype="docstring",
        )


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _require_docstring, priority=100)
