"""Compiled inner loops: the one place udig uses numba.

DIG's and UDIG's anchor chains and their monotone points (:func:`udig.paths.anchor_chains` and
:func:`udig.paths.monotone_points`, where the maths is documented) run here whole: all tokens, all m steps
and the candidates' scores in one call, the points in another, with no Python or tensor dispatch per step.
Both methods rank candidates by one cost (:func:`_rank`: float32 cost, then position; UDIG's single choice
per step takes that ranking's first in buffers made once per token, :func:`_cheapest`). DIG scores 500
candidate rows x d dimensions per anchor, and ranks each anchor's candidates once for all the tokens whose
chains pass through it (on MiniLM a sentence's chains meet 67-236 distinct anchors in 510 steps): 2-8 ms for
a 19-token sentence, where scoring every token's step on its own took 11-20 ms, with the same anchors and
points. DIG's graph build keeps the k best of 30,522 scores per row; a compiled selection does that in about
the same time on every row, where ``torch.topk`` took 1.4-2.8 s per build depending on how the scores are
spread. UDIG's nearest words along each token's reference line are ranked in one pass after the product with
the vocabulary: 2 ms for a 19-token sentence on 2 cores, where the same ranking in about 20 tensor
operations took 8.5-11 ms. The product itself is compiled too (:func:`products_with_rows`): 18 query rows
against 30,522 took torch (MKL) 7-10 ms on our AMD CPU, this 4.5-5 ms. An exact int8 product (torch's or
fbgemm's, :func:`udig.vocab._int8_product`) screens the rows first (:func:`screen_segments`) and only the
few kept get exact products. Compiled on first use (about 1 s each) and cached on disk beside this file.
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


def anchor_chains(table, word_ids, reference_ids, candidates, per_step: bool, m: int, greedy: bool, chains) -> None:
    """Fill ``chains (T, m + 1)``; see :func:`udig.paths.anchor_chains`."""
    with _LOCK:
        _follow_torch_threads()
        if per_step:
            _chains_per_step(table, word_ids, reference_ids, candidates, m, greedy, chains)
        else:
            _chains_on_graph(table, word_ids, reference_ids, candidates, m, greedy, chains)


def monotone_points(table, chains, reference_ids, m: int, points) -> None:
    """Fill ``points (m + 2, T, d)``; see :func:`udig.paths.monotone_points`."""
    with _LOCK:
        _follow_torch_threads()
        _points(table, chains, reference_ids, m, points)


@numba.njit(parallel=True, cache=True)
def _chains_per_step(table, word_ids, reference_ids, candidates, m, greedy, chains):  # pragma: no cover - compiled
    """UDIG: each token has its own candidates at each step, so each token's chain runs on its own
    thread: m steps, each taking the first of the token's candidates off its path by cost, then position
    (:func:`_cheapest`, in buffers made once per token)."""
    steps = np.float32(m)
    dims, width = table.shape[1], candidates.shape[1]
    for tok in numba.prange(len(word_ids)):
        reference = reference_ids[tok]
        on_path = np.zeros(len(table), np.bool_)  # the path so far and the reference: never a candidate
        on_path[reference] = True
        current = word_ids[tok]
        on_path[current] = True
        chains[tok, 0] = current
        off_path, kept = np.empty(width, candidates.dtype), np.empty(width, candidates.dtype)
        rough, exact, counts = np.empty(width, np.float32), np.empty(width, np.float64), np.empty(width, np.int64)
        box = np.empty((3, dims), table.dtype)  # low, high, fallback
        for t in range(m):
            if current != reference:
                n = 0
                for candidate in candidates[tok * m + t]:
                    if not on_path[candidate]:
                        off_path[n] = candidate
                        n += 1
                if n == 0:
                    current = reference  # every candidate is on the path
                else:
                    _box(table[reference], table[current], steps, box[0], box[1], box[2])
                    current = off_path[_cheapest(table, off_path[:n], box, greedy, rough, exact, counts, kept)]
                on_path[current] = True
            chains[tok, t + 1] = current


@numba.njit(cache=True)
def _cheapest(table, ids, box, greedy, rough, exact, counts, kept):  # pragma: no cover - compiled
    """The position in ``ids`` of :func:`_rank`'s first (least cost against ``box``, then first position),
    computed in the caller's buffers: UDIG asks this once per token and step (510 times for a 19-token
    sentence), where _rank's own arrays and sorts cost more than the arithmetic (the chain took 0.63-0.83 ms
    instead of 1.07-1.47 under Greedy, 0.52-0.81 instead of 0.82-1.14 under MaxCount, the same anchors)."""
    n = len(ids)
    low, high, fallback = box[0], box[1], box[2]
    best = 0
    if not greedy:
        _outside(table, ids, low, high, counts[:n])
        for j in range(1, n):
            if counts[j] < counts[best]:
                best = j
        return best
    if n > 1:  # the rough float32 sums leave the few whose exact cost may be the least (as in _rank)
        _gap_sq(table, ids, low, high, fallback, rough[:n])
        cutoff = rough[:n].min() * _rough_slack(len(low))
        n_kept = 0
        for j in range(n):
            if rough[j] <= cutoff:
                kept[n_kept] = j
                n_kept += 1
        _gap_sq(table, ids[kept[:n_kept]], low, high, fallback, exact[:n_kept])
        best_cost = np.float32(np.inf)
        for i in range(n_kept):
            cost = np.float32(np.sqrt(exact[i]))
            if cost < best_cost:
                best, best_cost = kept[i], cost
    return best


_TOP = 16  # each anchor's best candidates kept in order; a token that finds all of them on its path ranks them all


@numba.njit(cache=True)
def _chains_on_graph(table, word_ids, reference_ids, graph, m, greedy, chains):  # pragma: no cover - compiled
    """DIG: a step's candidates and box depend only on the anchor (and the reference), and the chains of
    a sentence's tokens soon run through the same words (on MiniLM 67-236 distinct anchors among 510
    steps of 17 tokens). So the tokens advance together; each new anchor's candidates are scored once,
    in parallel over the new anchors, and its _TOP best kept in order (cost, then position: the same
    choice as scoring them in order); each token takes the first of them off its own path. Only when all
    of them are on it (a path of more than _TOP - 2 words through a few, or repeated, candidates) is
    that anchor's full ranking computed, for that token. (Sharing each anchor's candidates out over
    both threads measured slower than one anchor per thread.)"""
    n_tokens, n_candidates = len(word_ids), graph.shape[1]
    n_top = min(_TOP, n_candidates)
    steps = np.float32(m)
    references = np.unique(reference_ids)
    which = np.searchsorted(references, reference_ids)
    slot = np.full((len(references), len(table)), -1, np.int64)  # (reference, anchor) -> its ranking's row
    rankings = np.empty((2 * n_tokens, n_top), graph.dtype)  # grows: distinct anchors are far fewer than steps
    new_reference, new_anchor = np.empty(n_tokens, np.int64), np.empty(n_tokens, np.int64)
    current = word_ids.copy()
    chains[:, 0] = current
    n_ranked = 0
    for t in range(m):
        n_new = 0
        for tok in range(n_tokens):
            if current[tok] != reference_ids[tok] and slot[which[tok], current[tok]] < 0:
                slot[which[tok], current[tok]] = n_ranked + n_new
                new_reference[n_new], new_anchor[n_new] = reference_ids[tok], current[tok]
                n_new += 1
        if n_ranked + n_new > len(rankings):
            grown = np.empty((2 * len(rankings), n_top), graph.dtype)
            grown[:n_ranked] = rankings[:n_ranked]
            rankings = grown
        _rank_anchors(table, graph, new_reference[:n_new], new_anchor[:n_new], steps, greedy, rankings[n_ranked:])
        n_ranked += n_new
        for tok in range(n_tokens):
            reference, anchor, path = reference_ids[tok], current[tok], chains[tok, : t + 1]
            if anchor != reference:
                chosen = _first_off_path(rankings[slot[which[tok], anchor]], reference, path)
                if chosen < 0 and n_top < n_candidates:
                    ranking = np.empty(n_candidates, graph.dtype)
                    _rank(table, graph[anchor], table[reference], table[anchor], steps, greedy, ranking)
                    chosen = _first_off_path(ranking[n_top:], reference, path)
                current[tok] = reference if chosen < 0 else chosen  # the reference when every candidate is on the path
            chains[tok, t + 1] = current[tok]


@numba.njit(cache=True, inline="always")
def _first_off_path(ranking, reference, path):  # pragma: no cover - compiled
    """The first of ``ranking`` that is neither the reference nor on ``path``, or -1."""
    for candidate in ranking:
        if candidate != reference and not _on(path, candidate):
            return candidate
    return -1


@numba.njit(parallel=True, cache=True)
def _rank_anchors(table, graph, references, anchors, steps, greedy, out):  # pragma: no cover - compiled
    """One anchor per thread (in its own parallel region: the caller grows its buffers between steps)."""
    for j in numba.prange(len(anchors)):
        _rank(table, graph[anchors[j]], table[references[j]], table[anchors[j]], steps, greedy, out[j])


# Float32 sums of at most d terms >= 0 (in any order, in the normal range) are within (d - 1) 2^-24 of
# the exact sums, relatively; the keys' float32 square roots tie for sums up to 2^-22 apart. A cutoff
# this much above the n-th smallest rough sum covers both, twice over, and its own rounding.
_ROUGH_SLACK_PER_DIM, _ROUGH_SLACK = 2.0**-22, 2.0**-20


@numba.njit(cache=True, inline="always")
def _rough_slack(dims):  # pragma: no cover - compiled
    """The factor above the n-th smallest rough float32 sum of ``dims`` squares within which a candidate is
    costed exactly (:func:`_rank`, :func:`_cheapest`)."""
    return np.float32(1 + _ROUGH_SLACK_PER_DIM * dims + _ROUGH_SLACK)


@numba.njit(cache=True)
def _rank(table, ids, base, anchor, steps, greedy, out):  # pragma: no cover - compiled
    """``out``: the ``len(out)`` first of ``ids`` by cost against the box of ``base`` and ``anchor``,
    equal costs in their order. Greedy's cost is the candidate's distance to its monotonized version
    (the fallback in every dimension outside the box), MaxCount's the number of dimensions outside
    (the fewer, the more monotone). When only the first few are asked for, Greedy first sums every
    candidate's squares in float32 (1.25x faster than float64), and only the candidates whose rough sum
    is within the summation error of the len(out)-th smallest (on MiniLM 16-17 of 500) are costed
    exactly: the result is the exact ranking's first len(out). Exact squares are summed in float64,
    where a row's float32 squares add up exactly in any order while their exponents span fewer than 29
    bits (on MiniLM: 118,000 sums equal to the block-wise ones of an earlier kernel)."""
    dims, n = len(base), len(out)
    low, high, fallback = np.empty(dims, table.dtype), np.empty(dims, table.dtype), np.empty(dims, table.dtype)
    _box(base, anchor, steps, low, high, fallback)
    if greedy and n < len(ids):
        rough = np.empty(len(ids), np.float32)
        _gap_sq(table, ids, low, high, fallback, rough)
        positions = np.nonzero(rough <= np.partition(rough, n - 1)[n - 1] * _rough_slack(dims))[0]
    else:
        positions = np.arange(len(ids))
    chosen = ids[positions]
    if greedy:
        exact = np.empty(len(chosen), np.float64)
        _gap_sq(table, chosen, low, high, fallback, exact)
        costs = np.sqrt(exact).astype(np.float32)
    else:
        counts = np.empty(len(chosen), np.int64)
        _outside(table, chosen, low, high, counts)
        costs = counts.astype(np.float32)
    keys = np.empty(len(positions), np.uint64)
    bits = costs.view(np.uint32)
    for j in range(len(positions)):
        keys[j] = _sort_key(bits[j], positions[j])
    first = np.sort(np.partition(keys, n - 1)[:n]) if n < len(keys) else np.sort(keys)
    for j in range(n):
        out[j] = ids[first[j] & np.uint64(0xFFFFFFFF)]


@numba.njit(cache=True, fastmath={"reassoc"})
def _gap_sq(table, ids, low, high, fallback, sums):  # pragma: no cover - compiled
    """Greedy's squared cost of each of ``ids`` into ``sums``: the float32 squares of the gaps outside the
    box, summed in ``sums``' type (float32: rough; float64: exact). Eight rows at a time (the last one
    repeated when their number is not a multiple of eight), each summed whole: eight streams of loads in
    flight, sharing each load of the box (DIG's chains with real words for a 19-token sentence: 1.1-1.2x
    faster than four rows, 1.3x than two; UDIG's lists of about 50 candidates: no change). A value is
    outside when clamping it to the box changes it: one compare where ``x < low or x > high`` takes two
    and an or (exact: a clamp returns the value or a bound)."""
    n = len(ids)
    zero = sums.dtype.type(0)
    for j in range(0, n, 8):
        j1, j2, j3, j4, j5, j6, j7 = _next_seven(j, n - 1)
        r0, r1, r2, r3 = table[ids[j]], table[ids[j1]], table[ids[j2]], table[ids[j3]]
        r4, r5, r6, r7 = table[ids[j4]], table[ids[j5]], table[ids[j6]], table[ids[j7]]
        s0, s1, s2, s3, s4, s5, s6, s7 = zero, zero, zero, zero, zero, zero, zero, zero
        for i in range(len(low)):
            lo, hi, f = low[i], high[i], fallback[i]
            x0, x1, x2, x3, x4, x5, x6, x7 = r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], r6[i], r7[i]
            s0 += (x0 - f) * (x0 - f) if min(max(x0, lo), hi) != x0 else np.float32(0)
            s1 += (x1 - f) * (x1 - f) if min(max(x1, lo), hi) != x1 else np.float32(0)
            s2 += (x2 - f) * (x2 - f) if min(max(x2, lo), hi) != x2 else np.float32(0)
            s3 += (x3 - f) * (x3 - f) if min(max(x3, lo), hi) != x3 else np.float32(0)
            s4 += (x4 - f) * (x4 - f) if min(max(x4, lo), hi) != x4 else np.float32(0)
            s5 += (x5 - f) * (x5 - f) if min(max(x5, lo), hi) != x5 else np.float32(0)
            s6 += (x6 - f) * (x6 - f) if min(max(x6, lo), hi) != x6 else np.float32(0)
            s7 += (x7 - f) * (x7 - f) if min(max(x7, lo), hi) != x7 else np.float32(0)
        sums[j], sums[j1], sums[j2], sums[j3] = s0, s1, s2, s3
        sums[j4], sums[j5], sums[j6], sums[j7] = s4, s5, s6, s7


@numba.njit(cache=True, fastmath={"reassoc"})
def _outside(table, ids, low, high, counts):  # pragma: no cover - compiled
    """MaxCount's cost of each of ``ids`` into ``counts``: its dimensions outside the box, eight rows at a
    time as in :func:`_gap_sq`."""
    n = len(ids)
    for j in range(0, n, 8):
        j1, j2, j3, j4, j5, j6, j7 = _next_seven(j, n - 1)
        r0, r1, r2, r3 = table[ids[j]], table[ids[j1]], table[ids[j2]], table[ids[j3]]
        r4, r5, r6, r7 = table[ids[j4]], table[ids[j5]], table[ids[j6]], table[ids[j7]]
        c0, c1, c2, c3, c4, c5, c6, c7 = 0, 0, 0, 0, 0, 0, 0, 0
        for i in range(len(low)):
            lo, hi = low[i], high[i]
            x0, x1, x2, x3, x4, x5, x6, x7 = r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], r6[i], r7[i]
            c0 += min(max(x0, lo), hi) != x0
            c1 += min(max(x1, lo), hi) != x1
            c2 += min(max(x2, lo), hi) != x2
            c3 += min(max(x3, lo), hi) != x3
            c4 += min(max(x4, lo), hi) != x4
            c5 += min(max(x5, lo), hi) != x5
            c6 += min(max(x6, lo), hi) != x6
            c7 += min(max(x7, lo), hi) != x7
        counts[j], counts[j1], counts[j2], counts[j3] = c0, c1, c2, c3
        counts[j4], counts[j5], counts[j6], counts[j7] = c4, c5, c6, c7


@numba.njit(cache=True, inline="always")
def _next_seven(j, last):  # pragma: no cover - compiled
    """The seven positions after ``j``, ``last`` repeated past it: the rest of a block of eight rows whose
    tail repeats a real row, so every row takes the same instructions."""
    return (
        min(j + 1, last),
        min(j + 2, last),
        min(j + 3, last),
        min(j + 4, last),
        min(j + 5, last),
        min(j + 6, last),
        min(j + 7, last),
    )


@numba.njit(cache=True, inline="always")
def _sort_key(bits, index):  # pragma: no cover - compiled
    """One 64-bit key: a float32's bits in float order above (smallest first), an index below (ties)."""
    return (np.uint64(_in_float_order(bits)) << np.uint64(32)) | np.uint64(index)


@numba.njit(cache=True, inline="always")
def _on(path, word):  # pragma: no cover - compiled
    """Whether ``word`` is on ``path`` (at most m + 1 ids: a scan beats a vocabulary-sized mask here)."""
    for step in path:
        if step == word:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _box(base, anchor, steps, low, high, fallback):  # pragma: no cover - compiled
    """The box spanned by the baseline and the anchor, and the fallback: the anchor 1/m toward the baseline."""
    for i in range(len(base)):
        low[i], high[i] = min(base[i], anchor[i]), max(base[i], anchor[i])
        fallback[i] = anchor[i] - (anchor[i] - base[i]) / steps


@numba.njit(parallel=True, cache=True)
def _points(table, chains, reference_ids, m, points):  # pragma: no cover - compiled
    """Each token's monotone points through its chain, one token per thread."""
    for tok in numba.prange(len(chains)):
        _monotone_points(table, chains[tok], table[reference_ids[tok]], np.float32(m), points[:, tok])


@numba.njit(cache=True)
def _monotone_points(table, chain, base, steps, out):  # pragma: no cover - compiled
    """``out (m + 2, d)``, baseline first: the word, then each anchor monotonized against the point
    before it (the fallback ``p - (p - base) / m`` in every dimension outside the box), then the baseline."""
    n = len(chain)  # m + 1
    out[0] = base
    out[n] = table[chain[0]]
    for t in range(1, n):
        anchor, previous, point = table[chain[t]], out[n - t + 1], out[n - t]
        for i in range(len(base)):
            low, high = min(base[i], previous[i]), max(base[i], previous[i])
            inside = (anchor[i] >= low) & (anchor[i] <= high)
            point[i] = anchor[i] if inside else previous[i] - (previous[i] - base[i]) / steps


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
                ascending = _in_float_order(bits[r, j])  # then complemented: largest first
                keys[c] = (np.uint64(np.uint32(0xFFFFFFFF) - ascending) << np.uint64(32)) | np.uint64(j)
                c += 1
        keys.sort()
        for i in range(k):
            out[r, i] = keys[i] & np.uint64(0xFFFFFFFF)


def products_with_rows(rows, ids, queries, out) -> None:
    """Fill ``out (Q, len(ids))`` with the dot product of each of the few ``queries (Q, d)`` with each of
    the many rows ``rows[ids]`` (float32, row-major: the embedding matrix itself, no gathered copy)."""
    with _LOCK:
        _follow_torch_threads()
        _products_with_rows(rows, ids, queries, out)


_ROWS_PER_TASK = 128  # rows per parallel task; each task reads them once, 8 at a time


@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _products_with_rows(rows, ids, queries, out):  # pragma: no cover - compiled
    """Eight rows against two queries at a time: sixteen sums in registers, each row element loaded is
    used twice and each query element eight times; the rows are read from memory once. Two queries per
    pass instead of one: 4.5-4.7 -> 2.6-3.1 ms for 18 x 30,522 x 384 when the rows sit in cache, 6.3 -> 4.8
    in memory (interleaved runs, AMD EPYC). A task's last rows and an odd last query repeat the nearest
    real one (written twice, same value), so every product comes from the same instructions: a row's
    product does not depend on where it sits, or on which other rows are listed with it. BLAS libraries
    tile for large products; this shape (a handful of queries, tens of thousands of rows) is where MKL
    took a slow path on AMD CPUs."""
    n_queries, dims = queries.shape
    n_rows = len(ids)
    for task in numba.prange((n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK):
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


def nearest_on_segments(products, which, key_sq, alphas, k: int, out) -> None:
    """Fill ``out (T, m, k)`` with the positions of the k candidate rows nearest to each point
    ``start_t + alpha_j (end_t - start_t)``, nearest first, equal distances in position order.

    ``products (U + T, A)`` holds the U distinct start rows' and then the T end rows' dot products with
    the A candidate rows, ``which (T,)`` each token's start row, ``key_sq (A,)`` the candidates' squared
    norms; see :meth:`udig.vocab.VocabIndex.nearest_on_segments` for the ranking this computes."""
    with _LOCK:
        _follow_torch_threads()
        _nearest_on_segments(products, which, key_sq, alphas, k, out)


@numba.njit(parallel=True, cache=True)
def _nearest_on_segments(products, which, key_sq, alphas, k, out):  # pragma: no cover - compiled
    """Per token: each row's rank ``a + alpha b`` (``a = |c|^2 - 2 c.s``, ``b = 2 c.(s - e)``) and its
    lower and upper end values over the alphas' range. Any k rows whose upper ends reach a threshold
    are at least that close everywhere, so only rows whose lower end reaches it can be among the k
    nearest anywhere (:func:`_at_least_kth_smallest`). At each point
    a bound on the k-th smallest value (a partial sort at the first point; after it, the previous
    point's k nearest, which are k rows) leaves only a few more than k rows to sort, on one 64-bit key
    (the value's bits, then the position: equal values in position order). After the first point the
    previous nearest are listed first, in their order, and the few others after them: an insertion sort
    then does little work: 1.9 -> 1.5 ms for 17 tokens, 14 -> 11 ms for 126, where np.sort sorted them."""
    n_unique = len(products) - len(which)
    n_keys = products.shape[1]
    lo_alpha, hi_alpha = alphas.min(), alphas.max()
    for t in numba.prange(len(which)):
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
        values = np.empty(n_kept, np.float32)
        keys = np.empty(n_kept, np.uint64)  # the value's order, then the kept index (the position's order)
        nearest = np.empty(k, np.int64)  # kept indices of the current point's k nearest, nearest first
        listed = np.zeros(n_kept, np.bool_)  # among them
        for j in range(len(alphas)):
            alpha = alphas[j]
            for i in range(n_kept):
                values[i] = kept_offset[i] + alpha * kept_slope[i]
            bits = values.view(np.uint32)
            n = 0
            if j == 0:  # the k-th smallest value bounds the k nearest
                reach = np.partition(values, k - 1)[k - 1]
            else:  # the previous point's k nearest are k rows, so they bound them too; listed first, in order
                reach = np.float32(-np.inf)
                for i in nearest:
                    reach = max(reach, values[i])
                for i in nearest:
                    keys[n] = _sort_key(bits[i], i)
                    n += 1
            for i in range(n_kept):
                if values[i] <= reach and not listed[i]:
                    keys[n] = _sort_key(bits[i], i)
                    n += 1
            if j > 0 and n <= 2 * k:  # nearly in order already: neighbouring points share most of their nearest
                _insertion_sort(keys[:n])
                first = keys[:k]
            else:
                first = np.sort(np.partition(keys[:n], k - 1)[:k]) if n > k else np.sort(keys[:n])
            if j > 0:
                listed[nearest] = False
            for r in range(k):
                nearest[r] = first[r] & np.uint64(0xFFFFFFFF)
                out[t, j, r] = positions[nearest[r]]
            listed[nearest] = True


def screen_segments(products, query_terms, row_terms, dims: int, which, key_sq, alphas, k: int, keep) -> None:
    """Mark in ``keep (T, A)`` every candidate row that may be among token t's k nearest at some alpha,
    judged from int8 ``products (U + T, A)`` (exact integers: the queries' codes times the rows' codes) and the
    ``(3, n)`` terms of queries and rows (each one's step, L1 and L2 norms: :func:`udig.vocab.int8_codes`)
    in ``dims`` dimensions; see
    :meth:`udig.vocab.VocabIndex.nearest_on_segments`."""
    with _LOCK:
        _follow_torch_threads()
        _screen_segments(products, query_terms, row_terms, dims, which, key_sq, alphas.min(), alphas.max(), k, keep)


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


@numba.njit(parallel=True, cache=True)
def _screen_segments(
    products, query_terms, row_terms, dims, which, key_sq, lo_alpha, hi_alpha, k, keep
):  # pragma: no cover - compiled
    """:func:`_nearest_on_segments`'s first pass on int8 products, in float64, each end value widened by
    the most the products can be off (twice the larger of the start's and the end's error,
    :func:`int8_error_weights`: the rank is ``|c|^2 - 2 c.p`` with ``p`` between ``s`` and ``e``) and by
    2^-20 (``|c|^2 + 4 |c| max(|s|, |e|)``), more than the float32 roundings of the exact pass's own end
    values. A row whose widened lower end is above the k-th smallest widened upper end is above the k-th
    exact value at every alpha: the exact pass would drop it."""
    n_unique = len(products) - len(which)
    n_keys = products.shape[1]
    row_step, row_l1, row_l2 = row_terms[0], row_terms[1], row_terms[2]
    for t in numba.prange(len(which)):
        s, e = which[t], n_unique + t
        start, end = products[s], products[e]
        s_step, e_step = query_terms[0, s], query_terms[0, e]
        s_on_step, s_on_l1, s_on_l2 = int8_error_weights(s_step, query_terms[1, s], query_terms[2, s], dims)
        e_on_step, e_on_l1, e_on_l2 = int8_error_weights(e_step, query_terms[1, e], query_terms[2, e], dims)
        reach = 4.0 * max(query_terms[2, s], query_terms[2, e])
        lower = np.empty(n_keys)
        upper = np.empty(n_keys)
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
            lower[c], upper[c] = min(at_low, at_high) - margin, max(at_low, at_high) + margin
        threshold = _at_least_kth_smallest(upper, k)
        for c in range(n_keys):
            keep[t, c] = lower[c] <= threshold


@numba.njit(cache=True)
def _at_least_kth_smallest(values, k):  # pragma: no cover - compiled
    """A value with at least k of ``values`` at or below it, and close above the k-th smallest: a guess
    from every 16th value, checked by a count (deeper guesses if it falls short), else the exact one.
    One partial sort of a sixteenth of the values instead of all of them."""
    stride = 16
    n_sample = (len(values) + stride - 1) // stride
    depth = (k * 13) // (10 * stride) + 8
    while depth < n_sample:
        guess = np.partition(values[::stride].copy(), depth)[depth]
        if np.sum(values <= guess) >= k:
            return guess
        depth *= 2
    return np.partition(values.copy(), k - 1)[k - 1]


@numba.njit(cache=True)
def _insertion_sort(keys):  # pragma: no cover - compiled
    """Sort in place: linear time on keys that are nearly in order."""
    for i in range(1, len(keys)):
        key, j = keys[i], i - 1
        while j >= 0 and keys[j] > key:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = key


@numba.njit(cache=True, inline="always")
def _in_float_order(bits):  # pragma: no cover - compiled
    """A float32's IEEE bits as an unsigned integer whose order is the float's (smallest first): a negative
    value's bits all flipped, another's sign bit set. Without a branch: ranks and similarities mix signs at
    random, and a mispredicted branch per key cost UDIG's ranking a fifth of its time (3.1 -> 2.5 ms on one
    thread for 16 tokens)."""
    flip = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return np.uint32(bits ^ flip)
