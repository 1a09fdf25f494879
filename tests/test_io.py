"""Atomic writes: a reader sees the old content or all of the new, and a failed write leaves no trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmix._io import atomic_write_dir, atomic_write_text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_text_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and leftovers(target.parent) == []


def write_files(**files: str):
    def write(folder: Path) -> None:
        assert folder.is_dir() and not any(folder.iterdir())  # a fresh, empty directory
        for name, text in files.items():
            (folder / name).write_text(text)

    return write


def test_atomic_write_dir_creates_and_replaces_whole_directories(tmp_path):
    target = tmp_path / "nested" / "model"
    assert atomic_write_dir(target, write_files(a="1", b="2")) == target
    assert sorted(p.name for p in target.iterdir()) == ["a", "b"]
    atomic_write_dir(target, write_files(c="3"))
    # The old directory is replaced as a whole: no file of it survives beside the new ones.
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert leftovers(target.parent) == []


def test_atomic_write_dir_failure_keeps_the_old_directory(tmp_path):
    target = tmp_path / "model"
    atomic_write_dir(target, write_files(a="old"))

    def broken(folder: Path) -> None:
        (folder / "a").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_dir(target, broken)
    assert (target / "a").read_text() == "old" and leftovers(tmp_path) == []
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_dir(tmp_path / "new", broken)
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_atomic_write_dir_puts_the_old_directory_back_when_the_swap_fails(tmp_path, monkeypatch):
    target = tmp_path / "model"
    atomic_write_dir(target, write_files(a="old"))
    real_replace = os.replace

    def failing_second_rename(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise OSError("rename refused")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_second_rename)
    with pytest.raises(OSError, match="rename refused"):
        atomic_write_dir(target, write_files(a="new"))
    assert (target / "a").read_text() == "old" and leftovers(tmp_path) == []
