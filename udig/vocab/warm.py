"""Compile the engine before the first request: every kernel a DIG or UDIG request runs, on a tiny vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from .graph import knn_graph
from .nearest import CandidateRows

WARM_METHODS = ("udig", "dig")
# Each method's kernels in parts that compile independently, so that a server can use one part while the next
# compiles: UDIG's nearest-word search, its anchor chains, and the int8 screen that only speeds its search up
# (the search gives the same words without it); DIG's graph build and its anchor chains.
WARM_PARTS = {"udig": ("udig-search", "udig-chains", "udig-screen"), "dig": ("dig-graph", "dig-chains")}
# The order `python -m udig.vocab` compiles them in: what a first UDIG request needs, then a first DIG
# request's graph and chains, then UDIG's screen.
COMPILE_ORDER = ("udig-search", "udig-chains", "dig-graph", "dig-chains", "udig-screen")
WARM_NAMES = WARM_METHODS + COMPILE_ORDER


def warm_up(names: Iterable[str] = WARM_METHODS) -> dict[str, float]:
    """Compile the kernels a first request of each method (or each part of one, :data:`WARM_PARTS`) needs, and
    return the seconds each name took.

    numba compiles a kernel on its first call, for the types it is called with, and keeps the machine code in
    its disk cache (beside ``udig/kernels``, or in ``NUMBA_CACHE_DIR``), which is specific to the processor: a
    new container compiles them all again (``benchmarks/coldstart_results.md``). This makes the same calls as
    a request, on a random 64 x 8 vocabulary, so the kernels compile for the very types a request passes; with
    a warm cache it only loads them. "udig": the nearest-word search, the anchor chains with candidates per
    step and the monotone points, and (on a processor with an exact int8 product) the int8 screen of the
    search. "dig": the graph build and the anchor chains on a graph. A server can run this in a background
    thread at start; requests arriving meanwhile wait at numba's compile lock, never compile twice. It does
    not build a model's graph (:meth:`udig.vocab.VocabIndex.graph` does, and caches it)."""
    names = tuple(names)
    unknown = set(names) - set(WARM_NAMES)
    if unknown:
        raise ValueError(f"cannot warm up {sorted(unknown)}; choose among {WARM_NAMES}")
    seconds = {}
    for name in names:
        start = time.perf_counter()
        for part in WARM_PARTS.get(name, (name,)):
            _compile(part)
        seconds[name] = time.perf_counter() - start
    return seconds


def _compile(part: str) -> None:
    """One part's calls, on the tiny vocabulary. A chains part takes random candidates of its search's shape
    and type (int64 ids from UDIG's search, int32 from DIG's graph: :func:`udig.paths.anchor_chains` hands the
    kernels int32 ids either way)."""
    from ..paths import anchor_chains, monotone_points, udig_reference_alphas  # paths imports nothing of vocab

    generator = torch.Generator().manual_seed(0)
    table = torch.randn(64, 8, generator=generator)
    word_ids, reference_ids, m = torch.tensor([3, 5]), torch.tensor([0, 0]), 3
    if part in ("udig-search", "udig-screen"):
        rows = CandidateRows(table, table.square().sum(1), None)
        alphas = udig_reference_alphas(m)
        rows.nearest_on_segments(table[reference_ids], table[word_ids], alphas, 4, screen=part == "udig-screen")
        return
    if part == "dig-graph":
        knn_graph(table, 4, torch.arange(len(table)) % 8 != 0)  # keys' rows, and other rows ranked on demand
        return
    if part == "udig-chains":
        candidates = torch.randint(len(table), (len(word_ids), m, 4), generator=generator)
    else:
        candidates = torch.randint(len(table), (len(table), 4), generator=generator, dtype=torch.int32)
    for strategy in ("greedy", "maxcount"):  # one kernel for both; each takes its own branches
        chains = anchor_chains(word_ids, reference_ids, table, candidates, strategy, m)
    monotone_points(chains, reference_ids, table, m)
