"""DIG's and UDIG's anchor chains and their monotone points, compiled whole.

:func:`udig.paths.anchor_chains` and :func:`udig.paths.monotone_points` (where the maths is documented) run
here: all tokens, all m steps and the candidates' scores in one call, the points in another, with no Python or
tensor dispatch per step. Both methods rank candidates by one cost (:func:`_rank`: float32 cost, then
position; UDIG's single choice per step takes that ranking's first in buffers made once per token,
:func:`_cheapest`). DIG scores 500 candidate rows x d dimensions per anchor, and ranks each anchor's
candidates once for all the tokens whose chains pass through it (a sentence's chains soon meet). The
measurements behind these choices are in ``benchmarks/engine_results.md``.
"""

from __future__ import annotations

import numba
import numpy as np

from .common import _next_seven, _sort_key, run


def anchor_chains(table, word_ids, reference_ids, candidates, per_step: bool, m: int, greedy: bool, chains) -> None:
    """Fill ``chains (T, m + 1)``; see :func:`udig.paths.anchor_chains`."""
    kernel = _chains_per_step if per_step else _chains_on_graph
    run(kernel, table, word_ids, reference_ids, candidates, m, greedy, chains)


def monotone_points(table, chains, reference_ids, m: int, points) -> None:
    """Fill ``points (m + 2, T, d)``; see :func:`udig.paths.monotone_points`."""
    run(_points, table, chains, reference_ids, m, points)


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
    sentence), where _rank's own arrays and sorts cost more than the arithmetic."""
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
    that anchor's full ranking computed, for that token. One anchor per thread, not each anchor's
    candidates shared out over the threads (see ``benchmarks/engine_results.md``)."""
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
    candidate's squares in float32 (cheaper than float64), and only the candidates whose rough sum
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
    flight, sharing each load of the box (why eight: ``benchmarks/engine_results.md``). A value is
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
