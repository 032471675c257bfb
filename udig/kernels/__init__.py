"""Compiled inner loops: the one place udig uses numba.

One module per job: :mod:`.chains` (DIG's and UDIG's anchor chains and monotone points), :mod:`.graph` (the
top-k selection of DIG's graph build), :mod:`.search` (UDIG's nearest-word products, ranking and int8 screen),
and :mod:`.common` (the lock, the thread count and the bit tricks they share). Each entry point takes a lock
(numba's fallback thread pool must not be entered from two threads) and runs on as many threads as torch.
Compiled on first use and cached on disk beside these files; the measurements that chose each loop's shape
are in ``benchmarks/engine_results.md``.
"""

from .chains import anchor_chains, monotone_points
from .graph import top_k_per_row
from .search import int8_error_weights, nearest_on_segments, products_with_rows, screen_segments

__all__ = [
    "anchor_chains",
    "int8_error_weights",
    "monotone_points",
    "nearest_on_segments",
    "products_with_rows",
    "screen_segments",
    "top_k_per_row",
]
