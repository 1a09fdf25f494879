"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

The package's file writers (reports, figures, predictions, data conversions, caches, downloads)
go through :func:`atomic_write`: the content is written to a hidden temporary file in the
destination folder, which is renamed onto the destination only once writing succeeded and removed
otherwise. :func:`atomic_write_dir` does the same for a directory of files written together
(a model and its side files).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_dir", "atomic_write_text"]


def _temp_sibling(path: Path) -> Path:
    # Same folder, so os.replace is an atomic rename on the same file system; same suffix, so writers
    # that pick the format by extension (Pillow, numpy's save/savez) still do and add none of their
    # own; a leading dot hides it from globs.
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(temp_path)`` and move the file it wrote onto ``path``.

    The temporary file lies in the folder of ``path`` (created if missing) and has its suffix. If
    ``write`` raises, the temporary file is removed, ``path`` is left as it was and the error
    propagates. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_dir(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(temp_dir)`` on a new empty directory and put that directory in place of ``path``.

    The temporary directory is a hidden sibling of ``path`` (its parent is created if missing). Once
    ``write`` returns, an existing ``path`` is moved aside, the new directory renamed onto ``path``
    and the old one deleted: ``path`` holds either the old files or all the new ones, never a mix.
    (Between the two renames ``path`` is briefly absent; POSIX cannot swap two directories in one
    step.) If ``write`` raises, the temporary directory is removed, ``path`` is left as it was and
    the error propagates. Returns ``path`` as a :class:`~pathlib.Path`.

    Checking that ``path`` may be replaced (that it is not a file or somebody else's directory) is
    the caller's job.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    old = path.with_name(f".{path.name}.{tag}.old")
    try:
        tmp.mkdir()
        write(tmp)
        if path.exists():
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the old directory back before it is deleted below
                raise
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path
