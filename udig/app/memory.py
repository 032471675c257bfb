"""Memory a request frees goes back to the system, so a long-running demo stays at its size.

glibc's malloc serves a large block from the heap of the thread's arena instead of its own mapping once a
block that size has been freed (its mapping threshold rises with every such free, up to 32 MB), and keeps
freed heap memory unless its top is free: a server whose requests allocate and free hundreds of MB of tensors
in several threads grows by each arena's high-water mark and never shrinks. Setting the two thresholds fixes
the threshold at 128 kB (as ``MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072`` would, but those
must be set before the process starts): large blocks are mapped and unmapped whole. ``malloc_trim(0)`` after
a request hands back what the arenas still hold. Elsewhere than glibc (macOS, musl) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024  # glibc's initial mmap threshold: blocks of 128 kB and more get their own mapping


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the one with ``mallopt`` and ``malloc_trim``), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def hand_back_freed_memory() -> bool:
    """Fix glibc's mapping and trim thresholds for this process (call once, at start); whether it was done."""
    libc = _glibc()
    if libc is None:
        return False
    done = all(libc.mallopt(parameter, THRESHOLD_BYTES) == 1 for parameter in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))
    if not done:
        logger.warning("glibc refused mallopt: freed memory may stay with the process")
    return done


def trim() -> None:
    """Hand the memory glibc's arenas hold but no longer use back to the system (a no-op without glibc)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
