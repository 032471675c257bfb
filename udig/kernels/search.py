"""UDIG's nearest-word search, compiled: products of a few queries with many rows, the exact ranking along
each segment, and the int8 screen that sets rows aside first (:mod:`udig.vocab.nearest` describes the search).
"""

from __future__ import annotations

import numba
import numpy as np

from .common import _bits_of, _insertion_sort, _next_seven, _select, _sort, _sort_key, run


def products_with_rows(rows, ids, queries, out) -> None:
    """Fill ``out (Q, len(ids))`` with the dot product of each of the few ``queries (Q, d)`` with each of
    the many rows ``rows[ids]`` (float32, row-major: the embedding matrix itself, no gathered copy)."""
    run(_products_with_rows, (len(ids) + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK, rows, ids, queries, out)


def nearest_on_segments(products, which, key_sq, alphas, k: int, out) -> None:
    """Fill ``out (T, m, k)`` with the positions of the k candidate rows nearest to each point
    ``start_t + alpha_j (end_t - start_t)``, nearest first, equal distances in position order.

    ``products (U + T, A)`` holds the U distinct start rows' and then the T end rows' dot products with
    the A candidate rows, ``which (T,)`` each token's start row, ``key_sq (A,)`` the candidates' squared
    norms; see :meth:`udig.vocab.nearest.CandidateRows.nearest_on_segments` for the ranking this computes."""
    run(_nearest_on_segments, len(which), products, which, key_sq, alphas, alphas.min(), alphas.max(), k, out)


def screen_segments(products, query_terms, row_terms, dims: int, which, key_sq, alphas, k: int, keep) -> None:
    """Mark in ``keep (T, A)`` every candidate row that may be among token t's k nearest at some alpha,
    judged from int8 ``products (U + T, A)`` (exact integers: the queries' codes times the rows' codes) and the
    ``(3, n)`` terms of queries and rows (each one's step, L1 and L2 norms: :func:`udig.vocab.int8.int8_codes`)
    in ``dims`` dimensions; see :meth:`udig.vocab.nearest.CandidateRows.nearest_on_segments`."""
    run(
        _screen_segments,
        len(which),
        products,
        query_terms,
        row_terms,
        dims,
        which,
        key_sq,
        alphas.min(),
        alphas.max(),
        k,
        keep,
    )


_ROWS_PER_TASK = 128  # rows per task (tasks are shared out over the threads); each reads them once, 8 at a time


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _products_with_rows(rows, ids, queries, out, first_task, end_task):  # pragma: no cover - compiled
    """Eight rows against two queries at a time: sixteen sums in registers, each row element loaded is
    used twice and each query element eight times; the rows are read from memory once (why two queries per
    pass: ``benchmarks/engine_results.md``). A task's last rows and an odd last query repeat the nearest
    real one (written twice, same value), so every product comes from the same instructions: a row's
    product does not depend on where it sits, or on which other rows are listed with it. BLAS libraries
    tile for large products; this shape (a handful of queries, tens of thousands of rows) is where MKL
    took a slow path on AMD CPUs."""
    n_queries, dims = queries.shape
    n_rows = len(ids)
    for task in range(first_task, end_task):
        r = task * _ROWS_PER_TASK
        last = min(n_rows, r + _ROWS_PER_TASK) - 1
        while r <= last:
            i0 = r
            i1, i2, i3, i4, i5, i6, i7 = _next_seven(r, last)
            r0, r1, r2, r3 = rows[ids[i0]], rows[ids[i1]], rows[ids[i2]], rows[ids[i3]]
            r4, r5, r6, r7 = rows[ids[i4]], rows[ids[i5]], rows[ids[i6]], rows[ids[i7]]
            for q in range(0, n_queries, 2):
                p = min(q + 1, n_queries - 1)
                x, y = queries[q], queries[p]
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0)
                b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = np.float32(0)
                for i in range(dims):
                    xi, yi = x[i], y[i]
                    a0 += r0[i] * xi
                    b0 += r0[i] * yi
                    a1 += r1[i] * xi
                    b1 += r1[i] * yi
                    a2 += r2[i] * xi
                    b2 += r2[i] * yi
                    a3 += r3[i] * xi
                    b3 += r3[i] * yi
                    a4 += r4[i] * xi
                    b4 += r4[i] * yi
                    a5 += r5[i] * xi
                    b5 += r5[i] * yi
                    a6 += r6[i] * xi
                    b6 += r6[i] * yi
                    a7 += r7[i] * xi
                    b7 += r7[i] * yi
                out[p, i0], out[p, i1], out[p, i2], out[p, i3] = b0, b1, b2, b3
                out[p, i4], out[p, i5], out[p, i6], out[p, i7] = b4, b5, b6, b7
                out[q, i0], out[q, i1], out[q, i2], out[q, i3] = a0, a1, a2, a3
                out[q, i4], out[q, i5], out[q, i6], out[q, i7] = a4, a5, a6, a7
            r += 8


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _nearest_on_segments(products, which, key_sq, alphas, lo_alpha, hi_alpha, k, out, lo, hi):  # pragma: no cover
    """Per token from ``lo`` to ``hi``: each row's rank ``a + alpha b`` (``a = |c|^2 - 2 c.s``,
    ``b = 2 c.(s - e)``) and its lower and upper end values over the alphas' range (from ``lo_alpha`` to
    ``hi_alpha``). Any k rows whose upper ends reach a threshold are at least that close everywhere, so only
    rows whose lower end reaches it can be among the k nearest anywhere (:func:`_at_least_kth_smallest`).
    At each point a bound on the k-th smallest value (a partial sort at the first point; after it, the previous
    point's k nearest, which are k rows) leaves only a few more than k rows to sort, on one 64-bit key
    (the value's bits, then the position: equal values in position order). After the first point the
    previous nearest are listed first, in their order, and the few others after them: an insertion sort
    then does little work, where a full sort would sort them again."""
    n_unique = len(products) - len(which)
    n_keys = products.shape[1]
    for t in range(lo, hi):
        start, end = products[which[t]], products[n_unique + t]
        offset = np.empty(n_keys, np.float32)
        slope = np.empty(n_keys, np.float32)
        lower = np.empty(n_keys, np.float32)
        upper = np.empty(n_keys, np.float32)
        for c in range(n_keys):
            a = key_sq[c] - np.float32(2) * start[c]
            b = np.float32(2) * (start[c] - end[c])
            at_low, at_high = a + lo_alpha * b, a + hi_alpha * b
            offset[c], slope[c] = a, b
            lower[c], upper[c] = min(at_low, at_high), max(at_low, at_high)
        threshold = _at_least_kth_smallest(upper, k)
        n_kept = 0
        for c in range(n_keys):
            n_kept += lower[c] <= threshold
        positions, kept_offset, kept_slope = (
            np.empty(n_kept, np.int64),
            np.empty(n_kept, np.float32),
            np.empty(n_kept, np.float32),
        )
        n_kept = 0
        for c in range(n_keys):  # in position order
            if lower[c] <= threshold:
                positions[n_kept], kept_offset[n_kept], kept_slope[n_kept] = c, offset[c], slope[c]
                n_kept += 1
        values, scratch = np.empty(n_kept, np.float32), np.empty(n_kept, np.float32)
        keys = np.empty(n_kept, np.uint64)  # the value's order, then the kept index (the position's order)
        nearest = np.empty(k, np.int64)  # kept indices of the current point's k nearest, nearest first
        listed = np.zeros(n_kept, np.bool_)  # among them
        for j in range(len(alphas)):
            alpha = alphas[j]
            for i in range(n_kept):
                values[i] = kept_offset[i] + alpha * kept_slope[i]
            n = 0
            if j == 0:  # the k-th smallest value bounds the k nearest
                for i in range(n_kept):
                    scratch[i] = values[i]
                reach = _select(scratch, k - 1)
            else:  # the previous point's k nearest are k rows, so they bound them too; listed first, in order
                reach = np.float32(-np.inf)
                for i in nearest:
                    reach = max(reach, values[i])
                for i in nearest:
                    keys[n] = _sort_key(_bits_of(values[i]), i)
                    n += 1
            for i in range(n_kept):
                if values[i] <= reach and not listed[i]:
                    keys[n] = _sort_key(_bits_of(values[i]), i)
                    n += 1
            if j > 0 and n <= 2 * k:  # nearly in order already: neighbouring points share most of their nearest
                _insertion_sort(keys[:n])
            else:
                if n > 2 * k:  # the previous nearest moved far: select the k first before sorting them
                    _select(keys[:n], k - 1)
                    n = k
                _sort(keys[:n])
            if j > 0:
                for r in range(k):
                    listed[nearest[r]] = False
            for r in range(k):
                nearest[r] = keys[r] & np.uint64(0xFFFFFFFF)
                out[t, j, r] = positions[nearest[r]]
                listed[nearest[r]] = True


