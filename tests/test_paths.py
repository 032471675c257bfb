"""Pure path and integrator functions on hand-computed cases; the compiled anchor chain against its definition."""

import numpy as np
import pytest
import torch

from udig import paths
from udig.integrate import RULES, integrate_path, refine_path, target_met


def test_linear_path_runs_from_baseline_to_input_in_equal_steps():
    baseline, inputs = torch.zeros(2, 3), torch.ones(2, 3) * 4
    path = paths.linear_path(baseline, inputs, steps=4)
    assert path.shape == (5, 2, 3)
    assert torch.equal(path[:, 0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))


# -- the reference: DIG's and UDIG's anchor chain step by step in tensors, as the papers define it ------------
# udig builds the chain in one compiled pass (paths.anchor_paths); these few functions are its definition.


def monotone_dims(anchor, baseline, current):
    """Dimensions where the anchor lies between baseline and current point (inclusive); broadcasts."""
    low, high = torch.minimum(baseline, current), torch.maximum(baseline, current)
    return torch.clamp(anchor, low, high) == anchor


def monotonize(anchor, baseline, current, m):
    """Keep the anchor's monotone dimensions; step every other one 1/m of the way toward the baseline."""
    return torch.where(monotone_dims(anchor, baseline, current), anchor, current - (current - baseline) / m)


def candidate_costs(anchors, baseline, current, strategy, m):
    """Greedy: distance to the monotonized candidate; MaxCount: minus the monotone dimensions (lower is better)."""
    if strategy == "greedy":
        return (anchors - monotonize(anchors, baseline, current, m)).norm(dim=-1)
    return -monotone_dims(anchors, baseline, current).sum(-1).float()


def reference_chain(word_ids, reference_ids, embeddings, candidates, strategy, m):
    """One vectorised step per anchor: exclusions by a (T, V) mask, ties to the first minimum."""
    chain = torch.empty(len(word_ids), m + 1, dtype=torch.long)
    chain[:, 0] = word_ids
    excluded = torch.zeros(len(word_ids), len(embeddings), dtype=torch.bool)
    excluded.scatter_(1, torch.stack([word_ids, reference_ids], dim=1), True)
    baseline = embeddings[reference_ids][:, None, :]  # (T, 1, d)
    for t in range(m):
        current = chain[:, t]
        cand = (candidates[:, t] if candidates.dim() == 3 else candidates[current]).long()  # (T, K)
        valid = ~excluded.gather(1, cand)
        costs = candidate_costs(embeddings[cand], baseline, embeddings[current][:, None, :], strategy, m)
        best = costs.masked_fill(~valid, float("inf")).argmin(dim=1)  # the first minimum
        stuck = ~valid.any(dim=1) | (current == reference_ids)
        chain[:, t + 1] = torch.where(stuck, reference_ids, cand.gather(1, best[:, None]).squeeze(1))
        excluded.scatter_(1, chain[:, t + 1 : t + 2], True)
    return chain


def reference_points(chain, reference_ids, embeddings, m):
    """Monotone points through a chain of anchors, baseline first: ``(m + 2, T, d)``."""
    baseline = embeddings[reference_ids]
    points = [embeddings[chain[:, 0]]]
    for t in range(1, chain.shape[1]):
        points.append(monotonize(embeddings[chain[:, t]], baseline, points[-1], m))
    return torch.stack([baseline, *points[::-1]])


def test_monotonize_keeps_monotone_dims_and_steps_the_rest():
    baseline = torch.tensor([0.0, 0.0, 0.0, 1.0])
    current = torch.tensor([2.0, -2.0, 2.0, 1.0])
    anchor = torch.tensor([1.0, -1.0, 3.0, 1.0])  # inside, inside, outside, equal to b == c
    # dim 2 is outside [0, 2]: c - (c - b)/m = 2 - 2/4
    assert torch.equal(monotonize(anchor, baseline, current, m=4), torch.tensor([1.0, -1.0, 1.5, 1.0]))
    b = torch.tensor([1.0, 1.0])
    assert monotone_dims(torch.tensor([1.0, 1.5]), b, b).tolist() == [True, False]  # b == c: only equality


