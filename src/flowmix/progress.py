"""Progress of long work: a bar where someone watches, one log line per stage elsewhere, nothing unless asked.

A tqdm bar redraws itself with carriage returns several times a second; sent to a log file or a
pipe, those frames become hundreds of lines. :class:`Progress` draws the bar only where it is
watched (stderr is a terminal, or a notebook shows the bar as a widget). Anywhere else it logs
one line when a stage starts and one when it ends, through the ``flowmix.progress`` logger.

Examples
--------
>>> with Progress(3, "demo", unit="step", verbose=False) as bar:
...     for _ in range(3):
...         bar.update()
>>> bar.n
3
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


class _CurrentStderr(logging.Handler):
    """Writes records to whatever ``sys.stderr`` is at the time (as logging's last resort does)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging's contract: a failing handler reports and carries on
            self.handleError(record)


# Where a stage's lines go when the program configured no logging at all: ``verbose=True`` asked
# for them, and logging's own last resort would drop them (it shows warnings and errors only).
_UNCONFIGURED = _CurrentStderr()
_UNCONFIGURED.setFormatter(logging.Formatter("flowmix: %(message)s"))


def on_terminal() -> bool:
    """Whether a bar drawn now would be watched: stderr is a terminal, or a notebook draws widgets."""
    from tqdm import auto

    if auto.notebook_tqdm is not auto.std_tqdm:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return isatty is not None and bool(isatty())


def log_stage(message: str) -> None:
    """One INFO record about a stage, through logging; to stderr if the program configured none.

    It is only called when ``verbose`` asked for the line, so the logger's level (WARNING, as
    inherited from the root, unless someone set it) does not hide it; handlers and filters still
    decide where it goes.
    """
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, (), None)
    if logger.hasHandlers():
        logger.handle(record)
    else:
        _UNCONFIGURED.handle(record)


class Progress:
    """Progress of one stage: a tqdm bar on a terminal, a start and an end line otherwise.

    Parameters
    ----------
    total : int or None
        Units of work in the stage (None: unknown).
    desc : str
        The stage's name, first on the bar and on each line.
    unit : str, default "it"
        What is counted, a noun that takes an "s" in the plural ("epoch", "run").
    verbose : bool, default True
        False shows and logs nothing.
    initial : int, default 0
        Units already done (a resumed stage).
    **bar_options
        Passed to :class:`tqdm.auto.tqdm` when a bar is drawn (``leave``, ``dynamic_ncols``, ...).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "it",
        verbose: bool = True,
        initial: int = 0,
        **bar_options: Any,
    ):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.postfix = ""
        self.verbose = verbose
        self.bar = None
        if verbose and on_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, **bar_options)
        elif verbose:
            resumed = f", from {unit} {initial}" if initial else ""
            log_stage(f"{desc}: {total} {unit}s{resumed}" if total is not None else f"{desc}: started")

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        """Show ``name=value`` pairs after the bar (and on the end line)."""
        self.postfix = ", ".join(f"{name}={value}" for name, value in values.items())
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def set_postfix_str(self, text: str) -> None:
        """Show ``text`` after the bar (and on the end line)."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        """Remove or finish the bar; without one, log where the stage ended."""
        if not self.verbose:
            return
        self.verbose = False  # closed once, however often close is called
        if self.bar is not None:
            self.bar.close()
            return
        if self.total is not None and self.n < self.total:
            line = f"{self.desc}: stopped at {self.unit} {self.n} of {self.total}"
        else:
            line = f"{self.desc}: {self.n} {self.unit}s done"
        log_stage(f"{line}, {self.postfix}" if self.postfix else line)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
