"""What the kernels share: how a kernel's items are shared out over threads, the selection and sort that stand in
for numpy's, and the bit tricks of their rankings (float order as integers, one-word sort keys, blocks of eight rows).

Every kernel is a plain ``@njit(nogil=True, cache=True)`` loop over a range of its items (tokens, anchors, rows);
:func:`run` splits the items into as many contiguous ranges as torch has threads and runs them at once, one on
the calling thread and the others on a small pool. So no kernel goes through numba's ``parallel=True``, whose
compiler passes take seconds per kernel, and none calls ``np.partition`` or ``np.sort``, which numba compiles in
seconds each time a kernel uses them (``benchmarks/coldstart_results.md``): :func:`_select` and :func:`_sort`
do their jobs here, compiled once for all the kernels.

numba's disk cache checks only the file a compiled function is defined in: a kernel that uses a helper from
this file keeps its cached machine code after an edit here. After editing this file, delete the cache
(``udig/kernels/__pycache__/*.nbi`` and ``*.nbc``, or the folder ``NUMBA_CACHE_DIR`` names) so that every kernel
compiles again.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def threads() -> int:
    """How many threads a kernel runs on: torch's count, one knob (``torch.set_num_threads``) for all of udig's
    work, so that one-thread evaluation workers run every kernel on their own thread. One where torch is not
    loaded: only the kernel compiler (``python -m udig.vocab``) calls them so, on tiny arrays."""
    torch = sys.modules.get("torch")
    return 1 if torch is None else max(1, torch.get_num_threads())


def run(kernel: Callable, n_items: int, *args) -> None:
    """Call ``kernel(*args, lo, hi)`` over ``[0, n_items)`` split into contiguous ranges, one per thread (at most
    one per item), and wait for all of them. The kernels release the GIL and write disjoint parts of their
    outputs, so concurrent calls (Gradio runs requests at once) need no lock."""
    parts = min(threads(), n_items)
    if parts <= 1:
        kernel(*args, 0, n_items)
        return
    bounds = [n_items * part // parts for part in range(parts + 1)]
    pool = _thread_pool(parts - 1)
    pending = [pool.submit(kernel, *args, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for future in pending:
            future.result()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One pool for every kernel, made on first use with at least ``workers`` threads (the machine's cores
    less the caller's), and made anew with more if a caller needs more."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)  # its running ranges finish; new ones go to the new pool
            _pool_workers = max(workers, (os.cpu_count() or 2) - 1)
            _pool = ThreadPoolExecutor(_pool_workers, thread_name_prefix="udig-kernel")
        return _pool


@numba.njit(cache=True, inline="always")
def _partition(values, lo, hi):  # pragma: no cover - compiled
    """Hoare's partition of ``values[lo : hi + 1]`` around the median of its first, middle and last values, in
    place: returns ``(i, j)`` with none of ``values[lo : j + 1]`` larger than the pivot, none of
    ``values[i : hi + 1]`` smaller, and ``values[j + 1 : i]`` equal to it. No NaN."""
    mid = (lo + hi) // 2
    a, b, c = values[lo], values[mid], values[hi]
    pivot = max(min(a, b), min(max(a, b), c))  # the median of the three
    i, j = lo, hi
    while i <= j:
        while values[i] < pivot:
            i += 1
        while values[j] > pivot:
            j -= 1
        if i <= j:
            values[i], values[j] = values[j], values[i]
            i += 1
            j -= 1
    return i, j


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _select(values, k):  # pragma: no cover - compiled
    """Reorder ``values`` in place so that ``values[k]`` is the k-th smallest (from 0), none before it larger and
    none after it smaller, and return it (Hoare's quickselect on a median of three). No NaN."""
    lo, hi = 0, len(values) - 1
    while lo < hi:
        i, j = _partition(values, lo, hi)
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break  # values[j + 1 : i] all equal the pivot, k among them
    return values[k]


_INSERTION = 16  # ranges this short are sorted by insertion


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sort(keys):  # pragma: no cover - compiled
    """Sort ``keys`` in place, smallest first: quicksort on a median of three, the smaller side first (a stack
    of at most 64 ranges), insertion sort below 16 keys."""
    stack = np.empty(128, np.int64)
    stack[0], stack[1] = 0, len(keys) - 1
    top = 2
    while top > 0:
        top -= 2
        lo, hi = stack[top], stack[top + 1]
        while hi - lo >= _INSERTION:
            i, j = _partition(keys, lo, hi)
            if j - lo < hi - i:  # the larger side waits on the stack, the smaller goes on
                stack[top], stack[top + 1] = i, hi
                hi = j
            else:
                stack[top], stack[top + 1] = lo, j
                lo = i
            top += 2
        _insertion_sort(keys[lo : hi + 1])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _insertion_sort(keys):  # pragma: no cover - compiled
    """Sort in place: linear time on keys that are nearly in order."""
    for i in range(1, len(keys)):
        key, j = keys[i], i - 1
        while j >= 0 and keys[j] > key:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = key


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


@intrinsic
def _bits_of(typingctx, value):  # pragma: no cover - compiled
    """A float32's IEEE bits as a uint32 (a bit cast, no arithmetic)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def _float_of(typingctx, bits):  # pragma: no cover - compiled
    """The float32 whose IEEE bits a uint32 holds (a bit cast, no arithmetic)."""
    if bits != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@numba.njit(cache=True, inline="always")
def _in_float_order(bits):  # pragma: no cover - compiled
    """A float32's IEEE bits as an unsigned integer whose order is the float's (smallest first): a negative
    value's bits all flipped, another's sign bit set. Without a branch: ranks and similarities mix signs at
    random, so a branch per key would often be mispredicted (``benchmarks/engine_results.md``)."""
    flip = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return np.uint32(bits ^ flip)
