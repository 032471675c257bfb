"""Compile the engine before the first request: every kernel a DIG or UDIG request runs, on a tiny vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from .graph import knn_graph
from .nearest import CandidateRows

WARM_METHODS = ("udig", "dig")
# Each method's kernels in two halves that compile independently, so that two processes can share them out
# (app.py): the search for candidates (UDIG's nearest words, DIG's graph build) and the anchor chains on them.
WARM_PARTS = {"udig": ("udig-search", "udig-chains"), "dig": ("dig-graph", "dig-chains")}
WARM_NAMES = WARM_METHODS + tuple(part for parts in WARM_PARTS.values() for part in parts)


def warm_up(methods: Iterable[str] = WARM_METHODS) -> dict[str, float]:
    """Compile the kernels a first request of each method needs, and return the seconds each method took.

    numba compiles a kernel on its first call, for the types it is called with, and keeps the machine code in
    its disk cache (beside ``udig/kernels``, or in ``NUMBA_CACHE_DIR``), which is specific to the processor: a
    new container compiles them all again (``benchmarks/coldstart_results.md``). This makes the same calls as
    a request, on a random 64 x 8 vocabulary, so the kernels compile for the very types a request passes
    (and, on a processor with an exact int8 product, the int8 screen of UDIG's search with them); with a warm
    cache it only loads them. "udig": the nearest-word search ("udig-search") and the anchor chains with
    candidates per step and the monotone points ("udig-chains"). "dig": the graph build ("dig-graph") and the
    anchor chains on a graph with the monotone points ("dig-chains"). A part alone compiles half a method,
    for two processes to share (:data:`WARM_PARTS`). A server can run this in a background thread at start;
    requests arriving meanwhile wait at numba's compile lock, never compile twice. It does not build a
    model's graph (:meth:`udig.vocab.VocabIndex.graph` does, and caches it)."""
    methods = tuple(methods)
    unknown = set(methods) - set(WARM_NAMES)
    if unknown:
        raise ValueError(f"cannot warm up {sorted(unknown)}; choose among {WARM_NAMES}")
    seconds = {}
    for name in methods:
        start = time.perf_counter()
        for part in WARM_PARTS.get(name, (name,)):
            _compile(part)
        seconds[name] = time.perf_counter() - start
    return seconds


def _compile(part: str) -> None:
    """One part's calls, on the tiny vocabulary; a chains part takes random candidates of the search's shape
    (the kernels see the same types: :func:`udig.paths.anchor_chains` hands them int32 ids either way)."""
    from ..paths import anchor_chains, monotone_points, udig_reference_alphas  # paths imports nothing of vocab

    generator = torch.Generator().manual_seed(0)
    table = torch.randn(64, 8, generator=generator)
    word_ids, reference_ids, m = torch.tensor([3, 5]), torch.tensor([0, 0]), 3
    if part == "udig-search":
        rows = CandidateRows(table, table.square().sum(1), None)
        rows.nearest_on_segments(table[reference_ids], table[word_ids], udig_reference_alphas(m), 4)
        return
    if part == "dig-graph":
        knn_graph(table, 4, torch.ones(len(table), dtype=torch.bool))
        return
    shape = (len(word_ids), m, 4) if part == "udig-chains" else (len(table), 4)
    candidates = torch.randint(len(table), shape, generator=generator)
    for strategy in ("greedy", "maxcount"):  # one kernel for both; each takes its own branches
        chains = anchor_chains(word_ids, reference_ids, table, candidates, strategy, m)
    monotone_points(chains, reference_ids, table, m)
