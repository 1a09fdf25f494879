"""flowmix._memory: freed tensor memory is reused inside the context, and the defaults return."""

from __future__ import annotations

import json
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


@pytest.mark.skipif(not _memory.enabled(), reason="needs glibc (and FLOWMIX_REUSE_MEMORY not 0)")
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
    monkeypatch.setenv(name, value)
    assert not _memory.enabled()

    def fail(*args):
        raise AssertionError("the allocator must not be touched when turned off")

    monkeypatch.setattr(_memory, "_glibc", type("Libc", (), {"mallopt": fail, "malloc_trim": fail})())
    with _memory.reuse_freed_memory():
        pass
