"""The README is the front door: its example runs, its commands exist, its links resolve, it stays short."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from flowmix.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")

MAX_LINES = 220

# A fenced block: its language and its body (the fences start a line).
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# Languages whose blocks are shell command lines.
_SHELL = {"bash", "sh", "shell", "console"}
# A command word: lower case, no dot or slash (so not a file name or a path).
_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Inline code spans outside fenced blocks.
_SPAN = re.compile(r"`([^`\n]+)`")


def _blocks(languages: set[str]) -> list[str]:
    return [body for language, body in _FENCE.findall(TEXT) if language.lower() in languages]


PYTHON_BLOCKS = _blocks({"python", "py"})


def _shown_command_lines() -> list[str]:
    """Every piece of shell the README shows: fenced shell lines (comments cut) and inline code."""
    lines = [line.split("#", 1)[0] for body in _blocks(_SHELL) for line in body.splitlines()]
    spans = _SPAN.findall(_FENCE.sub("", TEXT))
    return [text for text in lines + spans if text.strip()]


def _shown_commands() -> dict[tuple[str, ...], str]:
    """``flowmix <command> [<sub-command>]`` as shown -> the line it was shown in.

    A line's ``flowmix`` (also ``.venv/bin/flowmix`` or ``python -m flowmix``) is followed by as
    many command words as the command groups take: ``flowmix reproduce table1 --data-dir DATA``
    names ``("reproduce", "table1")``, ``flowmix report results/toy`` names ``("report",)``.
    A word that is not a command of its group is kept, so that the check of it fails.
    """
    shown: dict[tuple[str, ...], str] = {}
    for line in _shown_command_lines():
        tokens = line.split()
        for i, token in enumerate(tokens):
            if token != "flowmix" and not token.endswith("/flowmix"):
                continue
            path: list[str] = []
            group: click.Command | None = main
            for word in tokens[i + 1 :]:
                if not isinstance(group, click.Group) or not _WORD.match(word):
                    break
                path.append(word)
                group = group.get_command(click.Context(group), word)
            if path:
                shown.setdefault(tuple(path), line.strip())
    return shown


def _relative_links() -> list[str]:
    """Link targets in this repository: no URL scheme (https:, mailto:), no bare #anchor."""
    scheme = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
    return [t for t in _LINK.findall(TEXT) if not scheme.match(t) and not t.startswith("#")]


def test_readme_is_short():
    n_lines = len(TEXT.splitlines())
    assert n_lines < MAX_LINES, (
        f"README.md has {n_lines} lines; keep it under {MAX_LINES} and move the details to docs/."
    )


def test_readme_has_a_python_example():
    assert PYTHON_BLOCKS, "README.md shows no ```python block"


@pytest.fixture
def one_thread():
    # Toy-sized fits keep one core busy whatever torch's thread count; on a machine whose cores
    # are shared with other jobs, a second thread only waits for them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # what the example saves lands here
    code = PYTHON_BLOCKS[index]
    exec(compile(code, f"README.md (python block {index + 1})", "exec"), {"__name__": "__readme__"})
    if ".save(" in code:
        assert any(tmp_path.iterdir()), "the example saves a model, but nothing was written"


def test_readme_shows_commands():
    shown = _shown_commands()
    assert ("fit",) in shown, sorted(shown)


@pytest.mark.parametrize("command", sorted(_shown_commands()), ids=" ".join)
def test_every_command_shown_is_a_command(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    line = _shown_commands()[command]
    assert result.exit_code == 0, f"`{line}` in README.md: `flowmix {' '.join(command)} --help` " + (
        f"exited with {result.exit_code}:\n{result.output}"
    )


def test_readme_has_relative_links():
    assert _relative_links()


@pytest.mark.parametrize("target", sorted(set(_relative_links())))
def test_relative_link_resolves(target):
    path = target.split("#", 1)[0]
    assert (README.parent / path).exists(), f"README.md links to {target}, which does not exist"
