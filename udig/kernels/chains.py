"""DIG's and UDIG's anchor chains and their monotone points, compiled whole.

:func:`udig.paths.anchor_chains` and :func:`udig.paths.monotone_points` (where the maths is documented) run
here: all tokens, all m steps and the candidates' scores in one call, the points in another, with no Python or
tensor dispatch per step. Both methods rank candidates by one cost (:func:`_rank`: float32 cost, then
position; UDIG's single choice per step takes that ranking's first in buffers made once per token,
:func:`_cheapest`). DIG scores 500 candidate rows x d dimensions per anchor, and ranks each anchor's
candidates once for all the tokens of a thread whose chains pass through it (a sentence's chains soon meet).
The measurements behind these choices are in ``benchmarks/engine_results.md`` and
``benchmarks/coldstart_results.md``.
"""

from __future__ import annotations

import numba
import numpy as np

from .common import _bits_of, _next_seven, _select, _sort, _sort_key, run


def anchor_chains(table, word_ids, reference_ids, candidates, per_step: bool, m: int, greedy: bool, chains) -> None:
    """Fill ``chains (T, m + 1)``; see :func:`udig.paths.anchor_chains`. A token's chain depends on its word,
    its reference and the candidates only, so UDIG's tokens are shared out over the threads. DIG's run on one
    thread: its tokens' chains soon meet the same anchors, which :func:`_chains_on_graph` ranks once for all
    the tokens it has, so tokens shared out would have each anchor ranked once per thread (measured: two
    threads no faster than one on 2 cores, ``benchmarks/coldstart_results.md``)."""
    if per_step:
        run(_chains_per_step, len(word_ids), table, word_ids, reference_ids, candidates, m, greedy, chains)
    else:
        _chains_on_graph(table, word_ids, reference_ids, candidates, m, greedy, chains, 0, len(word_ids))


def monotone_points(table, chains, reference_ids, m: int, points) -> None:
    """Fill ``points (m + 2, T, d)``; see :func:`udig.paths.monotone_points`."""
    run(_points, len(chains), table, chains, reference_ids, m, points)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _chains_per_step(
    table, word_ids, reference_ids, candidates, m, greedy, chains, lo, hi
):  # pragma: no cover - compiled
    """UDIG, tokens ``lo`` to ``hi``: each token has its own candidates at each step; m steps, each taking the
    first of the token's candidates off its path by cost, then position (:func:`_cheapest`, in buffers made
    once per token)."""
    m32 = np.float32(m)  # m in float32: the fallback divides in the rows' precision
    dims, width = table.shape[1], candidates.shape[1]
    for tok in range(lo, hi):
        reference = reference_ids[tok]
        on_path = np.zeros(len(table), np.bool_)  # the path so far and the reference: never a candidate
        on_path[reference] = True
        current = word_ids[tok]
        on_path[current] = True
        chains[tok, 0] = current
        off_path, kept = np.empty(width, candidates.dtype), np.empty(width, candidates.dtype)
        rough, exact, counts = np.empty(width, np.float32), np.empty(width, np.float64), np.empty(width, np.int64)
        kept_at = np.empty(width, np.int64)
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
                    _box(table[reference], table[current], m32, box[0], box[1], box[2])
                    current = off_path[_cheapest(table, off_path[:n], box, greedy, rough, exact, counts, kept, kept_at)]
                on_path[current] = True
            chains[tok, t + 1] = current


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _cheapest(table, ids, box, greedy, rough, exact, counts, kept, kept_at):  # pragma: no cover - compiled
    """The position in ``ids`` of :func:`_rank`'s first (least cost against ``box``, then first position),
    computed in the caller's buffers (``kept`` ids, ``kept_at`` their positions): UDIG asks this once per token
    and step (510 times for a 19-token sentence), where _rank's own arrays and sorts cost more than the
    arithmetic."""
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
        least = rough[0]
        for j in range(1, n):
            least = min(least, rough[j])
        cutoff = least * _rough_slack(len(low))
        n_kept = 0
        for j in range(n):
            if rough[j] <= cutoff:
                kept[n_kept], kept_at[n_kept] = ids[j], j
                n_kept += 1
        _exact_gap_sq(table, kept[:n_kept], low, high, fallback, exact[:n_kept])
        best_cost = np.float32(np.inf)
        for i in range(n_kept):
            cost = np.float32(np.sqrt(exact[i]))
            if cost < best_cost:
                best, best_cost = kept_at[i], cost
    return best


