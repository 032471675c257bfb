"""Pure path and integrator functions on hand-computed cases."""

import pytest
import torch

from udig import paths
from udig.integrate import RULES, integrate_path, refine_path, target_met


def test_linear_path_runs_from_baseline_to_input_in_equal_steps():
    baseline, inputs = torch.zeros(2, 3), torch.ones(2, 3) * 4
    path = paths.linear_path(baseline, inputs, steps=4)
    assert path.shape == (5, 2, 3)
    assert torch.equal(path[:, 0, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))


def test_monotonize_keeps_monotone_dims_and_steps_the_rest():
    baseline = torch.tensor([0.0, 0.0, 0.0, 1.0])
    current = torch.tensor([2.0, -2.0, 2.0, 1.0])
    anchor = torch.tensor([1.0, -1.0, 3.0, 1.0])  # inside, inside, outside, equal to b == c
    result = paths.monotonize(anchor, baseline, current, m=4)
    # dim 2 is outside [0, 2]: c - (c - b)/m = 2 - 2/4
    assert torch.equal(result, torch.tensor([1.0, -1.0, 1.5, 1.0]))


def test_monotone_dims_when_baseline_equals_current_needs_equality():
    b = torch.tensor([1.0, 1.0])
    assert paths.monotone_dims(torch.tensor([1.0, 1.5]), b, b).tolist() == [True, False]


def test_candidate_costs_greedy_and_maxcount():
    baseline = torch.zeros(1, 1, 2)
    current = torch.full((1, 1, 2), 2.0)
    table = torch.tensor([[1.0, 1.0], [1.0, 5.0], [9.0, 9.0]])
    ids = torch.tensor([[0, 1, 2]])
    maxcount = paths.candidate_costs(ids, table, baseline, current, "maxcount", m=2)
    assert maxcount.tolist() == [[-2.0, -1.0, -0.0]]
    greedy = paths.candidate_costs(ids, table, baseline, current, "greedy", m=2)
    # fallback point is c - (c - b)/2 = 1 per dim: distances 0, 4, |(8, 8)|
    assert torch.allclose(greedy, torch.tensor([[0.0, 4.0, (2 * 64.0) ** 0.5]]))


def test_candidate_costs_equal_the_definition_on_random_rows():
    """The compiled scoring against monotone_dims/monotonize written out in tensors."""
    torch.manual_seed(0)
    table, ids = torch.randn(300, 8), torch.randint(0, 300, (3, 150))
    baseline, current = torch.randn(3, 1, 8), torch.randn(3, 1, 8)
    table[ids[0, :5]] = torch.maximum(baseline[0], current[0])  # rows on the box's edge count as monotone
    anchors = table[ids]  # (T, K, d)
    monotone = paths.monotone_dims(anchors, baseline, current)
    expected_maxcount = -monotone.sum(-1).float()
    expected_greedy = (anchors - paths.monotonize(anchors, baseline, current, m=5)).norm(dim=-1)
    assert torch.equal(paths.candidate_costs(ids, table, baseline, current, "maxcount", m=5), expected_maxcount)
    assert torch.allclose(paths.candidate_costs(ids, table, baseline, current, "greedy", m=5), expected_greedy, atol=1e-5)
    assert (expected_maxcount[0, :5] == -8).all()


def test_upscale_inserts_midpoints():
    points = torch.tensor([[0.0], [2.0], [4.0]])
    once = paths.upscale(points, 1)
    assert once.squeeze(1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert paths.upscale(points, 2).shape[0] == 2**2 * 2 + 1


def test_udig_reference_points_run_from_input_end_to_baseline_end():
    assert torch.allclose(paths.udig_reference_alphas(3), torch.tensor([0.75, 0.5, 0.25]))


def _toy_vocab():
    # row 0: reference word (baseline); row 1: input word; rows 2..5 candidates
    return torch.tensor(
        [[0.0, 0.0], [4.0, 4.0], [3.0, 3.0], [3.0, 5.0], [2.0, 2.0], [9.0, 9.0]]
    )


@pytest.mark.parametrize("strategy", ["greedy", "maxcount"])
def test_chain_prefers_monotone_candidates_and_excludes_path_and_reference(strategy):
    vocab = _toy_vocab()
    graph = torch.tensor([[1, 2, 3, 4, 5]] * 6)  # every row sees the same neighbours, in this order

    chain = paths.chain_anchors(
        torch.tensor([1]), torch.tensor([0]), vocab, lambda t, cur: graph[cur], strategy, m=3
    )
    assert chain[0, 0] == 1
    # step 1 from (4,4): 2 and 4 are fully monotone; 2 comes first (stable ties)
    assert chain[0, 1] == 2
    # step 2 from (3,3): 2 is on the path, 4 = (2,2) is monotone
    assert chain[0, 2] == 4
    # no word repeats and the reference never appears as a chosen candidate unless forced
    assert len(set(chain[0].tolist())) == 4


def test_chain_falls_back_to_reference_and_stays_there():
    vocab = _toy_vocab()
    only_input = torch.tensor([[1]] * 6)  # the only neighbour is the input word itself
    chain = paths.chain_anchors(
        torch.tensor([1]), torch.tensor([0]), vocab, lambda t, cur: only_input[cur], "greedy", m=3
    )
    assert chain[0].tolist() == [1, 0, 0, 0]


def test_anchor_points_end_at_word_and_start_at_baseline():
    vocab = _toy_vocab()
    chain = torch.tensor([[1, 3, 4]])
    points = paths.anchor_points(chain, torch.tensor([0]), vocab, m=2)
    assert points.shape == (4, 1, 2)
    assert torch.equal(points[0, 0], vocab[0]) and torch.equal(points[-1, 0], vocab[1])
    # (3, 5) from (4, 4): dim 1 is not monotone -> 4 - 4/2 = 2
    assert torch.equal(points[2, 0], torch.tensor([3.0, 2.0]))


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="strategy"):
        paths.chain_anchors(torch.tensor([1]), torch.tensor([0]), _toy_vocab(), lambda t, c: c[:, None], "best", 2)


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
    if rule != "riemann_middle":  # each split costs one evaluation (the middle rule's cost two, its old midpoint unused)
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
    assert target_met(torch.tensor([4e-5]), torch.tensor([0.0]), 0.05) and not target_met(torch.tensor([6e-5]), torch.tensor([0.0]), 0.05)


def test_gauss_legendre_refines_by_doubling_its_nodes():
    line = torch.linspace(0, 1, 4)[:, None, None] * torch.tensor([[[2.0, -1.0]]])  # 3 nodes on a straight line
    f_input = _wavy(line[-1:])[0]
    refined = refine_path(_wavy, line, 2, "gausslegendre", f_input, max_delta=1e-4, max_points=100)
    sizes = [4, 7, 13, 25, 49, 97]  # each round doubles the nodes and evaluates them all again
    rounds = sizes[: sizes.index(len(refined.path)) + 1]
    assert len(rounds) > 1 and refined.n_evaluations == sum(n - 1 for n in rounds)
    change = f_input - refined.f_baseline
    assert target_met(refined.attributions.sum(1) - change, change, 1e-4)
