"""Compile the engine before the first request: every kernel a DIG or UDIG request runs, on a tiny vocabulary."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

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

    numba compiles a kernel on its first call, for the types it is called with, and keeps the machine code in its
    disk cache (beside ``udig/kernels``, or in ``NUMBA_CACHE_DIR``), which is specific to the processor: a new
    container compiles them all again (``benchmarks/coldstart_results.md``). This calls each kernel as a request
    does, with numpy arrays of the same types on a random 64 x 8 vocabulary, so the kernels compile for the very
    types a request passes (a later request compiles nothing: tested); with a warm cache it only loads them. It
    needs no torch but for the int8 screen, whose products torch makes: the compiler process (``python -m
    udig.vocab``) saves torch's import (0.9 s) before the parts a first request waits for. "udig": the nearest-word
    search, the anchor chains with candidates per step and the monotone points, and (on a processor with an exact
    int8 product) the int8 screen of the search. "dig": the graph build and the anchor chains on a graph. A server
    can run this in a background thread at start; requests arriving meanwhile wait at numba's compile lock, never
    compile twice. It does not build a model's graph (:meth:`udig.vocab.VocabIndex.graph` does, and caches it)."""
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
    """One part's kernel calls, with arrays of the types their callers pass: float32 row-major rows, int64 ids
    (:func:`udig.paths.anchor_chains` and the searches), int32 candidate ids (UDIG's per step and DIG's graph
    alike: ``anchor_chains`` hands the kernels int32 either way), int64 chains, and each call's own buffers."""
    from .. import kernels  # numba loads here, not when udig.vocab is imported

    generator = np.random.default_rng(0)
    table = generator.standard_normal((64, 8), dtype=np.float32)
    word_ids, reference_ids, m, k = np.array([3, 5]), np.array([0, 0]), 3, 4
    if part == "udig-screen":  # the int8 products come from torch (udig.vocab.int8): its search, screened
        import torch

        from .nearest import CandidateRows

        rows = CandidateRows(torch.from_numpy(table), torch.from_numpy((table * table).sum(1)), None)
        alphas = torch.arange(m, 0, -1, dtype=torch.float32) / (m + 1)
        rows.nearest_on_segments(rows.rows[reference_ids], rows.rows[word_ids], alphas, k, screen=True)
        return
    every_row = np.arange(len(table))
    if part in ("udig-search", "dig-graph"):  # products of a few rows with many (UDIG's search, DIG's other rows)
        queries = table[[0, 3, 5]]  # UDIG: the distinct start, then each token's end
        products = np.empty((len(queries), len(table)), np.float32)
        kernels.products_with_rows(table, every_row, queries, products)
    if part == "udig-search":
        alphas = np.arange(m, 0, -1, dtype=np.float32) / (m + 1)
        nearest = np.empty((len(word_ids), m, k), np.int64)
        which = np.zeros(len(word_ids), np.int64)  # each token's start, among the distinct ones
        kernels.nearest_on_segments(products, which, (table * table).sum(1), alphas, k, nearest)
        return
    if part == "dig-graph":  # a block of keys against keys, offered to both sides, then each row's k best
        half = 0.5 * (table * table).sum(1)  # float32, as the build's
        block = table @ table.T
        candidates = kernels.empty_candidates(len(table), 2 * k)
        kernels.collect_block(block, every_row, half, every_row, every_row, half, every_row, False, candidates, k, 1)
        kernels.top_k_of_rows(candidates, k, np.empty((len(table), k), np.int32))
        return
    per_step = part == "udig-chains"
    candidates = generator.integers(len(table), size=(len(word_ids) * m if per_step else len(table), k), dtype=np.int32)
    chains = np.empty((len(word_ids), m + 1), np.int64)
    for greedy in (True, False):  # one kernel for both; each takes its own branches
        kernels.anchor_chains(table, word_ids, reference_ids, candidates, per_step, m, greedy, chains)
    points = np.empty((m + 2, len(word_ids), table.shape[1]), np.float32)
    kernels.monotone_points(table, chains, reference_ids, m, points)
