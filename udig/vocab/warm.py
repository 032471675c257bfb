"""Compile the engine before the first request: every kernel a DIG or UDIG request runs, on a tiny vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from .graph import knn_graph
from .nearest import CandidateRows

WARM_METHODS = ("udig", "dig")


def warm_up(methods: Iterable[str] = WARM_METHODS) -> dict[str, float]:
    """Compile the kernels a first request of each method needs, and return the seconds each method took.

    numba compiles a kernel on its first call, for the types it is called with, and keeps the machine code in
    its disk cache (beside ``udig/kernels``, or in ``NUMBA_CACHE_DIR``), which is specific to the processor: a
    new container compiles them all again (``benchmarks/coldstart_results.md``). This makes the same calls as
    a request, on a random 64 x 8 vocabulary, so the kernels compile for the very types a request passes
    (and, on a processor with an exact int8 product, the int8 screen of UDIG's search with them); with a warm
    cache it only loads them. "udig": the nearest-word search, the anchor chains with candidates per step
    and the monotone points. "dig": the graph build and the anchor chains on a graph. A server can run this
    in a background thread at start; requests arriving meanwhile wait at numba's compile lock, never compile
    twice. It does not build a model's graph (:meth:`udig.vocab.VocabIndex.graph` does, and caches it)."""
    from ..paths import anchor_chains, monotone_points, udig_reference_alphas  # paths imports nothing of vocab

    methods = tuple(methods)
    unknown = set(methods) - set(WARM_METHODS)
    if unknown:
        raise ValueError(f"cannot warm up {sorted(unknown)}; choose among {WARM_METHODS}")
    table = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    word_ids, reference_ids, m = torch.tensor([3, 5]), torch.tensor([0, 0]), 3
    seconds = {}
    for method in methods:
        start = time.perf_counter()
        if method == "udig":
            rows = CandidateRows(table, table.square().sum(1), None)
            alphas = udig_reference_alphas(m)
            candidates = rows.nearest_on_segments(table[reference_ids], table[word_ids], alphas, 4)  # (T, m, 4)
        else:
            candidates = knn_graph(table, 4, torch.ones(len(table), dtype=torch.bool))  # (V, 4)
        for strategy in ("greedy", "maxcount"):  # one kernel for both; each takes its own branches
            chains = anchor_chains(word_ids, reference_ids, table, candidates, strategy, m)
        monotone_points(chains, reference_ids, table, m)
        seconds[method] = time.perf_counter() - start
    return seconds
