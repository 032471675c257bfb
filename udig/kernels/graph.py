"""DIG's graph build: the k largest scores of each row, compiled (:func:`udig.vocab.graph.knn_graph`)."""

from __future__ import annotations

import numba
import numpy as np

from .common import _in_float_order, run


def top_k_per_row(scores, k: int, out) -> None:
    """Fill ``out (n, k)`` with the column indices of each row's k largest ``scores (n, V)`` (float32, no
    NaN, k <= V), largest first, equal scores in column order."""
    run(_top_k_per_row, scores, k, out)


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
                ascending = _in_float_order(bits[r, j])  # then complemented: largest first
                keys[c] = (np.uint64(np.uint32(0xFFFFFFFF) - ascending) << np.uint64(32)) | np.uint64(j)
                c += 1
        keys.sort()
        for i in range(k):
            out[r, i] = keys[i] & np.uint64(0xFFFFFFFF)
