"""What the command lines share: the error users see, the group that turns input errors into it, tables.

Both :mod:`flowmix.cli` (the library's commands) and :mod:`flowmix.paper.commands` (the paper
harness's) build on these, so the harness reaches the library's command line only through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

# ------------------------------------------------------------------------------------------------
# Errors


class UserError(click.ClickException):
    """A mistake in the command's input: one line on stderr, exit status 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class CommandGroup(click.Group):
    """Turns the library's input errors into :class:`UserError` for every sub-command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        # The library reports bad input as ValueError (DatasetError is one) or as a missing or
        # unusable path; anything else (a TypeError included) is a bug and keeps its traceback.
        except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError) as err:  # fmt: skip
            raise UserError(str(err) or type(err).__name__) from err


# ------------------------------------------------------------------------------------------------
# Small helpers


def split_list(values: Sequence[str]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``."""
    out: list[str] = []
    for v in values:
        out += [part.strip() for part in str(v).split(",") if part.strip()]
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    for i, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
        if i == 0:
            click.echo("  ".join("-" * w for w in widths))


def echo_err(message: str) -> None:
    click.echo(message, err=True)