@numba.njit(cache=True, inline="always")
def int8_error_weights(step, l1, l2, dims):  # pragma: no cover - compiled
    """The most an int8 product (codes times both steps) can differ from :func:`products_with_rows`'s float32
    one, as weights on the other vector's (step, L1, L2): ``w_step c_step + w_l1 c_l1 + w_l2 c_l2``.
    Coding moves each value by at most half its step, so ``|q.c - q'.c'|`` is at most
    ``c_step/2 |q|_1 + q_step/2 |c|_1 + d q_step c_step / 4`` (2^-20 more for float64's roundings in
    coding), and the float32 sum is within ``1.01 d 2^-24 |q|_2 |c|_2`` of the exact one.
    Pure arithmetic: ``.py_func`` takes numpy arrays too."""
    half = 0.5 + 2.0**-20
    return l1 * half + dims * step * 0.25, step * half, 1.01 * dims * 2.0**-24 * l2


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _screen_segments(
    products, query_terms, row_terms, dims, which, key_sq, lo_alpha, hi_alpha, k, keep, lo, hi
):  # pragma: no cover - compiled
    """:func:`_nearest_on_segments`'s first pass on int8 products, in float64, each end value widened by
    the most the products can be off (twice the larger of the start's and the end's error,
    :func:`int8_error_weights`: the rank is ``|c|^2 - 2 c.p`` with ``p`` between ``s`` and ``e``) and by
    2^-20 (``|c|^2 + 4 |c| max(|s|, |e|)``), more than the float32 roundings of the exact pass's own end
    values. A row whose widened lower end is above the k-th smallest widened upper end is above the k-th
    exact value at every alpha: the exact pass would drop it. The upper ends are kept in float32, each first
    raised by 2^-22 of itself, more than rounding to float32 can lower it."""
    n_unique = len(products) - len(which)
    n_keys = products.shape[1]
    row_step, row_l1, row_l2 = row_terms[0], row_terms[1], row_terms[2]
    for t in range(lo, hi):
        s, e = which[t], n_unique + t
        start, end = products[s], products[e]
        s_step, e_step = query_terms[0, s], query_terms[0, e]
        s_on_step, s_on_l1, s_on_l2 = int8_error_weights(s_step, query_terms[1, s], query_terms[2, s], dims)
        e_on_step, e_on_l1, e_on_l2 = int8_error_weights(e_step, query_terms[1, e], query_terms[2, e], dims)
        reach = 4.0 * max(query_terms[2, s], query_terms[2, e])
        lower = np.empty(n_keys)
        upper = np.empty(n_keys, np.float32)  # rounded up: the selection below runs on float32, as the exact pass's
        for c in range(n_keys):
            c_step, c_l1, c_l2 = row_step[c], row_l1[c], row_l2[c]
            at_start, at_end = start[c] * (s_step * c_step), end[c] * (e_step * c_step)
            a = key_sq[c] - 2.0 * at_start
            b = 2.0 * (at_start - at_end)
            at_low, at_high = a + lo_alpha * b, a + hi_alpha * b
            off = max(
                s_on_step * c_step + s_on_l1 * c_l1 + s_on_l2 * c_l2,
                e_on_step * c_step + e_on_l1 * c_l1 + e_on_l2 * c_l2,
            )
            margin = 2.0 * off + 2.0**-20 * (key_sq[c] + reach * c_l2)
            widest = max(at_low, at_high) + margin
            lower[c], upper[c] = min(at_low, at_high) - margin, widest + abs(widest) * 2.0**-22  # float32 >= widest
        threshold = _at_least_kth_smallest(upper, k)
        for c in range(n_keys):
            keep[t, c] = lower[c] <= threshold


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _at_least_kth_smallest(values, k):  # pragma: no cover - compiled
    """A value with at least k of ``values`` at or below it, and close above the k-th smallest: a guess
    from every 16th value, checked by a count (deeper guesses if it falls short), else the exact one.
    One partial sort of a sixteenth of the values instead of all of them."""
    stride = 16
    n_sample = (len(values) + stride - 1) // stride
    depth = (k * 13) // (10 * stride) + 8
    sample = np.empty(n_sample, values.dtype)
    while depth < n_sample:
        for i in range(n_sample):
            sample[i] = values[i * stride]
        guess = _select(sample, depth)
        reached = 0
        for value in values:
            reached += value <= guess
        if reached >= k:
            return guess
        depth *= 2
    return _select(values.copy(), k - 1)
