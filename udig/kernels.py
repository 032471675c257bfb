"""Compiled inner loops: the one place udig uses numba.

DIG scores 500 candidate rows x d dimensions per token and anchor step; as tensor operations that is
several passes over memory, compiled it is one pass per row (3-5x faster on CPU). The maths is documented
in :func:`udig.paths.candidate_costs`. DIG's graph build keeps the k best of 30,522 scores per row; a
compiled selection does that in about the same time on every row, where ``torch.topk`` took 1.4-2.8 s per
build depending on how the scores are spread. Compiled on first use (about 1 s each) and cached on disk
beside this file.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

_LOCK = threading.Lock()  # numba's fallback thread pool (workqueue) must not be entered from two threads


def _follow_torch_threads() -> None:
    """Run on as many threads as torch: one knob (``torch.set_num_threads``) for all of udig's work, so
    that one-thread evaluation workers do not each start a numba thread per core and fight over them."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def score_candidates(ids, table, low, high, fallback, greedy: bool, out) -> None:
    """Fill ``out (T, K)`` with the cost of candidate rows ``table[ids]``; see ``candidate_costs``."""
    with _LOCK:
        _follow_torch_threads()
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


def top_k_per_row(scores, k: int, out) -> None:
    """Fill ``out (n, k)`` with the column indices of each row's k largest ``scores (n, V)`` (float32, no
    NaN, k <= V), largest first, equal scores in column order."""
    with _LOCK:
        _follow_torch_threads()
        _top_k_per_row(scores, k, out)


@numba.njit(parallel=True, cache=True)
def _top_k_per_row(scores, k, out):  # pragma: no cover - compiled
    """Per row: a guess at the k-th largest from every 16th score, kept if at least k scores reach it
    (else a deeper guess, else every score); the scores that reach it are sorted on one 64-bit key,
    the score's bits flipped to sort descending in the high half and the column in the low half."""
    n_rows, n_cols = scores.shape
    bits = scores.view(np.uint32)
    stride = 16
    n_sample = (n_cols + stride - 1) // stride
    for r in numba.prange(n_rows):
        row = scores[r]
        sample = np.empty(n_sample, np.float32)
        for i in range(n_sample):
            sample[i] = -row[i * stride]
        threshold, count = -np.inf, n_cols
        depth = (k * 13) // (10 * stride) + 8  # about 1.3 k scores reach the guess
        while depth < n_sample:
            guess = -np.partition(sample, depth)[depth]
            reached = 0
            for j in range(n_cols):
                reached += row[j] >= guess
            if reached >= k:
                threshold, count = guess, reached
                break
            depth *= 2
        keys = np.empty(count, np.uint64)
        c = 0
        for j in range(n_cols):
            if row[j] >= threshold:
                b = bits[r, j]  # IEEE bits -> unsigned order equal to float order, then complemented
                ascending = (b ^ np.uint32(0xFFFFFFFF)) if b & np.uint32(0x80000000) else (b | np.uint32(0x80000000))
                keys[c] = (np.uint64(np.uint32(0xFFFFFFFF) - ascending) << np.uint64(32)) | np.uint64(j)
                c += 1
        keys.sort()
        for i in range(k):
            out[r, i] = keys[i] & np.uint64(0xFFFFFFFF)
