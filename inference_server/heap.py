"""glibc heap settings: large buffers mapped on their own (the HTTP worker), free pages handed back (the engine).

Both calls are no-ops where libc is not glibc.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BUFFER_BYTES = 256 * 1024


def _glibc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def give_large_buffers_back() -> None:
    """From now on, buffers of 256 KiB or more get a mapping of their own, returned to the OS when freed.

    glibc raises its mmap threshold after the first large buffer is freed, and from then on such buffers come
    from the heap, which a flood of uploads leaves at its peak: the HTTP worker held 638 MB of RSS 2 s after
    32 16 MB uploads, 114 MB with a fixed threshold (bench/upload_flood.py).

    Not for the engine: there every step's activations would be mapped and faulted in anew. Measured on the
    mid model (2-core VM), a job's run took 1.56x as long with 256 KiB, 1.15x with 4 MiB.
    """
    libc = _glibc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)


def release_free_heap() -> None:
    """Hand the heap's free pages back to the OS between jobs, so one task's freed memory is not under the next's peak."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
