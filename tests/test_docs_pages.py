"""What the documentation's pages show first (read as text; building the site is `make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def figures(page: str) -> list[str]:
    return re.findall(
        r"^\.\. (?:figure|image):: (\S+)", (DOCS / page).read_text(encoding="utf-8"), re.MULTILINE
    )


def test_the_home_page_opens_on_the_default_beside_the_baselines():
    """A newcomer's first picture is flowmix's default winning, not the paper preset's failure mode."""
    shown = figures("index.rst")
    assert shown and shown[0] == "images/comparison_toy.png"
    assert "images/figure1_toy.png" not in shown
    assert all((DOCS / figure).is_file() for figure in shown)


def test_the_paper_figure_stays_on_the_reproduction_page():
    assert "images/figure1_toy.png" in figures("reproducing.rst")
