"""flowmix._memory: freed tensor memory is reused inside the context, and the defaults return."""

from __future__ import annotations

import ctypes
import resource

import pytest
import torch

from flowmix import _memory


def _minor_faults_of_fresh_tensor(n_floats: int = 16 * 2**20) -> int:
    """Page faults taken by allocating and filling a 64 MiB tensor (freed before the count ends)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(n_floats)
    t.fill_(1.0)
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


def _mapped_bytes_of_fresh_tensor(n_floats: int = 16 * 2**20) -> int:
    """Bytes glibc serves with their own mmap while a 64 MiB tensor is alive (mallinfo2's hblkhd)."""
    mallinfo2 = _memory._glibc.mallinfo2
    mallinfo2.restype = _MallInfo2
    before = mallinfo2().hblkhd
    t = torch.empty(n_floats)
    mapped = mallinfo2().hblkhd - before
    del t
    return mapped


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not _memory.enabled(), reason="needs glibc (and FLOWMIX_REUSE_MEMORY not 0)")
def test_freed_blocks_are_reused_inside_and_released_after():
    if not hasattr(_memory._glibc, "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    block = 16 * 2**20 * 4
    # Outside, a large block is its own mapping; inside it comes from the heap. (Counted by glibc
    # itself: page-fault counts depend on the kernel's transparent huge pages.)
    assert _mapped_bytes_of_fresh_tensor() >= block
    with _memory.reuse_freed_memory():
        assert _mapped_bytes_of_fresh_tensor() == 0
        # The heap may hold free blocks whose pages an earlier malloc_trim gave back; the first
        # allocations fault them in, after which a freed block is reused without faults.
        inside = min(_minor_faults_of_fresh_tensor() for _ in range(8))
        kept = _resident_bytes()
    released = kept - _resident_bytes()
    assert inside < block // resource.getpagesize() // 100, inside
    # On exit the freed block's pages go back to the system.
    assert released > block // 2, (released, block)


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