def test_candidate_costs_greedy_and_maxcount():
    baseline, current = torch.zeros(1, 1, 2), torch.full((1, 1, 2), 2.0)
    anchors = torch.tensor([[[1.0, 1.0], [1.0, 5.0], [9.0, 9.0]]])
    assert candidate_costs(anchors, baseline, current, "maxcount", m=2).tolist() == [[-2.0, -1.0, -0.0]]
    # fallback point is c - (c - b)/2 = 1 per dim: distances 0, 4, |(8, 8)|
    greedy = candidate_costs(anchors, baseline, current, "greedy", m=2)
    assert torch.allclose(greedy, torch.tensor([[0.0, 4.0, (2 * 64.0) ** 0.5]]))


def test_upscale_inserts_midpoints():
    points = torch.tensor([[0.0], [2.0], [4.0]])
    once = paths.upscale(points, 1)
    assert once.squeeze(1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert paths.upscale(points, 2).shape[0] == 2**2 * 2 + 1


def test_udig_reference_points_run_from_input_end_to_baseline_end():
    assert torch.allclose(paths.udig_reference_alphas(3), torch.tensor([0.75, 0.5, 0.25]))


def _toy_vocab():
    # row 0: reference word (baseline); row 1: input word; rows 2..5 candidates
    return torch.tensor([[0.0, 0.0], [4.0, 4.0], [3.0, 3.0], [3.0, 5.0], [2.0, 2.0], [9.0, 9.0]])


@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_chain_prefers_monotone_candidates_and_excludes_path_and_reference(strategy):
    vocab = _toy_vocab()
    graph = torch.tensor([[1, 2, 3, 4, 5]] * 6)  # every row sees the same neighbours, in this order
    chain, points = paths.anchor_paths(torch.tensor([1]), torch.tensor([0]), vocab, graph, strategy, m=3)
    assert chain[0, 0] == 1
    # step 1 from (4,4): 2 and 4 are fully monotone; 2 comes first (stable ties)
    assert chain[0, 1] == 2
    # step 2 from (3,3): 2 is on the path, 4 = (2,2) is monotone
    assert chain[0, 2] == 4
    # no word repeats and the reference never appears as a chosen candidate unless forced
    assert len(set(chain[0].tolist())) == 4
    assert torch.equal(chain, reference_chain(torch.tensor([1]), torch.tensor([0]), vocab, graph, strategy, 3))


def test_chain_falls_back_to_reference_and_stays_there():
    only_input = torch.tensor([[1]] * 6)  # the only neighbour is the input word itself
    chain, points = paths.anchor_paths(torch.tensor([1]), torch.tensor([0]), _toy_vocab(), only_input, "greedy", m=3)
    assert chain[0].tolist() == [1, 0, 0, 0]
    assert points[:, 0].tolist() == [[0.0, 0.0]] * 4 + [[4.0, 4.0]]


@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_graph_chain_ranks_past_an_anchors_best_candidates_once_they_are_all_on_its_path(strategy):
    """DIG keeps each anchor's kernels._TOP best candidates; in a small vocabulary, chains longer than
    that pass through them all, and a step must then rank the anchor's other candidates."""
    from udig.kernels.chains import _TOP

    generator = torch.Generator().manual_seed(5)
    vocab = torch.randn(40, 8, generator=generator)
    graph = torch.stack(
        [
            torch.cat([torch.arange(row), torch.arange(row + 1, 40)])[torch.randperm(39, generator=generator)]
            for row in range(40)
        ]
    )  # every other word, in a random order
    word_ids, reference_ids, m = torch.arange(2, 12), torch.zeros(10, dtype=torch.long), 45
    chain, _ = paths.anchor_paths(word_ids, reference_ids, vocab, graph, strategy, m)
    assert torch.equal(chain, reference_chain(word_ids, reference_ids, vocab, graph, strategy, m))
    ranks = []  # each choice's place in its anchor's full ranking (ties in graph order)
    for tok in range(len(word_ids)):
        for t in range(m):
            anchor, chosen = int(chain[tok, t]), int(chain[tok, t + 1])
            if anchor != 0 and chosen != 0:
                costs = candidate_costs(vocab[graph[anchor]], vocab[0], vocab[anchor], strategy, m)
                ranks.append(
                    torch.argsort(costs, stable=True).tolist().index(int((graph[anchor] == chosen).nonzero()[0, 0]))
                )
    assert max(ranks) >= _TOP
    assert (chain[:, -1] == 0).all()  # and every chain ran out of candidates before its m steps


@pytest.mark.parametrize("n", [1, 5, 16])
def test_ranking_the_first_few_equals_the_full_ranking_despite_near_ties(n):
    """DIG's ranking filters Greedy candidates by a float32 sum before costing them exactly. Rows that
    permute one another's values have equal exact costs against a box that is the same in every
    dimension, but float32 sums that differ in the last bits: they must still come out in the exact
    ranking's order (cost, then position), as must rows an ulp apart and repeated ids; UDIG's single choice
    per step (``_cheapest``) must be the ranking's first, under both rules."""
    from udig.kernels.chains import _box, _cheapest, _gap_sq, _rank

    generator = torch.Generator().manual_seed(n)
    prototypes = torch.randn(6, 384, generator=generator)
    permuted = torch.stack([prototypes[i // 40, torch.randperm(384, generator=generator)] for i in range(240)])
    nudged = torch.nextafter(permuted[:40], torch.tensor(torch.inf))  # an ulp above the first 40
    anchors = torch.randn(20, 384, generator=generator)
    table = torch.cat([torch.zeros(1, 384), torch.ones(1, 384), anchors, permuted, nudged]).numpy()
    ids = torch.randperm(280, generator=generator).add(22).repeat(2)[:400].to(torch.int32).numpy()  # repeats too
    steps, misordered = np.float32(30), 0
    for base, anchor in [(0, 1), (1, 0)] + [(0, a) for a in range(2, 22)]:
        full, first = np.empty(len(ids), np.int32), np.empty(n, np.int32)
        _rank(table, ids, table[base], table[anchor], steps, True, full)
        _rank(table, ids, table[base], table[anchor], steps, True, first)
        assert np.array_equal(first, full[:n]), (base, anchor)
        box = np.empty((3, 384), np.float32)  # low, high, fallback
        _box(table[base], table[anchor], steps, box[0], box[1], box[2])
        rough = np.empty(len(ids), np.float32)
        _gap_sq(table, ids, box[0], box[1], box[2], rough)
        rough_first = ids[np.argsort(rough, kind="stable")[:n]]
        misordered += not np.array_equal(rough_first, full[:n])
        for greedy in (True, False):  # UDIG's one choice per step, in its own buffers, is the ranking's first
            first_by_rank = np.empty(1, np.int32)
            _rank(table, ids, table[base], table[anchor], steps, greedy, first_by_rank)
            buffers = (
                np.empty(len(ids), np.float32),
                np.empty(len(ids)),
                np.empty(len(ids), np.int64),
                np.empty(len(ids), np.int32),
                np.empty(len(ids), np.int64),
            )
            assert ids[_cheapest(table, ids, box, greedy, *buffers)] == first_by_rank[0], (base, anchor, greedy)
    assert misordered > 0  # the float32 sums alone would have ranked some of these wrongly


def test_anchor_points_end_at_word_and_start_at_baseline():
    vocab = _toy_vocab()
    per_step = torch.tensor([[[3, 5], [4, 5]]])  # (T, m, K): (3, 5) first, then (2, 2)
    chain, points = paths.anchor_paths(torch.tensor([1]), torch.tensor([0]), vocab, per_step, "maxcount", m=2)
    assert chain.tolist() == [[1, 3, 4]]
    assert points.shape == (4, 1, 2)
    assert torch.equal(points[0, 0], vocab[0]) and torch.equal(points[-1, 0], vocab[1])
    # (3, 5) from (4, 4): dim 1 is not monotone -> 4 - 4/2 = 2
    assert torch.equal(points[2, 0], torch.tensor([3.0, 2.0]))
    assert torch.equal(points, reference_points(chain, torch.tensor([0]), vocab, 2))


@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
@pytest.mark.parametrize("source", ["graph", "per_step"])
# continuous values; a coarse grid (ties everywhere, exact sums, -0.0 beside 0.0); the grid moved by -1, 0 or
# +1 ulp (values an ulp from the box's edges)
@pytest.mark.parametrize("values", ["continuous", "grid", "ulps"])
def test_compiled_chain_equals_the_step_by_step_definition(strategy, source, values):
    """Random rows (d = 70: a full 64-dimension block and a short one), many tokens sharing a
    reference, candidate lists holding the word, the reference and repeats, chains that run out."""
    generator = torch.Generator().manual_seed({"continuous": 3, "grid": 7, "ulps": 11}[values])
    vocab = torch.randn(400, 70, generator=generator)
    if values != "continuous":
        vocab = (vocab / 0.5).round() * 0.5
        assert bool((vocab.signbit() & (vocab == 0)).any())
    if values == "ulps":
        moves = torch.randint(-1, 2, vocab.shape, generator=generator)
        vocab = torch.where(moves == 0, vocab, torch.nextafter(vocab, moves * torch.inf))  # toward -inf or +inf
    word_ids = torch.randint(2, 400, (25,), generator=generator)
    reference_ids = torch.tensor([0] * 20 + [1] * 4 + [int(word_ids[-1])])  # the last token's word is its reference
    m = 12
    if source == "graph":
        candidates = torch.randint(0, 400, (400, 40), generator=generator, dtype=torch.int32)
        candidates[:5, :] = candidates[:5, :1]  # rows whose only neighbour repeats: those chains end early
    else:
        candidates = torch.randint(0, 400, (25, m, 30), generator=generator)
        candidates[:, :, 0] = word_ids[:, None]
        candidates[:, :, 1] = reference_ids[:, None]
    chain, points = paths.anchor_paths(word_ids, reference_ids, vocab, candidates, strategy, m)
    expected = reference_chain(word_ids, reference_ids, vocab, candidates, strategy, m)
    assert torch.equal(chain, expected)
    assert (chain[:, -1] == reference_ids).any() and (chain[:, -1] != reference_ids).any()
    # the same float32 operations on the same values, one element at a time: equal to the last bit
    assert torch.equal(points, reference_points(chain, reference_ids, vocab, m))


@pytest.mark.slow  # two KNN graphs of MiniLM
@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_compiled_chain_equals_the_definition_on_minilm(minilm, strategy):
    """Real rows and real candidates: DIG's graph neighbours and UDIG's nearest words, under both rules."""
    from udig.vocab import vocab_index_for

    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    word_ids = torch.tensor(
        tokenizer("the film is a gorgeous, moving portrait of a family in crisis.", add_special_tokens=False)[
            "input_ids"
        ]
    )
    m = 30
    for candidate_set in ("all", "words"):
        refs = torch.full_like(word_ids, tokenizer.mask_token_id)
        nearest = index.nearest_on_segments(
            table[refs], table[word_ids], paths.udig_reference_alphas(m), 50, candidate_set
        )
        graph = index.graph(100, candidate_set)
        for candidates in (nearest, graph):
            chain, points = paths.anchor_paths(word_ids, refs, table, candidates, strategy, m)
            assert torch.equal(chain, reference_chain(word_ids, refs, table, candidates, strategy, m)), candidate_set
            assert torch.equal(points, reference_points(chain, refs, table, m)), candidate_set


def test_bad_strategy_shapes_and_ids_are_rejected():
    vocab, word, ref = _toy_vocab(), torch.tensor([1]), torch.tensor([0])
    with pytest.raises(ValueError, match="strategy"):
        paths.anchor_paths(word, ref, vocab, torch.zeros(6, 2, dtype=torch.long), "best", 2)
    for shape in [(5, 2), (1, 3, 2), (2, 2, 2), (6,)]:
        with pytest.raises(ValueError, match="expected"):
            paths.anchor_paths(word, ref, vocab, torch.zeros(shape, dtype=torch.long), "greedy", 2)
    with pytest.raises(ValueError, match="outside the 6 rows"):
        paths.anchor_paths(torch.tensor([6]), ref, vocab, torch.zeros(6, 2, dtype=torch.long), "greedy", 2)
    with pytest.raises(ValueError, match="candidate ids outside the 6 rows"):
        paths.anchor_paths(word, ref, vocab, torch.full((1, 2, 2), 6), "greedy", 2)


def _quadratic(x):  # F(x) = sum_i (w . x_i)^2 and 3F: two targets; dF/dx_i = 2 (w . x_i) w
    weights = torch.tensor([1.0, -2.0])
    value = ((x * weights).sum(-1) ** 2).sum(-1)
    return torch.stack([value, 3 * value], dim=1)


def _grad(point):
    weights = torch.tensor([1.0, -2.0])
    return 2 * (point * weights).sum(-1, keepdim=True) * weights


def test_integrate_path_is_the_left_riemann_sum_and_never_needs_the_last_gradient():
    torch.manual_seed(0)
    points = torch.randn(7, 3, 2).cumsum(0)  # (N, L, d): any path
    calls: list[int] = []

    def function(x):
        calls.append(len(x))
        return _quadratic(x)

    expected = torch.zeros(3)
    for k in range(6):  # sum_k dF/dx(P_k) . (P_{k+1} - P_k), by hand
        expected += (_grad(points[k]) * (points[k + 1] - points[k])).sum(-1)
    for batch_size in (1, 4, 10):
        calls.clear()
        integral = integrate_path(function, points, batch_size)
        assert torch.allclose(integral.attributions[0], expected, atol=1e-5)
        assert torch.allclose(integral.attributions[1], 3 * expected, atol=1e-5)
        assert torch.allclose(integral.f_baseline, _quadratic(points[:1])[0])
        assert sum(calls) == integral.n_evaluations == 6  # the input's gradient is never needed
    with pytest.raises(ValueError, match="two points"):
        integrate_path(function, points[:1], 4)
    with pytest.raises(ValueError, match="unknown rule 'simpson'"):
        integrate_path(function, points, 4, rule="simpson")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_rules_by_hand(n):
    """Each rule on a path of n points, against the formula written out segment by segment."""
    torch.manual_seed(n)
    path = torch.randn(n, 3, 2).cumsum(0)
    steps = [path[k + 1] - path[k] for k in range(n - 1)]
    by_hand = {
        "riemann_left": sum(_grad(path[k]) * steps[k] for k in range(n - 1)),
        "riemann_right": sum(_grad(path[k + 1]) * steps[k] for k in range(n - 1)),
        "riemann_middle": sum(_grad((path[k] + path[k + 1]) / 2) * steps[k] for k in range(n - 1)),
        "riemann_trapezoid": sum((_grad(path[k]) + _grad(path[k + 1])) / 2 * steps[k] for k in range(n - 1)),
    }
    for rule, expected in by_hand.items():
        integral = integrate_path(_quadratic, path, 2, rule=rule)
        assert torch.allclose(integral.attributions[0], expected.sum(-1), atol=1e-4), rule
        assert integral.n_evaluations == RULES[rule].n_evaluations(n) == (n if rule == "riemann_trapezoid" else n - 1)
        assert torch.allclose(integral.f_baseline, _quadratic(path[:1])[0]), rule
    # F is quadratic along a straight line, so Gauss-Legendre with n - 1 >= 2 nodes is exact: A sums to F(x) - F(x')
    line = path[0] + torch.linspace(0, 1, n)[:, None, None] * (path[-1] - path[0])
    exact = integrate_path(_quadratic, line, 3, rule="gausslegendre")
    change = _quadratic(line[-1:])[0] - _quadratic(line[:1])[0]
    if n > 2:
        assert torch.allclose(exact.attributions.sum(1), change, rtol=1e-4)
    nodes, weights = RULES["gausslegendre"].nodes(line)
    assert len(nodes) == n - 1 and torch.allclose(weights.sum(0), line[-1] - line[0], atol=1e-5)  # weights sum to 1


def _wavy(x):  # a non-linear F with two targets, so the left sum is far from complete on a coarse path
    value = (torch.sin((x * torch.tensor([1.0, -2.0])).sum(-1)) * 3).sum(-1)
    return torch.stack([value, 2 * value], dim=1)


@pytest.mark.parametrize("rule", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_refinement_meets_the_target_and_equals_integrating_the_refined_path(rule):
    torch.manual_seed(0)
    path = torch.randn(9, 3, 2).cumsum(0)
    f_input = _wavy(path[-1:])[0]
    coarse = integrate_path(_wavy, path, 4, rule)
    coarse_error = (coarse.attributions.sum(1) - (f_input - coarse.f_baseline)).abs()
    refined = refine_path(_wavy, path, 4, rule, f_input, max_delta=0.05, max_points=1000)
    change = f_input - refined.f_baseline
    delta = refined.attributions.sum(1) - change
    assert target_met(delta, change, 0.05) and bool((delta.abs() < coarse_error).all())
    assert len(path) < len(refined.path) <= 1000
    # every gradient kept from an earlier round is exact: the same as integrating the final path from scratch
    direct = integrate_path(_wavy, refined.path, 4, rule)
    assert torch.allclose(refined.attributions, direct.attributions, atol=1e-4)
    assert torch.allclose(refined.f_baseline, direct.f_baseline)
    assert refined.path[0].equal(path[0]) and torch.allclose(refined.path[-1], path[-1])
    if (
        rule != "riemann_middle"
    ):  # each split costs one evaluation (the middle rule's cost two, its old midpoint unused)
        assert refined.n_evaluations == direct.n_evaluations


def test_refinement_stops_at_the_point_cap_and_on_a_flat_function():
    torch.manual_seed(1)
    path = torch.randn(5, 3, 2).cumsum(0)
    f_input = _wavy(path[-1:])[0]
    capped = refine_path(_wavy, path, 8, "riemann_left", f_input, max_delta=1e-6, max_points=12)
    assert len(capped.path) == 12 and capped.n_evaluations == 11
    flat = lambda x: torch.zeros(len(x), 2) + 0.0 * x.sum((1, 2))[:, None]  # noqa: E731 - F(x) = F(x'): change 0
    done = refine_path(flat, path, 8, "riemann_left", torch.zeros(2), max_delta=0.05, max_points=1000)
    assert len(done.path) == len(path)  # |Δ| = 0 <= 0.05 x MIN_CHANGE: nothing to refine, no division by zero
    assert target_met(torch.tensor([4e-5]), torch.tensor([0.0]), 0.05) and not target_met(
        torch.tensor([6e-5]), torch.tensor([0.0]), 0.05
    )


def test_gauss_legendre_refines_by_doubling_its_nodes():
    line = torch.linspace(0, 1, 4)[:, None, None] * torch.tensor([[[2.0, -1.0]]])  # 3 nodes on a straight line
    f_input = _wavy(line[-1:])[0]
    refined = refine_path(_wavy, line, 2, "gausslegendre", f_input, max_delta=1e-4, max_points=100)
    sizes = [4, 7, 13, 25, 49, 97]  # each round doubles the nodes and evaluates them all again
    rounds = sizes[: sizes.index(len(refined.path)) + 1]
    assert len(rounds) > 1 and refined.n_evaluations == sum(n - 1 for n in rounds)
    change = f_input - refined.f_baseline
    assert target_met(refined.attributions.sum(1) - change, change, 1e-4)


def _kink(x):  # F(x) = sum (x^2 / 100 + relu(x - 3)^3): nearly straight up to 3, then sharply curved
    return (x**2 / 100 + torch.relu(x - 3) ** 3).sum((1, 2))[:, None]


@pytest.mark.parametrize(
    ("rule", "max_delta", "n_evaluations", "attribution"),
    [
        # left sum: segment errors -0.01, -0.01, -0.01, -1.01 of F(x) - F(x') = 1.16 (|Δ| 0.90 of it); after
        # halving [3, 4] only, -0.66 (0.57): gradients 0, .02, .04, .06, .82 times steps 1, 1, 1, .5, .5 sum to 0.5
        ("riemann_left", 0.7, 4 + 1, 0.5),
        # midpoint sum: exact on the quadratic, so [3, 4] alone is off (-0.25); its two halves are off -0.03125
        # each; gradients at .5, 1.5, 2.5, 3.25, 3.75 sum to .09 + .12625 + .88125 (two new midpoints)
        ("riemann_middle", 0.1, 4 + 2, 1.0975),
    ],
)
def test_one_refinement_round_splits_only_the_worst_segment(rule, max_delta, n_evaluations, attribution):
    """A path of four unit segments whose last holds nearly all the error: one round halves that one only."""
    path = torch.arange(5, dtype=torch.float64)[:, None, None]  # (5, 1, 1): 0, 1, 2, 3, 4
    f_input = _kink(path[-1:])[0]
    refined = refine_path(_kink, path, 16, rule, f_input, max_delta=max_delta, max_points=100)
    assert refined.path.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 3.5, 4.0]
    assert refined.n_evaluations == n_evaluations
    assert refined.attributions.flatten().tolist() == pytest.approx([attribution], abs=1e-12)
