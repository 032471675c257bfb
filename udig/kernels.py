"""Compiled inner loops: the one place udig uses numba.

DIG scores 500 candidate rows x d dimensions per token and anchor step; as tensor operations that is
several passes over memory, compiled it is one pass per row (3-5x faster on CPU). Compiled on first use
(about 1 s) and cached on disk beside this file. The maths is documented in :func:`udig.paths.candidate_costs`.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

_LOCK = threading.Lock()  # numba's fallback thread pool (workqueue) must not be entered from two threads


def score_candidates(ids, table, low, high, fallback, greedy: bool, out) -> None:
    """Fill ``out (T, K)`` with the cost of candidate rows ``table[ids]``; see ``candidate_costs``."""
    with _LOCK:
        _score_candidates(ids, table, low, high, fallback, greedy, out)


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _score_candidates(ids, table, low, high, fallback, greedy, out):  # pragma: no cover - compiled
    """out[t, j] for row ids[t, j], in one pass over it: Greedy, its distance to its monotonized version
    (the fallback in every dimension outside the box [low, high]); MaxCount, minus its monotone dimensions."""
    n_tokens, n_candidates = ids.shape
    dims = table.shape[1]
    for flat in numba.prange(n_tokens * n_candidates):
        t = flat // n_candidates
        j = flat - t * n_candidates
        row = table[ids[t, j]]
        outside = 0
        gap_sq = row[0] * 0
        for i in range(dims):
            if (row[i] < low[t, i]) | (row[i] > high[t, i]):
                if greedy:  # loop-invariant: the compiler unswitches it
                    gap_sq += (row[i] - fallback[t, i]) ** 2
                else:
                    outside += 1
        out[t, j] = np.sqrt(gap_sq) if greedy else outside - dims
