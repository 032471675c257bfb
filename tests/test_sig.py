"""Sequential integration: SIG against time-interpret's reference code, and Sequential DIG/UDIG by their definition."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from udig import Explainer
from udig.integrate import RULES, integrate_path
from udig.methods import get_method
from udig.paths import sentence_path
from udig.sequential import integrate_sequential
from udig.settings import PARAMETERS, Settings

TEXT = "a gorgeous, witty and moving film"
SIG_RULES = get_method("sig").restricts.get("rule", PARAMETERS["rule"].choices)  # every rule SIG accepts


def _tint_sig(monkeypatch):
    """time-interpret 0.3.0's SequentialIntegratedGradients, loaded from its file: the package's ``__init__``
    imports heavy dependencies (lightning, ...) that its seq_ig module does not need. Test-only, installed with
    ``--no-deps`` (requirements-test-nodeps.txt)."""
    spec = importlib.util.find_spec("tint")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("time-interpret is not installed (pip install --no-deps -r requirements-test-nodeps.txt)")
    root = Path(spec.submodule_search_locations[0])
    utils = types.ModuleType("tint.utils")
    utils.get_progress_bars = lambda: None  # only used with show_progress=True
    monkeypatch.setitem(sys.modules, "tint", types.ModuleType("tint"))
    monkeypatch.setitem(sys.modules, "tint.utils", utils)
    module_spec = importlib.util.spec_from_file_location("tint.attr.seq_ig", root / "attr" / "seq_ig.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SequentialIntegratedGradients


@pytest.mark.parametrize(
    ("steps", "text"),
    [
        (12, TEXT),
        pytest.param(50, "a gorgeous film", marks=pytest.mark.slow),  # a shorter text keeps 50 steps affordable
    ],
)
@pytest.mark.parametrize("rule", SIG_RULES)
def test_sig_equals_time_interpret(minilm, monkeypatch, rule, steps, text):
    """Matched settings: the same [MASK] baseline per word, tint's ``n_steps`` = udig's ``steps`` (udig's line has
    steps + 1 points; the left, right and middle sums and Gauss-Legendre take ``steps`` gradients on it, as
    captum's). The trapezoid takes all steps + 1 points, as captum's with ``n_steps = steps + 1``, whose weights
    sum to steps / (steps + 1) instead of 1 (see :mod:`udig.integrate`): its scores are rescaled to compare."""
    assert set(SIG_RULES) == set(RULES)  # a straight line takes every rule, Gauss-Legendre included
    model, tokenizer = minilm
    ours = Explainer(model, tokenizer).explain(text, method="sig", steps=steps, rule=rule)
    assert ours.baseline_token == "[MASK]" and ours.settings["sequential"] is True

    ids = torch.tensor([ours.input_ids])
    special = torch.tensor(ours.special_mask)
    embeddings = model.get_input_embeddings()
    inputs = embeddings(ids).detach()  # (1, L, d)
    baseline = embeddings(torch.where(special, ids, tokenizer.mask_token_id)).detach()
    forward = lambda x: model(inputs_embeds=x).logits  # noqa: E731
    trapezoid = rule == "riemann_trapezoid"
    n_steps = steps + 1 if trapezoid else steps
    theirs = _tint_sig(monkeypatch)(forward).attribute(
        inputs, baselines=baseline, target=ours.target, n_steps=n_steps, method=rule
    )
    theirs = theirs.sum(-1)[0].double() * (n_steps / steps if trapezoid else 1.0)  # (L,)

    words = ~special
    expected = theirs[words]
    got = torch.tensor(ours.attributions, dtype=torch.float64)[words]
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert expected.abs().max() > 1e-2  # the scores are not all ~0 (the test could not fail then)
    assert ours.settings["n_evaluations"] == int(words.sum()) * n_steps


def _product(weights: torch.Tensor):
    """F(x) = prod_i (w . x_i) per batch row, two targets: linear in each token, so along a path where one token
    moves every Riemann rule is exact and A_i = F(x) - F(x^(i)); a joint path (IG) gives other values."""
    return lambda points: torch.stack([(points @ weights).prod(-1), (points @ weights).sum(-1)], dim=1)


def test_each_word_is_exact_on_a_function_linear_in_each_word():
    torch.manual_seed(0)
    inputs, baseline, weights = (
        torch.randn(5, 3, dtype=torch.float64),
        torch.randn(5, 3, dtype=torch.float64),
        torch.randn(3, dtype=torch.float64),
    )
    moving = torch.tensor([False, True, True, True, False])
    baseline[~moving] = inputs[~moving]
    function = _product(weights)
    path = torch.stack([baseline + a * (inputs - baseline) for a in torch.linspace(0, 1, 4, dtype=torch.float64)])
    f_input = function(inputs[None])[0]
    for rule in ("riemann_left", "riemann_right", "riemann_trapezoid"):
        for batch_size in (1, 4, 100):
            integral = integrate_sequential(function, path, moving, batch_size, rule, f_input)
            expected = torch.zeros(2, 5, dtype=torch.float64)
            for i in moving.nonzero().squeeze(1).tolist():
                changed = inputs.clone()
                changed[i] = baseline[i]
                expected[:, i] = f_input - function(changed[None])[0]
            torch.testing.assert_close(integral.attributions, expected, rtol=1e-12, atol=1e-12)
            assert integral.n_evaluations == 3 * (3 if rule != "riemann_trapezoid" else 4)
            # the F(x') that makes Δ the words' own errors, Σ_i [A_i − (F(x) − F(x^(i)))]: F(x) − Σ_i (F(x) − F(x^(i)))
            torch.testing.assert_close(integral.f_baseline, f_input - expected.sum(1), rtol=1e-12, atol=1e-12)
    joint = integrate_path(function, path, 100, "riemann_left").attributions
    assert not torch.allclose(joint, expected)  # the sequential paths are not the joint one


@pytest.mark.parametrize("method", ["dig", "udig"])
def test_sequential_anchored_paths_follow_their_definition(tiny, method):
    """Word i's Sequential DIG/UDIG score is the joint word path's column i integrated, every other token at
    the input."""
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer, graph_k=8)
    joint = explainer.explain(TEXT, method=method, steps=4, nbrs=4)
    sequential = explainer.explain(TEXT, method=method, steps=4, nbrs=4, sequential=True)
    assert torch.equal(sequential.path, joint.path) and sequential.anchors == joint.anchors  # the same word paths
    special = torch.tensor(joint.special_mask)
    inputs = model.get_input_embeddings().weight[torch.tensor(joint.input_ids)].detach()
    value = lambda points: model(inputs_embeds=points).logits[:, [joint.target]]  # noqa: E731
    expected = torch.zeros(len(inputs))
    for i in (~special).nonzero().squeeze(1).tolist():
        alone = torch.zeros_like(special)
        alone[i] = True
        own_path = sentence_path(joint.path[:, i : i + 1], inputs, alone)
        expected[i] = integrate_path(value, own_path, 64).attributions[0, i]
    assert sequential.attributions == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-6)
    assert sequential.attributions != pytest.approx(joint.attributions, rel=1e-3)
    words = int((~special).sum())
    assert sequential.settings["n_evaluations"] == words * joint.settings["n_evaluations"]
    settings = Settings.make(method=method, steps=4, sequential=True)
    assert (
        settings.cost(words) == sequential.settings["n_evaluations"]
        and Settings.make(method=method, steps=4).cost(words) == joint.settings["n_evaluations"]
    )


def test_sequential_explains_qa(minilm_qa):
    """Each part's F is its logit, taken here from the model on token ids: the start logit at the predicted
    start and the end logit at the predicted end, on the input and with each word in turn at [MASK] (UDIG's
    baseline); Δ is the sum of the words' own completeness errors."""
    model, tokenizer = minilm_qa
    question, context = "who came?", "Ann came late."
    result = Explainer(model, tokenizer).explain(
        question=question, context=context, method="udig", steps=3, nbrs=8, sequential=True
    )
    encoding = tokenizer(question, context, return_special_tokens_mask=True, return_tensors="pt")
    ids, types = encoding["input_ids"][0], encoding["token_type_ids"]
    assert ids.tolist() == result.start.input_ids
    words = (~encoding["special_tokens_mask"][0].bool()).nonzero().squeeze(1)
    variants = torch.stack([ids] + [ids.index_fill(0, i, tokenizer.mask_token_id) for i in words])  # (1 + T, L)
    with torch.no_grad():
        output = model(input_ids=variants, token_type_ids=types.expand(len(variants), -1))
    for part, logits in ((result.start, output.start_logits), (result.end, output.end_logits)):
        values = logits[:, part.target].double()  # F(x), then F(x^(i)) for each word
        f_baseline = float(values[0] - (values[0] - values[1:]).sum())
        assert part.settings["sequential"] is True and sum(map(abs, part.attributions)) > 0
        assert part.f_input == pytest.approx(float(values[0]), abs=1e-5)
        assert part.delta == pytest.approx(sum(part.attributions) - (float(values[0]) - f_baseline), abs=1e-5)


def test_sequential_settings_are_checked():
    assert (
        Settings.make(method="sig").sequential is True
        and Settings.make(method="sig", sequential=False).sequential is True
    )
    assert Settings.make(method="sig").baseline == get_method("sig").paper_baseline == "mask"
    assert Settings.make(method="ig", sequential=True).sequential is False  # IG's sequential form is SIG
    assert Settings.make(method="udig", sequential="yes", lenient=True).sequential is True
    with pytest.raises(ValueError, match="sequential must be True or False, got 'yes'"):
        Settings.make(method="udig", sequential="yes")
    with pytest.raises(ValueError, match="sequential paths are integrated as given"):
        Settings.make(method="dig", sequential=True, max_delta=0.1)
    with pytest.raises(ValueError, match="sequential paths are integrated as given"):  # refused, not dropped
        Settings.make(method="sig", max_delta=0.1)
    assert Settings.make(method="sig", max_points=300).max_points == Settings.make(method="sig").max_points


@pytest.mark.parametrize("method", ["dig", "udig", "sig"])
def test_sequential_slices_change_nothing(tiny, method):
    """The T x M points go through the model in slices of any size: one point at a time gives the same scores."""
    model, tokenizer = tiny
    kwargs = dict(method=method, steps=4, nbrs=4, sequential=True)
    whole = Explainer(model, tokenizer, graph_k=8).explain(TEXT, **kwargs)
    single = Explainer(model, tokenizer, graph_k=8, internal_batch_size=1).explain(TEXT, **kwargs)
    assert whole.attributions == pytest.approx(single.attributions, rel=1e-5, abs=1e-7)
    assert whole.f_baseline == pytest.approx(single.f_baseline, rel=1e-5, abs=1e-7)
    assert all(a == 0.0 for a, special in zip(whole.attributions, whole.special_mask) if special)
    assert any(a != 0.0 for a in whole.attributions)