_TOP = 16  # each anchor's best candidates kept in order; a token that finds all of them on its path ranks them all


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _chains_on_graph(table, word_ids, reference_ids, graph, m, greedy, chains, lo, hi):  # pragma: no cover - compiled
    """DIG, tokens ``lo`` to ``hi``: a step's candidates and box depend only on the anchor (and the reference),
    and the chains of a sentence's tokens soon run through the same words (on MiniLM 67-236 distinct anchors
    among 510 steps of 17 tokens). So the tokens advance together; each new anchor's candidates are scored
    once and its _TOP best kept in order (cost, then position: the same choice as scoring them in order);
    each token takes the first of them off its own path. Only when all of them are on it (a path of more
    than _TOP - 2 words through a few, or repeated, candidates) is that anchor's full ranking computed, for
    that token. It runs on one thread (:func:`anchor_chains`)."""
    n_tokens, n_candidates = hi - lo, graph.shape[1]
    n_top = min(_TOP, n_candidates)
    m32 = np.float32(m)
    references = np.empty(n_tokens, reference_ids.dtype)  # the distinct references, in order of appearance
    which = np.empty(n_tokens, np.int64)
    n_references = 0
    for i in range(n_tokens):
        which[i] = -1
        for r in range(n_references):
            if references[r] == reference_ids[lo + i]:
                which[i] = r
        if which[i] < 0:
            references[n_references], which[i] = reference_ids[lo + i], n_references
            n_references += 1
    slot = np.empty((n_references, len(table)), np.int64)  # (reference, anchor) -> its ranking's row
    for r in range(n_references):
        for anchor in range(len(table)):
            slot[r, anchor] = -1
    rankings = np.empty((2 * n_tokens, n_top), graph.dtype)  # grows: distinct anchors are far fewer than steps
    current = np.empty(n_tokens, word_ids.dtype)
    for i in range(n_tokens):
        current[i] = chains[lo + i, 0] = word_ids[lo + i]
    n_ranked = 0
    for t in range(m):
        for i in range(n_tokens):
            reference, anchor = reference_ids[lo + i], current[i]
            if anchor != reference and slot[which[i], anchor] < 0:
                if n_ranked == len(rankings):
                    grown = np.empty((2 * len(rankings), n_top), graph.dtype)
                    for row in range(n_ranked):
                        for j in range(n_top):
                            grown[row, j] = rankings[row, j]
                    rankings = grown
                slot[which[i], anchor] = n_ranked
                _rank(table, graph[anchor], table[reference], table[anchor], m32, greedy, rankings[n_ranked])
                n_ranked += 1
        for i in range(n_tokens):
            reference, anchor, path = reference_ids[lo + i], current[i], chains[lo + i, : t + 1]
            if anchor != reference:
                chosen = _first_off_path(rankings[slot[which[i], anchor]], reference, path)
                if chosen < 0 and n_top < n_candidates:
                    ranking = np.empty(n_candidates, graph.dtype)
                    _rank(table, graph[anchor], table[reference], table[anchor], m32, greedy, ranking)
                    chosen = _first_off_path(ranking[n_top:], reference, path)
                current[i] = reference if chosen < 0 else chosen  # the reference when every candidate is on the path
            chains[lo + i, t + 1] = current[i]


@numba.njit(cache=True, inline="always")
def _first_off_path(ranking, reference, path):  # pragma: no cover - compiled
    """The first of ``ranking`` that is neither the reference nor on ``path``, or -1."""
    for candidate in ranking:
        if candidate != reference and not _on(path, candidate):
            return candidate
    return -1


# Float32 sums of at most d terms >= 0 (in any order, in the normal range) are within (d - 1) 2^-24 of
# the exact sums, relatively; the keys' float32 square roots tie for sums up to 2^-22 apart. A cutoff
# this much above the n-th smallest rough sum covers both, twice over, and its own rounding.
_ROUGH_SLACK_PER_DIM, _ROUGH_SLACK = 2.0**-22, 2.0**-20


