"""What the kernels share: one lock and one thread count for every compiled call, and the bit tricks of
their rankings (float order as integers, one-word sort keys, blocks of eight rows).

numba's disk cache checks only the file a compiled function is defined in: a kernel that inlines a helper
from this file keeps its cached machine code after an edit here. After editing this file, delete the cache
(``udig/kernels/__pycache__/*.nbi`` and ``*.nbc``) so that every kernel compiles again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numba
import numpy as np
import torch

_LOCK = threading.Lock()  # numba's fallback thread pool (workqueue) must not be entered from two threads


def _follow_torch_threads() -> None:
    """Run on as many threads as torch: one knob (``torch.set_num_threads``) for all of udig's work, so
    that one-thread evaluation workers do not each start a numba thread per core and fight over them."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def run(kernel: Callable, *args) -> None:
    """Call a compiled kernel under the lock, on as many threads as torch."""
    with _LOCK:
        _follow_torch_threads()
        kernel(*args)


@numba.njit(cache=True, inline="always")
def _next_seven(j, last):  # pragma: no cover - compiled
    """The seven positions after ``j``, ``last`` repeated past it: the rest of a block of eight rows whose
    tail repeats a real row, so every row takes the same instructions."""
    return (
        min(j + 1, last),
        min(j + 2, last),
        min(j + 3, last),
        min(j + 4, last),
        min(j + 5, last),
        min(j + 6, last),
        min(j + 7, last),
    )


@numba.njit(cache=True, inline="always")
def _sort_key(bits, index):  # pragma: no cover - compiled
    """One 64-bit key: a float32's bits in float order above (smallest first), an index below (ties)."""
    return (np.uint64(_in_float_order(bits)) << np.uint64(32)) | np.uint64(index)


@numba.njit(cache=True, inline="always")
def _in_float_order(bits):  # pragma: no cover - compiled
    """A float32's IEEE bits as an unsigned integer whose order is the float's (smallest first): a negative
    value's bits all flipped, another's sign bit set. Without a branch: ranks and similarities mix signs at
    random, so a branch per key would often be mispredicted (``benchmarks/engine_results.md``)."""
    flip = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return np.uint32(bits ^ flip)
