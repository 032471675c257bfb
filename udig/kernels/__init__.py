"""Compiled inner loops: the one place udig uses numba.

One module per job: :mod:`.chains` (DIG's and UDIG's anchor chains and monotone points), :mod:`.graph` (the
candidates and ranking of DIG's graph build), :mod:`.search` (UDIG's nearest-word products, ranking and int8
screen), and :mod:`.common` (how a kernel's items are shared out over threads, the selection and sort, and the
bit tricks they share). Each kernel runs over a range of its items and releases the GIL; each entry point shares
the items out over as many threads as torch. Compiled on first use (:func:`udig.vocab.warm_up` compiles every
kernel a request needs, on a tiny vocabulary) and cached on disk beside these files, or in ``NUMBA_CACHE_DIR``;
the measurements that chose each loop's shape are in ``benchmarks/engine_results.md`` and
``benchmarks/coldstart_results.md``.
"""

from .chains import anchor_chains, monotone_points
from .graph import collect_block, empty_candidates, top_k_of_rows
from .search import int8_error_weights, nearest_on_segments, products_with_rows, screen_segments

__all__ = [
    "anchor_chains",
    "collect_block",
    "empty_candidates",
    "int8_error_weights",
    "monotone_points",
    "nearest_on_segments",
    "products_with_rows",
    "screen_segments",
    "top_k_of_rows",
]