@numba.njit(cache=True, inline="always")
def _rough_slack(dims):  # pragma: no cover - compiled
    """The factor above the n-th smallest rough float32 sum of ``dims`` squares within which a candidate is
    costed exactly (:func:`_rank`, :func:`_cheapest`)."""
    return np.float32(1 + _ROUGH_SLACK_PER_DIM * dims + _ROUGH_SLACK)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _rank(table, ids, base, anchor, m32, greedy, out):  # pragma: no cover - compiled
    """``out``: the ``len(out)`` first of ``ids`` by cost against the box of ``base`` and ``anchor``,
    equal costs in their order. Greedy's cost is the candidate's distance to its monotonized version
    (the fallback in every dimension outside the box), MaxCount's the number of dimensions outside
    (the fewer, the more monotone). When only the first few are asked for, Greedy first sums every
    candidate's squares in float32 (cheaper than float64), and only the candidates whose rough sum
    is within the summation error of the len(out)-th smallest (on MiniLM 16-17 of 500) are costed
    exactly: the result is the exact ranking's first len(out). Exact squares are summed in float64,
    where a row's float32 squares add up exactly in any order while their exponents span fewer than 29
    bits (on MiniLM: 118,000 sums equal to the block-wise ones of an earlier kernel)."""
    dims, n, n_ids = len(base), len(out), len(ids)
    low, high, fallback = np.empty(dims, table.dtype), np.empty(dims, table.dtype), np.empty(dims, table.dtype)
    _box(base, anchor, m32, low, high, fallback)
    positions = np.empty(n_ids, np.int64)
    n_chosen = n_ids
    if greedy and n < n_ids:
        rough = np.empty(n_ids, np.float32)
        _gap_sq(table, ids, low, high, fallback, rough)
        cutoff = _select(rough.copy(), n - 1) * _rough_slack(dims)
        n_chosen = 0
        for j in range(n_ids):
            if rough[j] <= cutoff:
                positions[n_chosen] = j
                n_chosen += 1
    else:
        for j in range(n_ids):
            positions[j] = j
    chosen = np.empty(n_chosen, ids.dtype)
    for j in range(n_chosen):
        chosen[j] = ids[positions[j]]
    costs = np.empty(n_chosen, np.float32)
    if greedy:
        exact = np.empty(n_chosen, np.float64)
        _exact_gap_sq(table, chosen, low, high, fallback, exact)
        for j in range(n_chosen):
            costs[j] = np.float32(np.sqrt(exact[j]))
    else:
        counts = np.empty(n_chosen, np.int64)
        _outside(table, chosen, low, high, counts)
        for j in range(n_chosen):
            costs[j] = np.float32(counts[j])
    keys = np.empty(n_chosen, np.uint64)
    for j in range(n_chosen):
        keys[j] = _sort_key(_bits_of(costs[j]), positions[j])
    if n < n_chosen:
        _select(keys, n - 1)  # the n smallest keys first (keys are distinct: their positions differ)
    first = keys[:n]
    _sort(first)
    for j in range(n):
        out[j] = ids[first[j] & np.uint64(0xFFFFFFFF)]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def _gap_sq(table, ids, low, high, fallback, sums):  # pragma: no cover - compiled
    """Greedy's rough squared cost of each of ``ids`` into ``sums`` (float32): the float32 squares of the gaps
    outside the box, summed in float32 (:func:`_exact_gap_sq` sums the same squares exactly). Eight rows at a
    time (the last one repeated when their number is not a multiple of eight), each summed whole: eight
    streams of loads in flight, sharing each load of the box (why eight: ``benchmarks/engine_results.md``).
    A value is outside when clamping it to the box changes it: one compare where ``x < low or x > high``
    takes two and an or (exact: a clamp returns the value or a bound)."""
    n = len(ids)
    zero = np.float32(0)
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


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _exact_gap_sq(table, ids, low, high, fallback, sums):  # pragma: no cover - compiled
    """Greedy's exact squared cost of each of ``ids`` into ``sums`` (float64): the float32 squares of
    :func:`_gap_sq`, summed in float64, where they add up exactly in any order (:func:`_rank`). One row at a
    time: it costs the few candidates the rough sums leave (16-17 of 500 on MiniLM), where the eight-row
    loop's speed is not needed, and a separate plain loop compiles in a fraction of the time of a float64
    copy of the eight-row one (``benchmarks/app_results.md``)."""
    for j in range(len(ids)):
        row, total = table[ids[j]], 0.0
        for i in range(len(low)):
            x = row[i]
            if min(max(x, low[i]), high[i]) != x:
                gap = x - fallback[i]
                total += gap * gap
        sums[j] = total


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
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
def _box(base, anchor, m32, low, high, fallback):  # pragma: no cover - compiled
    """The box spanned by the baseline and the anchor, and the fallback: the anchor 1/m toward the baseline."""
    for i in range(len(base)):
        low[i], high[i] = min(base[i], anchor[i]), max(base[i], anchor[i])
        fallback[i] = anchor[i] - (anchor[i] - base[i]) / m32


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _points(table, chains, reference_ids, m, points, lo, hi):  # pragma: no cover - compiled
    """The monotone points of tokens ``lo`` to ``hi`` through their chains."""
    for tok in range(lo, hi):
        _monotone_points(table, chains[tok], table[reference_ids[tok]], np.float32(m), points[:, tok])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _monotone_points(table, chain, base, m32, out):  # pragma: no cover - compiled
    """``out (m + 2, d)``, baseline first: the word, then each anchor monotonized against the point
    before it (the fallback ``p - (p - base) / m`` in every dimension outside the box), then the baseline."""
    n = len(chain)  # m + 1
    word = table[chain[0]]
    for i in range(len(base)):
        out[0, i], out[n, i] = base[i], word[i]
    for t in range(1, n):
        anchor, previous, point = table[chain[t]], out[n - t + 1], out[n - t]
        for i in range(len(base)):
            low, high = min(base[i], previous[i]), max(base[i], previous[i])
            inside = (anchor[i] >= low) & (anchor[i] <= high)
            point[i] = anchor[i] if inside else previous[i] - (previous[i] - base[i]) / m32
