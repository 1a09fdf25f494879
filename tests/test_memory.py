"""flowmix._memory: off in a library process unless asked for; when on, freed tensor memory is reused."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from flowmix import _memory

# Run in a fresh process: the test suite's own heap may already hold a free block large enough to
# serve a 64 MiB tensor, which would then come from the heap even outside the context.
_MEASURE = """
import ctypes, json, resource
import torch
from flowmix import _memory
_memory.enable_for_process()  # this measuring process plays flowmix's command line

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

_memory._glibc.mallinfo2.restype = MallInfo2
N = 16 * 2**20  # a 64 MiB tensor

def mapped():  # bytes glibc serves with their own mmap while the tensor lives (hblkhd)
    before = _memory._glibc.mallinfo2().hblkhd
    t = torch.empty(N)
    grown = _memory._glibc.mallinfo2().hblkhd - before
    del t
    return grown

def faults():  # page faults of allocating and filling the tensor
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(N)
    t.fill_(1.0)
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

out = {"outside": mapped()}
with _memory.reuse_freed_memory():
    out["inside"] = mapped()
    out["faults"] = min(faults() for _ in range(8))
    kept = resident()
out["released"] = kept - resident()
print(json.dumps(out))
"""


@pytest.mark.skipif(
    _memory._glibc is None or os.environ.get("FLOWMIX_REUSE_MEMORY") == "0",
    reason="needs glibc (and FLOWMIX_REUSE_MEMORY not 0)",
)
def test_freed_blocks_are_reused_inside_and_released_after():
    if not hasattr(_memory._glibc, "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    result = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    block = 16 * 2**20 * 4
    # Counted by glibc itself (page-fault counts alone depend on the kernel's huge pages):
    # outside, a large block is its own mapping; inside, it comes from the heap and a freed one is
    # reused without faulting its pages in again; on exit its pages go back to the system.
    assert measured["outside"] >= block, measured
    assert measured["inside"] == 0, measured
    assert measured["faults"] < block // resource.getpagesize() // 100, measured
    assert measured["released"] > block // 2, measured


def test_nesting_restores_defaults_only_when_the_last_exits(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(("mallopt", param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(_memory, "_glibc", FakeLibc())
    monkeypatch.setattr(_memory, "_owned", True)
    monkeypatch.delenv("FLOWMIX_REUSE_MEMORY", raising=False)
    with _memory.reuse_freed_memory():
        with _memory.reuse_freed_memory():
            pass
        assert ("trim", 0) not in calls
        assert (("mallopt", _memory._M_MMAP_MAX, 0)) in calls
    assert calls[-1] == ("trim", 0)
    assert ("mallopt", _memory._M_MMAP_MAX, _memory._DEFAULT_MMAP_MAX) in calls
    assert ("mallopt", _memory._M_MMAP_THRESHOLD, 32 * 2**20) in calls
    assert _memory._depth == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLOWMIX_REUSE_MEMORY", "0"),
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1"),
    ],
)
def test_environment_turns_it_off(monkeypatch, name, value):
    monkeypatch.setattr(_memory, "_owned", True)  # even in flowmix's own process
    monkeypatch.setenv(name, value)
    assert not _memory.enabled()

    def fail(*args):
        raise AssertionError("the allocator must not be touched when turned off")

    monkeypatch.setattr(_memory, "_glibc", type("Libc", (), {"mallopt": fail, "malloc_trim": fail})())
    with _memory.reuse_freed_memory():
        pass


class _Recorder:
    """Stands for glibc: records every call, changes nothing."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


@pytest.fixture
def library_process(monkeypatch):
    """A process that imported flowmix as a library: not flowmix's own, no FLOWMIX_REUSE_MEMORY."""
    recorder = _Recorder()
    monkeypatch.setattr(_memory, "_glibc", recorder)
    monkeypatch.setattr(_memory, "_owned", False)
    for name in ("FLOWMIX_REUSE_MEMORY", "GLIBC_TUNABLES", *_memory._USER_TUNING):
        monkeypatch.delenv(name, raising=False)
    return recorder


def test_a_library_process_keeps_its_allocator_settings(library_process):
    assert not _memory.enabled()
    with _memory.reuse_freed_memory():
        pass
    assert library_process.calls == []


def test_a_fresh_library_process_is_left_alone():
    code = "import flowmix, flowmix._memory; print(flowmix._memory.enabled())"
    env = {k: v for k, v in os.environ.items() if k != "FLOWMIX_REUSE_MEMORY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_the_environment_opts_in(library_process, monkeypatch):
    monkeypatch.setenv("FLOWMIX_REUSE_MEMORY", "1")
    assert _memory.enabled()
    with _memory.reuse_freed_memory():
        assert ("mallopt", _memory._M_MMAP_MAX, 0) in library_process.calls


def test_a_program_that_owns_its_process_opts_in(library_process, monkeypatch):
    _memory.enable_for_process()
    assert _memory.enabled()
    with _memory.reuse_freed_memory():
        assert ("mallopt", _memory._M_MMAP_MAX, 0) in library_process.calls
    monkeypatch.setenv("FLOWMIX_REUSE_MEMORY", "0")  # still the user's last word
    assert not _memory.enabled()
