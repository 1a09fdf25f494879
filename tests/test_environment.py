"""The FLOWMIX_* switches (flowmix._environment): read when asked, with their documented defaults."""

from __future__ import annotations

from pathlib import Path

from flowmix import _environment


def test_defaults_when_nothing_is_set(monkeypatch):
    for name in ("FLOWMIX_NATIVE", "FLOWMIX_CACHE_DIR", "FLOWMIX_FLUSH_DENORMALS", "FLOWMIX_REUSE_MEMORY",
                 "FLOWMIX_DATA", "FLOWMIX_NO_DOWNLOAD", "FLOWMIX_MIRROR", "XDG_CACHE_HOME"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert _environment.native_kernels() and _environment.flush_denormals()
    assert _environment.kernel_cache_dir() is None and _environment.data_dir() is None
    assert _environment.reuse_memory() is None and _environment.mirrors() is None
    assert not _environment.downloads_refused()
    assert _environment.user_cache_dir() == Path.home() / ".cache" / "flowmix"


def test_each_switch_is_read_when_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWMIX_NATIVE", "0")
    monkeypatch.setenv("FLOWMIX_FLUSH_DENORMALS", "0")
    monkeypatch.setenv("FLOWMIX_REUSE_MEMORY", "1")
    monkeypatch.setenv("FLOWMIX_DATA", str(tmp_path))
    monkeypatch.setenv("FLOWMIX_NO_DOWNLOAD", "Yes")
    monkeypatch.setenv("FLOWMIX_MIRROR", "http://127.0.0.1:1/a  http://127.0.0.1:1/b")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert not _environment.native_kernels() and not _environment.flush_denormals()
    assert _environment.reuse_memory() is True and _environment.downloads_refused()
    assert _environment.data_dir() == tmp_path
    assert _environment.mirrors() == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
    assert _environment.user_cache_dir() == tmp_path / "xdg" / "flowmix"
    monkeypatch.setenv("FLOWMIX_REUSE_MEMORY", "0")
    assert _environment.reuse_memory() is False
