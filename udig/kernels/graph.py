"""DIG's graph build, compiled: each row's candidates, kept while the blocks of products go by, and their ranking
(:func:`udig.vocab.graph.knn_graph` computes the products and says what they are).

A row's candidates wait in its buffer (scores and key positions). A score below the row's threshold cannot be
among its k best and is never written; most are not, so a block is scanned a span of scores at a time, a branch
free test first, the scores of a span looked at one by one only when one of them reaches its threshold. A full
buffer is compacted: a guess at a score that at least k of its scores reach (from a sample, checked by a count)
becomes the threshold, and the scores below it are dropped. The threshold only rises and never passes the k-th
best score seen, so no score among the k best is ever dropped.
"""

from __future__ import annotations

import numba
import numpy as np

from .common import _bits_of, _float_of, _in_float_order, _select, run


def empty_candidates(n_rows: int, capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every row's candidates, none yet: scores and key positions ``(n_rows, capacity)``, fill and threshold."""
    return (
        np.empty((n_rows, capacity), np.float32),
        np.empty((n_rows, capacity), np.int32),
        np.zeros(n_rows, np.int64),
        np.full(n_rows, -np.inf, np.float32),
    )


def collect_block(
    products,
    rows,
    row_half,
    row_positions,
    columns,
    column_half,
    column_positions,
    both: bool,
    candidates: tuple,
    k: int,
    parts: int,
) -> None:
    """Offer rows the scores of one block of products ``(R, C)``: row ``rows[a]`` scores the key at position
    ``column_positions[b]`` ``products[a, b] - column_half[b]``, and with ``both`` row ``columns[b]`` also scores
    the key at ``row_positions[a]`` ``products[a, b] - row_half[a]`` (a block of keys against other keys: one
    product serves both sides; without ``both``, ``row_half`` and ``row_positions`` are not read). A key's
    position is what the graph lists and what breaks ties (smaller first).
    Without ``both``, ``rows`` and ``columns`` may be the same keys (a block on the diagonal): a row's product
    with itself is left out. ``candidates``: from :func:`empty_candidates`, with a capacity of at least 2 k.

    The block is cut into ``parts`` x ``parts`` tiles, and ``parts`` threads each take one tile at a time whose
    rows and columns no other thread's tile has (tile (t, t + phase) in each phase), so no two threads offer a
    score to the same row; each tile's scores are read once, for both sides."""
    for phase in range(parts if both else 1):
        run(
            _collect,
            parts,
            products,
            rows,
            row_half,
            row_positions,
            columns,
            column_half,
            column_positions,
            both,
            *candidates,
            k,
            parts,
            phase,
        )


def top_k_of_rows(candidates: tuple, k: int, out) -> None:
    """Fill ``out (V, k)`` with each row's k best key positions, best first, equal scores in position order,
    from the candidates :func:`collect_block` left (at least k per row)."""
    scores, positions, fill, _ = candidates
    run(_top_k_of_rows, len(out), scores, positions, fill, k, out)


_SPAN = 32  # scores tested at once without a branch before any is looked at one by one


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _collect(
    products,
    rows,
    row_half,
    row_positions,
    columns,
    column_half,
    column_positions,
    both,
    scores,
    positions,
    fill,
    threshold,
    k,
    parts,
    phase,
    lo,
    hi,
):  # pragma: no cover - compiled
    """Tiles ``lo`` to ``hi`` of the phase: tile t has the t-th of ``parts`` row ranges and, with ``both``, the
    ``(t + phase)``-th column range (without, every column). Each product is offered to its row and its
    column. A span of products is first tested without a branch (unsigned indices, so that the test compiles
    to vector instructions) for each side; a side that one of them reaches then takes the span without a
    branch on the scores: each is written at the end of the buffer, whose count moves past it only when it
    reaches the threshold (a buffer always has a free place: a full one is compacted at once). A row with
    no candidate yet first gets a threshold from the tile's scores (one that k of them reach), so that its
    first tile does not offer them all."""
    n_rows, n_columns = products.shape
    capacity = scores.shape[1]
    diagonal = not both and rows[0] == columns[0]
    span = np.uint64(_SPAN)
    for t in range(lo, hi):
        a0, a1 = n_rows * t // parts, n_rows * (t + 1) // parts
        c = (t + phase) % parts
        b0, b1 = (n_columns * c // parts, n_columns * (c + 1) // parts) if both else (0, n_columns)
        width = np.uint64(b1 - b0)
        whole = width - width % span
        limits = np.empty(b1 - b0, np.float32)  # the columns' thresholds, kept here while the tile is scanned
        for b in range(b0, b1):
            limits[b - b0] = threshold[columns[b]] if both else np.inf  # without both, no column is a row
        first = np.empty(b1 - b0, np.float32)
        offset = np.uint64(b0)
        for a in range(a0, a1):
            row, products_a = rows[a], products[a]
            half = row_half[a] if both else np.float32(0.0)  # without both, row_half may be empty
            itself = a - b0 if diagonal else -1  # the row's own product, left out
            limit = threshold[row]
            if fill[row] == 0 and b1 - b0 > k:
                n_first = 0
                for b in range(b0, b1):
                    if b - b0 != itself:
                        first[n_first] = products_a[b] - column_half[b]
                        n_first += 1
                limit = threshold[row] = _at_most_kth_largest(first[:n_first], k)
            n = fill[row]
            for start in range(np.uint64(0), width, span):
                stop = min(np.int64(start) + _SPAN, b1 - b0)
                to_row = to_columns = start >= whole  # a short last span is looked at one by one
                if not to_row:
                    row_count = column_count = 0
                    for b in range(start, start + span):
                        product = products_a[offset + b]
                        row_count += product - column_half[offset + b] >= limit
                        column_count += product - half >= limits[b]
                    to_row, to_columns = row_count > 0, column_count > 0
                if to_row:  # every score written, the count moved past those that reach the threshold
                    for i in range(np.int64(start), stop):
                        score = products_a[b0 + i] - column_half[b0 + i]
                        scores[row, n], positions[row, n] = score, column_positions[b0 + i]
                        n += (score >= limit) & (i != itself)
                        if n == capacity:
                            fill[row] = n
                            limit = _compact(scores, positions, fill, threshold, row, k)
                            n = fill[row]
                if to_columns and both:
                    for i in range(np.int64(start), stop):
                        score = products_a[b0 + i] - half
                        column = columns[b0 + i]
                        m = fill[column]
                        scores[column, m], positions[column, m] = score, row_positions[a]
                        m += score >= limits[i]
                        fill[column] = m
                        if m == capacity:
                            limits[i] = _compact(scores, positions, fill, threshold, column, k)
            fill[row] = n


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _compact(scores, positions, fill, threshold, row, k):  # pragma: no cover - compiled
    """Make room in ``row``'s full buffer and return its new threshold: keep the scores that reach a score at
    least k of them reach (:func:`_at_most_kth_largest`); if that would keep more than half the room (many
    equal scores), keep exactly the k best, equal scores in position order (:func:`_best_first`)."""
    n, capacity = fill[row], scores.shape[1]
    row_scores, row_positions = scores[row, :n], positions[row, :n]
    limit = _at_most_kth_largest(row_scores, k)
    kept = 0
    for score in row_scores:
        kept += score >= limit
    if kept > (capacity + k) // 2:
        keys = np.empty(n, np.uint64)
        _best_first(row_scores, row_positions, keys)
        _select(keys, k - 1)
        for i in range(k):
            row_positions[i] = keys[i] & np.uint64(0xFFFFFFFF)
            row_scores[i] = _score_of(np.uint32(keys[i] >> np.uint64(32)))
        limit = _score_of(np.uint32(keys[k - 1] >> np.uint64(32)))
        kept = k
    else:
        kept = 0
        for i in range(n):
            if row_scores[i] >= limit:
                row_scores[kept], row_positions[kept] = row_scores[i], row_positions[i]
                kept += 1
    fill[row] = kept
    threshold[row] = limit
    return limit


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _best_first(row_scores, row_positions, keys):  # pragma: no cover - compiled
    """Fill ``keys`` with one 64-bit key per candidate, smallest for the best: its score's float order
    complemented in the high half, its position in the low half (equal scores in position order)."""
    for i in range(len(row_scores)):
        best_first = np.uint32(0xFFFFFFFF) - _in_float_order(_bits_of(row_scores[i]))
        keys[i] = (np.uint64(best_first) << np.uint64(32)) | np.uint64(row_positions[i])


@numba.njit(cache=True, inline="always")
def _score_of(best_first):  # pragma: no cover - compiled
    """The float32 score whose complemented float order a key's high half holds (:func:`_best_first`'s inverse)."""
    ascending = np.uint32(np.uint32(0xFFFFFFFF) - best_first)
    if ascending >= np.uint32(0x80000000):
        return _float_of(np.uint32(ascending ^ np.uint32(0x80000000)))  # a score >= 0: its sign bit was set
    return _float_of(np.uint32(~ascending))  # a negative score: its bits were flipped


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _at_most_kth_largest(values, k):  # pragma: no cover - compiled
    """A value that at least k of ``values`` reach, close below the k-th largest: a guess from every 8th value,
    checked by a count (a deeper guess if too few reach it), else the exact one."""
    stride = 8
    n_sample = len(values) // stride
    depth = k // stride + 8  # about k + 64 values reach the guess
    sample = np.empty(n_sample, values.dtype)
    while depth < n_sample:
        for i in range(n_sample):
            sample[i] = values[i * stride]
        guess = _select(sample, n_sample - 1 - depth)  # the depth-th largest, from 0
        reached = 0
        for value in values:
            reached += value >= guess
        if reached >= k:
            return guess
        depth *= 2
    copy = values.copy()
    return _select(copy, len(copy) - k)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _top_k_of_rows(scores, positions, fill, k, out, lo, hi):  # pragma: no cover - compiled
    """Rows ``lo`` to ``hi``: the k best scores' positions, best first, equal scores in position order: the keys
    (:func:`_best_first`) of the scores that reach one that k of them reach, sorted (:func:`_radix_sort`)."""
    capacity = scores.shape[1]
    keys, spare, counts = np.empty(capacity, np.uint64), np.empty(capacity, np.uint64), np.empty((8, 256), np.int64)
    for row in range(lo, hi):
        row_scores, row_positions = scores[row, : fill[row]], positions[row, : fill[row]]
        limit = _at_most_kth_largest(row_scores, k)
        n = 0
        for i in range(len(row_scores)):
            if row_scores[i] >= limit:
                best_first = np.uint32(0xFFFFFFFF) - _in_float_order(_bits_of(row_scores[i]))
                keys[n] = (np.uint64(best_first) << np.uint64(32)) | np.uint64(row_positions[i])
                n += 1
        _radix_sort(keys[:n], spare[:n], counts)
        for i in range(k):
            out[row, i] = keys[i] & np.uint64(0xFFFFFFFF)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _radix_sort(keys, spare, counts):  # pragma: no cover - compiled
    """Sort 64-bit ``keys`` in place, smallest first: one stable counting pass per byte, lowest first, skipping
    the bytes all keys share (a row's positions use two or three of their four bytes). ``spare``: as long as
    ``keys``; ``counts (8, 256)``: scratch. Without the branches of a comparison sort, whose outcomes are as
    good as random on the keys of near scores."""
    n = len(keys)
    counts[:, :] = 0
    for key in keys:
        for byte in range(8):
            counts[byte, (key >> np.uint64(8 * byte)) & np.uint64(0xFF)] += 1
    source, target = keys, spare
    for byte in range(8):
        shift = np.uint64(8 * byte)
        if counts[byte, (source[0] >> shift) & np.uint64(0xFF)] == n:
            continue  # every key has this byte
        total = 0
        for digit in range(256):
            counts[byte, digit], total = total, total + counts[byte, digit]
        for key in source:
            digit = (key >> shift) & np.uint64(0xFF)
            target[counts[byte, digit]] = key
            counts[byte, digit] += 1
        source, target = target, source
    if source is not keys:
        for i in range(n):
            keys[i] = source[i]
