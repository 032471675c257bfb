"""The Explainer end to end: parity with captum, the path contract for every method, bad input."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from conftest import tiny_bert

from udig import Explainer, QAExplanation, paths
from udig.settings import PARAMETERS, Settings

SENTENCE = "the film is a gorgeous, moving and deeply felt portrait of a family in crisis."
TINY_SENTENCE = "the film is good but the plot is dull."
PATH_METHODS = [
    (method, strategy, rule, factor)
    for method in ("dig", "udig")
    for strategy in ("greedy", "maxcount")
    for rule in ("all", "words")
    for factor in (0, 1)
]


@pytest.mark.parametrize(
    "rule", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]
)
def test_ig_matches_captum_layer_integrated_gradients(minilm, rule):
    """Every rule: captum's rule of the same name with n_steps = the gradient evaluations udig reports."""
    from captum.attr import LayerIntegratedGradients

    model, tokenizer = minilm
    explanation = Explainer(model, tokenizer).explain(SENTENCE, method="ig", steps=30, rule=rule)
    n_evaluations = explanation.settings["n_evaluations"]
    assert n_evaluations == (31 if rule == "riemann_trapezoid" else 30)
    ids = torch.tensor([explanation.input_ids])
    special = torch.tensor(explanation.special_mask)
    reference = torch.where(special, ids, tokenizer.pad_token_id)

    def forward(input_ids):
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[:, explanation.target]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    expected = lig.attribute(ids, baselines=reference, n_steps=n_evaluations, method=rule).sum(-1)[0]
    if rule == "riemann_trapezoid":  # captum 0.9 weights its n points 1/(2n), 1/n, ..., 1/(2n): they sum to
        expected *= n_evaluations / (n_evaluations - 1)  # (n-1)/n, not 1; udig's trapezoid weights sum to 1
    ours = torch.tensor(explanation.attributions)
    assert torch.linalg.norm(ours - expected) / torch.linalg.norm(expected) < 1e-4


def test_the_largest_logit_objective_is_ig_of_the_max_logit(minilm):
    """``objective="largest"`` (the published DIG/UDIG code's ``pred.max(1)``) equals captum's IG of a forward
    that returns the largest logit; on this sentence another class is largest at the baseline, so it differs
    from the input-target objective."""
    from captum.attr import LayerIntegratedGradients

    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    fixed = explainer.explain(SENTENCE, method="ig", steps=30)
    largest = explainer.explain(SENTENCE, method="ig", steps=30, objective="largest")
    ids = torch.tensor([largest.input_ids])
    reference = torch.where(torch.tensor(largest.special_mask), ids, tokenizer.pad_token_id)

    def forward(input_ids):
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits.max(1).values

    expected = (
        LayerIntegratedGradients(forward, model.get_input_embeddings())
        .attribute(ids, baselines=reference, n_steps=30, method="riemann_left")
        .sum(-1)[0]
    )
    ours = torch.tensor(largest.attributions)
    assert torch.linalg.norm(ours - expected) / torch.linalg.norm(expected) < 1e-4
    with torch.no_grad():
        at_baseline = model(input_ids=reference).logits[0]
    assert largest.f_baseline == pytest.approx(float(at_baseline.max()), abs=1e-4) != fixed.f_baseline
    assert (
        largest.f_input == fixed.f_input and largest.target == fixed.target
    )  # at the input the largest is the prediction
    assert largest.settings["objective"] == "largest" and fixed.settings["objective"] == "target"
    with pytest.raises(ValueError, match="not a chosen class; leave target unset"):
        explainer.explain(SENTENCE, method="ig", objective="largest", target=1)


def test_the_largest_logit_objective_is_refused_for_qa(minilm_qa):
    model, tokenizer = minilm_qa
    with pytest.raises(ValueError, match="objective='largest' .* is for classification"):
        Explainer(model, tokenizer).explain(question="who?", context="Ann wrote it.", method="ig", objective="largest")


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
@pytest.mark.parametrize("method,strategy,rule,factor", PATH_METHODS)
def test_word_paths_are_monotone_and_run_from_baseline_to_input(minilm, method, strategy, rule, factor):
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer, graph_k=100)
    e = explainer.explain(SENTENCE, method=method, strategy=strategy, candidates=rule, factor=factor, steps=10)
    path = e.path  # (N, L, d)
    embeddings = model.get_input_embeddings().weight.detach()
    ids = torch.tensor(e.input_ids)
    special = torch.tensor(e.special_mask)
    reference_id = tokenizer.pad_token_id if method == "dig" else tokenizer.mask_token_id
    baseline = embeddings[torch.where(special, ids, reference_id)]
    assert path.shape[0] == 2**factor * 11 + 1
    assert torch.equal(path[0], baseline) and torch.equal(path[-1], embeddings[ids])
    low, high = torch.minimum(path[:-1], path[-1]), torch.maximum(path[:-1], path[-1])
    inside = (path[1:] >= low - 1e-6) & (path[1:] <= high + 1e-6)
    assert bool(inside.all()), "a point left the box between the previous point and the input"
    assert all(e.attributions[i] == 0.0 for i in special.nonzero().squeeze(1).tolist())
    for i, chain in enumerate(e.anchors):
        assert (chain is None) == e.special_mask[i]
        if chain is not None:
            assert chain[0] == e.input_ids[i] and len(chain) == 11
    assert e.real_word_share is not None and 0.0 <= e.real_word_share <= 1.0
    if rule == "words":
        assert e.real_word_share == 1.0
    assert torch.isfinite(torch.tensor(e.delta))


def test_anchors_are_vocabulary_neighbours_not_the_reference(minilm):
    model, tokenizer = minilm
    e = Explainer(model, tokenizer).explain("a terrible movie", method="udig", candidates="words", steps=10)
    terrible = e.tokens.index("terrible")
    chosen = [t for t in e.anchor_tokens[terrible][1:] if t != "[MASK]"]
    assert chosen and "terrible" not in chosen and len(set(chosen)) == len(chosen)


def target_logits(model, tokenizer, text: str, target: int, reference_id: int) -> tuple[float, float]:
    """F(x) and F(x') computed here, not by udig: the target logit of the model run on the tokenizer's ids of
    ``text``, and on the same ids with every non-special token replaced by ``reference_id`` (the baseline)."""
    encoded = tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
    special = encoded.pop("special_tokens_mask").bool()
    baseline = torch.where(special, encoded["input_ids"], reference_id)
    with torch.no_grad():
        at_input = model(**encoded).logits[0, target]
        at_baseline = model(**{**encoded, "input_ids": baseline}).logits[0, target]
    return float(at_input), float(at_baseline)


# udig takes F from rows of a batched embedding pass, this module from a lone id pass: float32 results of the same
# function that differ only in summation order, about 1e-7 of a logit's size (these are O(1)-O(10)); 1e-4 is far
# above that and far below the completeness errors the tests below tell apart.
F_TOLERANCE = 1e-4


def test_ig_is_complete_with_many_steps(minilm):
    """Completeness against an F computed independently: Σa ≈ F(x) - F(x') within 2 % at 300 steps, and the Δ
    udig reports is that difference."""
    model, tokenizer = minilm
    e = Explainer(model, tokenizer).explain(SENTENCE, method="ig", steps=300)
    f_input, f_baseline = target_logits(model, tokenizer, SENTENCE, e.target, tokenizer.pad_token_id)
    change = f_input - f_baseline
    assert abs(change) > 0.1
    assert e.f_input == pytest.approx(f_input, abs=F_TOLERANCE)
    assert e.f_baseline == pytest.approx(f_baseline, abs=F_TOLERANCE)
    error = sum(e.attributions) - change
    assert abs(error) < 0.02 * abs(change)
    assert e.delta == pytest.approx(error, abs=F_TOLERANCE)


@pytest.mark.parametrize("method", ["ig", "dig", "udig"])
def test_batched_and_unbatched_runs_agree_and_repeat_exactly(tiny, method):
    model, tokenizer = tiny
    runs = [
        Explainer(model, tokenizer, internal_batch_size=size, graph_k=8).explain(TINY_SENTENCE, method=method, steps=9)
        for size in (1, 4, None)
    ]
    for other in runs[1:]:
        assert torch.allclose(torch.tensor(other.attributions), torch.tensor(runs[0].attributions), atol=1e-6)
    again = Explainer(model, tokenizer, internal_batch_size=4, graph_k=8).explain(TINY_SENTENCE, method=method, steps=9)
    assert again.attributions == runs[1].attributions and again.anchors == runs[1].anchors


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
@pytest.mark.parametrize(
    "method,strategy,rule",
    [(m, s, r) for m in ("dig", "udig") for s in ("greedy", "maxcount") for r in ("all", "words")],
)
def test_remembered_chains_give_the_paths_a_fresh_search_gives(minilm, method, strategy, rule):
    """A sentence whose words were chained before (some of them, in another sentence) gets the chains, and so
    the attributions, that a search from nothing gives; the words chained before are not searched again."""
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    options = dict(method=method, strategy=strategy, candidates=rule, steps=12)
    explainer.vocab_.forget_chains()
    fresh = explainer.explain(SENTENCE, **options)
    explainer.vocab_.forget_chains()
    explainer.explain("a gorgeous family film, deeply moving.", **options)  # some of SENTENCE's words, not all
    searched = []
    real_chains = paths.anchor_chains
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            paths, "anchor_chains", lambda words, *rest: searched.append(len(words)) or real_chains(words, *rest)
        )
        remembered = explainer.explain(SENTENCE, **options)
        again = explainer.explain(SENTENCE, **options)
    assert remembered.anchors == fresh.anchors and remembered.attributions == fresh.attributions
    assert again.anchors == fresh.anchors and again.attributions == fresh.attributions
    distinct_words = len(set(fresh.tokens[1:-1]))
    assert searched and 0 < searched[0] < distinct_words and len(searched) == 1  # the second call searched nothing


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
@pytest.mark.parametrize(
    "method,variants",
    [
        ("udig", [dict(steps=8), dict(strategy="maxcount"), dict(candidates="all"), dict(nbrs=5)]),
        ("dig", [dict(steps=8), dict(strategy="maxcount"), dict(candidates="all")]),
    ],
)
def test_chains_remembered_under_one_setting_serve_no_other(minilm, method, variants):
    """Every setting a chain depends on keeps its own: each variant's paths, right after the base setting's
    were remembered, are the ones it finds from nothing, and they differ from the base setting's."""
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    base = dict(method=method, strategy="greedy", candidates="words", steps=12) | (
        {"nbrs": 50} if method == "udig" else {}
    )
    explainer.vocab_.forget_chains()
    base_anchors = explainer.explain(SENTENCE, **base).anchors
    for change in variants:
        options = base | change
        remembered = explainer.explain(SENTENCE, **options).anchors
        explainer.vocab_.forget_chains()
        fresh = explainer.explain(SENTENCE, **options).anchors
        explainer.explain(SENTENCE, **base)
        assert remembered == fresh and fresh != base_anchors, change


@contextmanager
def _forward_batches(model) -> Iterator[list[int]]:
    """The batch size of every forward pass through ``model`` while the block runs."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(len(kwargs["inputs_embeds"])), with_kwargs=True
    )
    try:
        yield sizes
    finally:
        handle.remove()


@pytest.mark.parametrize("method", ["ig", "udig"])
def test_the_decision_rides_in_the_first_gradient_pass(tiny, method):
    """A short input is one more row of the first gradient batch (no forward pass of its own), and the prediction and
    F(x) equal a lone forward's: float32 rows of one batch differ from a lone row's only by the summation order
    of the matrix products (~1e-7 relative on these O(1) logits), so 1e-5 is generous and still far below any
    logit difference that would change a decision."""
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer, graph_k=8)
    with _forward_batches(model) as sizes:
        e = explainer.explain(TINY_SENTENCE, method=method, steps=9)
    assert sizes == [e.settings["n_evaluations"] + 1]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.input_ids])).logits[0]
    assert e.target == int(logits.argmax())
    assert e.f_input == pytest.approx(float(logits[e.target]), abs=1e-5)
    assert e.probs == pytest.approx(logits.softmax(-1).tolist(), abs=1e-5)


def test_the_decision_comes_first_when_the_path_needs_it(tiny):
    """A completeness target compares against F(x) from the start: then the input gets a forward pass of its own,
    first, and the result matches the folded one."""
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer)
    folded = explainer.explain(TINY_SENTENCE, method="ig", steps=9)
    with _forward_batches(model) as sizes:  # 10 points: no room to refine
        refined = explainer.explain(TINY_SENTENCE, method="ig", steps=9, max_delta=0.5, max_points=10)
    assert sizes == [1, refined.settings["n_evaluations"]]
    assert refined.f_input == pytest.approx(folded.f_input, abs=1e-5) and refined.target == folded.target
    assert refined.attributions == pytest.approx(folded.attributions, abs=1e-5)


def test_a_long_input_gets_a_forward_pass_of_its_own(tiny):
    """Past INPUT_ROW_TOKENS an extra row's backward costs more than a lone forward saves: the input goes first."""
    from udig.explainer import INPUT_ROW_TOKENS

    model, tokenizer = tiny
    text = " ".join([TINY_SENTENCE] * 8)
    with _forward_batches(model) as sizes:
        e = Explainer(model, tokenizer).explain(text, method="ig", steps=9)
    assert len(e.tokens) > INPUT_ROW_TOKENS
    assert sizes == [1, e.settings["n_evaluations"]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.input_ids])).logits[0]
    assert e.target == int(logits.argmax()) and e.f_input == pytest.approx(float(logits[e.target]), abs=1e-5)


def test_a_bad_target_is_refused_before_any_work(tiny):
    model, tokenizer = tiny
    with _forward_batches(model) as sizes:
        for target, message in ((7, "class index"), ("neutral", "unknown target label")):
            with pytest.raises(ValueError, match=message):
                Explainer(model, tokenizer, graph_k=8).explain(TINY_SENTENCE, method="dig", target=target)
    assert sizes == []


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_every_architecture_explains(tiny_vocab_file, arch):
    """Each architecture's Δ is Σa - (F(x) - F(x')) with F run here on the ids (the path starts at the baseline
    word's embeddings, so F(x') is the model on the baseline ids: PAD for IG and DIG, MASK for UDIG)."""
    model, tokenizer = tiny_bert(tiny_vocab_file, arch=arch)
    for method, reference in (
        ("ig", tokenizer.pad_token_id),
        ("udig", tokenizer.mask_token_id),
        ("dig", tokenizer.pad_token_id),
    ):
        e = Explainer(model, tokenizer, graph_k=8).explain(TINY_SENTENCE, method=method, steps=5)
        assert len(e.attributions) == len(e.tokens)
        f_input, f_baseline = target_logits(model, tokenizer, TINY_SENTENCE, e.target, reference)
        assert (e.f_input, e.f_baseline) == pytest.approx((f_input, f_baseline), abs=F_TOLERANCE)
        assert e.delta == pytest.approx(sum(e.attributions) - (f_input - f_baseline), abs=F_TOLERANCE)


def test_target_by_label_and_index(tiny):
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer)
    by_label = explainer.explain(TINY_SENTENCE, method="ig", target="negative")
    by_index = explainer.explain(TINY_SENTENCE, method="ig", target=0)
    assert by_label.target == 0 and by_label.attributions == by_index.attributions


def test_qa_explains_start_and_end_of_an_answer_inside_the_context(minilm_qa):
    model, tokenizer = minilm_qa
    question, context = "who directed the film?", "The film was directed by Ana Lily Amirpour in 2014."
    result = Explainer(model, tokenizer).explain(question=question, context=context, method="udig", steps=8)
    assert isinstance(result, QAExplanation)
    start, end = result.answer_span
    assert 0 <= start < end <= len(context) and result.answer == context[start:end]
    assert result.start.output == "start_logits" and result.end.output == "end_logits"
    assert result.start.target <= result.end.target
    for part in (result.start, result.end):
        assert all(a == 0.0 for a, s in zip(part.attributions, part.special_mask) if s)
        token_span = part.offsets[part.target]
        assert part.text[token_span[0] : token_span[1]].lower() in context.lower()
    assert result.attributions == [s + e for s, e in zip(result.start.attributions, result.end.attributions)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n"}, "empty"),
        ({"text": "fine", "method": "lime"}, "unknown method"),
        ({"text": "fine", "strategy": "best"}, "unknown strategy"),
        ({"text": "fine", "steps": 0}, "steps"),
        ({"text": "fine", "factor": -1}, "factor"),
        ({"text": "fine", "nbrs": 0}, "nbrs"),
        ({"text": "fine", "candidates": "some"}, "candidates"),
        ({"text": "fine", "baseline": "zzzz-not-a-token"}, "not in the vocabulary"),
        ({"text": "fine", "target": 7}, "target"),
        ({"text": "fine", "target": "neutral"}, "unknown target label"),
        ({"question": "q", "context": "c"}, "classification model"),
    ],
)
def test_bad_input_gets_a_clear_error(tiny, kwargs, message):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match=message):
        Explainer(model, tokenizer).explain(**kwargs)


def test_bad_constructor_arguments(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="candidates"):
        Explainer(model, tokenizer, candidates="nouns")
    with pytest.raises(ValueError, match="internal_batch_size"):
        Explainer(model, tokenizer, internal_batch_size=0)
    with pytest.raises(TypeError, match="not supported"):
        Explainer(torch.nn.Linear(2, 2), tokenizer)


def test_qa_model_rejects_plain_text(minilm_qa):
    model, tokenizer = minilm_qa
    with pytest.raises(ValueError, match="question"):
        Explainer(model, tokenizer).explain("just text")
    with pytest.raises(ValueError, match="empty"):
        Explainer(model, tokenizer).explain(question="who?", context=" ")


def test_missing_mask_token_falls_back_to_pad_and_says_so(tiny):
    model, tokenizer = tiny
    no_mask = copy.deepcopy(tokenizer)
    no_mask.mask_token = None
    e = Explainer(model, no_mask).explain(TINY_SENTENCE, method="udig", steps=4)
    assert e.baseline_token == "[PAD]"
    assert any("no MASK token" in w for w in e.warnings)


def test_long_text_is_truncated_and_flagged(tiny):
    model, tokenizer = tiny
    e = Explainer(model, tokenizer, max_length=12).explain(" ".join(["good film"] * 30), method="ig", steps=3)
    assert e.truncated and len(e.tokens) == 12 and e.tokens[-1] == "[SEP]"
    assert any("truncated" in w for w in e.warnings)
    short = Explainer(model, tokenizer, max_length=12).explain("good film", method="ig", steps=3)
    assert not short.truncated


def test_explanation_serialises_without_the_path(tiny):
    import json

    model, tokenizer = tiny
    e = Explainer(model, tokenizer, graph_k=8).explain(TINY_SENTENCE, method="dig", steps=4)
    data = json.loads(json.dumps(e.to_dict()))
    assert "path" not in data and data["settings"]["method"] == "dig"
    assert data["scores"] == pytest.approx(e.scores)
    assert abs(sum(s * s for s in e.scores) - 1.0) < 1e-9


def test_the_tiny_fixture_tokenizes_real_words(tiny):
    """Guards the fixtures: a tokenizer that silently lost its vocabulary would turn every word into [UNK]."""
    model, tokenizer = tiny
    e = Explainer(model, tokenizer).explain("a gorgeous film", method="udig", steps=3)
    assert e.tokens == ["[CLS]", "a", "gorgeous", "film", "[SEP]"]
    assert all(chain is not None and chain[0] == word for chain, word in zip(e.anchors[1:-1], e.input_ids[1:-1]))


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_concurrent_explanations_equal_sequential_ones(minilm):
    """The app serves requests from several threads; the compiled anchor scoring must not mix them up."""
    from concurrent.futures import ThreadPoolExecutor

    explainer = Explainer(*minilm)
    jobs = [
        ("a gorgeous, moving film", "dig", "greedy"),
        ("a dull and lifeless plot", "dig", "maxcount"),
        ("not bad at all", "udig", "maxcount"),
        ("the acting is wooden", "udig", "greedy"),
    ] * 2
    run = lambda job: explainer.explain(job[0], method=job[1], strategy=job[2], steps=10).anchors  # noqa: E731
    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, jobs)) == sequential


def test_explain_many_yields_each_explanation_in_order_with_a_progress_bar(tiny, minilm_qa, capsys):
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer)
    texts = [TINY_SENTENCE, "a gorgeous, moving portrait of a family.", "this movie was boring."]
    settings = dict(method="udig", strategy="greedy", steps=4, nbrs=4)
    many = list(explainer.explain_many(iter(texts), **settings))
    capsys.readouterr()
    singles = [explainer.explain(text, **settings) for text in texts]
    assert [e.text for e in many] == texts
    assert [e.attributions for e in many] == [e.attributions for e in singles], "the same computation as explain()"
    assert [e.anchors for e in many] == [e.anchors for e in singles]
    list(explainer.explain_many(texts[:2], method="ig", steps=4))
    assert "2/2" in capsys.readouterr().err, "a tqdm bar counts the explanations"
    list(explainer.explain_many(texts[:2], method="ig", steps=4, progress=False))
    assert capsys.readouterr().err == ""

    qa_model, qa_tokenizer = minilm_qa
    [qa] = Explainer(qa_model, qa_tokenizer).explain_many(
        [{"question": "who sat?", "context": "the cat sat on the mat."}], method="ig", steps=4, progress=False
    )
    assert isinstance(qa, QAExplanation)


def test_explain_many_raises_or_yields_the_error_of_a_bad_input(tiny):
    explainer = Explainer(*tiny)
    with pytest.raises(ValueError, match="empty"):
        list(explainer.explain_many([TINY_SENTENCE, "   "], method="ig", steps=4, progress=False))
    good, bad, after = explainer.explain_many(
        [TINY_SENTENCE, "   ", "a good film."], method="ig", steps=4, progress=False, return_errors=True
    )
    assert isinstance(bad, ValueError) and "empty" in str(bad)
    assert (good.text, after.text) == (TINY_SENTENCE, "a good film."), "the run goes on, aligned with its inputs"


# -- one Settings object, or the same by keywords ---------------------------------------------------------


def test_a_settings_object_is_used_as_it_is_and_keywords_make_the_same(tiny):
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer, graph_k=8)
    settings = Settings.make(method="dig", strategy="greedy", steps=5, candidates="words", rule="riemann_middle")
    given = explainer.explain(TINY_SENTENCE, settings=settings)
    by_name = explainer.explain(
        TINY_SENTENCE, method="dig", strategy="greedy", steps=5, candidates="words", rule="riemann_middle"
    )
    assert given.attributions == by_name.attributions and given.anchors == by_name.anchors
    assert given.settings == by_name.settings == {**settings.info(), "graph_k": 8, "model": given.settings["model"]}
    [many] = explainer.explain_many([TINY_SENTENCE], settings=settings, progress=False)
    assert many.attributions == given.attributions


def test_settings_and_keywords_together_are_refused(tiny):
    explainer = Explainer(*tiny)
    settings = Settings.make(method="ig", steps=4)
    with pytest.raises(ValueError, match=r"give settings= or keywords, not both \(got settings= and steps=\)"):
        explainer.explain(TINY_SENTENCE, settings=settings, steps=8)
    with pytest.raises(ValueError, match="not both"):
        explainer.size(TINY_SENTENCE, settings=settings, steps=4)  # even an equal value: one object, checked once
    with pytest.raises(TypeError, match="settings must be a udig Settings"):
        explainer.explain(TINY_SENTENCE, settings={"method": "ig"})
    with pytest.raises(ValueError, match="unknown setting 'stepz'"):
        explainer.explain(TINY_SENTENCE, stepz=4)


def test_the_explainers_candidates_apply_when_a_call_leaves_them_out(tiny):
    explainer = Explainer(*tiny, candidates="words", graph_k=8)
    options = dict(method="udig", steps=3, nbrs=4)
    assert explainer.explain(TINY_SENTENCE, **options).settings["candidates"] == "words"
    assert explainer.explain(TINY_SENTENCE, **options, candidates="all").settings["candidates"] == "all"
    made = Settings.make(**options)  # a Settings object says its own: the table's "all"
    assert explainer.explain(TINY_SENTENCE, settings=made).settings["candidates"] == "all"


def test_explain_many_checks_its_settings_once_before_any_input(tiny):
    explainer = Explainer(*tiny)
    taken = []

    def texts():
        for text in (TINY_SENTENCE, "a good film."):
            taken.append(text)
            yield text

    with pytest.raises(ValueError, match="steps must be at least 1"):
        next(explainer.explain_many(texts(), steps=0, progress=False, return_errors=True))  # not yielded per input
    assert taken == []


def test_explain_states_no_default_of_a_setting():
    """Every default is the table's (udig.settings.PARAMETERS): explain's signature names no setting."""
    named = set(inspect.signature(Explainer.explain).parameters)
    assert not named & set(PARAMETERS) and "options" in named


# -- sizing a request -------------------------------------------------------------------------------------


def test_size_counts_tokens_words_points_and_passes_without_the_model(tiny):
    """Expected sizes from the tokenizer and the papers' counts: IG's line has steps + 1 points and steps
    left-Riemann evaluations; SIG integrates one such line per word; the random baseline has no path."""
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer)
    encoded = tokenizer(TINY_SENTENCE, return_special_tokens_mask=True)
    tokens, words = len(encoded["input_ids"]), len(encoded["input_ids"]) - sum(encoded["special_tokens_mask"])
    with _forward_batches(model) as passes:
        ig = explainer.size(TINY_SENTENCE, method="ig", steps=7)
        sig = explainer.size(TINY_SENTENCE, method="sig", steps=7)
        random = explainer.size(TINY_SENTENCE, method="random")
        cut = Explainer(model, tokenizer, max_length=6).size(TINY_SENTENCE, method="ig", steps=7)
    assert passes == []  # the tokenizer alone
    assert (ig.tokens, ig.words, ig.points, ig.passes) == (tokens, words, 8, 7)
    assert (sig.tokens, sig.words, sig.points, sig.passes) == (tokens, words, 8 * words, 7 * words)
    assert (random.points, random.passes) == (0, 0)
    assert (cut.tokens, cut.words) == (6, 4)  # cut to the limit as explain cuts it
    e = explainer.explain(TINY_SENTENCE, method="sig", steps=7)
    assert e.settings["n_evaluations"] == sig.passes and e.settings["n_points"] * words == sig.points
    with pytest.raises(ValueError, match="empty"):
        explainer.size("   ", method="ig")


def test_a_question_of_invisible_characters_is_refused_like_an_empty_one(minilm_qa):
    """Zero-width characters tokenize to nothing: without this check the run explained an empty question."""
    explainer = Explainer(*minilm_qa)
    with pytest.raises(ValueError, match="the question has no word the model can read"):
        explainer.explain(question="\u200b\u200b", context="Ann wrote the film.", method="ig", steps=2)
    with pytest.raises(ValueError, match="the question has no word the model can read"):
        explainer.size(question="\u200b \u2063", context="Ann wrote the film.", method="ig", steps=2)


# -- UDIG's reference points --------------------------------------------------------------------------------


def test_udig_takes_its_candidates_near_reference_points_from_the_input_end(tiny):
    """UDIG's candidates for anchor p are the nbrs rows nearest to c_p = b + p/(m+1) (E[w] - b), p = m..1
    (../shared/METHOD.md), found here by a brute-force search over every row in float64; the anchors the
    Greedy rule picks from them are udig's. Reversing the segment (points from the baseline end, c_{m+1-p})
    picks other anchors, so this test fails on that mistake."""
    model, tokenizer = tiny
    m, k = 6, 4
    e = Explainer(model, tokenizer).explain(
        TINY_SENTENCE, method="udig", strategy="greedy", steps=m, nbrs=k, candidates="all"
    )
    table = model.get_input_embeddings().weight.detach()
    moving = ~torch.tensor(e.special_mask)
    words = torch.tensor(e.input_ids)[moving]
    references = torch.full_like(words, tokenizer.mask_token_id)

    def nearest(alphas: torch.Tensor) -> torch.Tensor:
        start, ends = table[tokenizer.mask_token_id].double(), table[words].double()
        points = start + alphas[None, :, None] * (ends[:, None, :] - start)  # (T, m, d)
        distances = torch.cdist(points, table.double())  # (T, m, V)
        ranked = distances.sort(-1)
        assert bool((ranked.values[..., k] - ranked.values[..., k - 1] > 1e-6).all())  # the k nearest are one set
        return ranked.indices[..., :k]

    alphas = torch.arange(m, 0, -1, dtype=torch.float64) / (m + 1)  # p/(m+1), p = m..1
    expected = paths.anchor_chains(words, references, table, nearest(alphas), "greedy", m)
    assert [chain for chain in e.anchors if chain is not None] == expected.tolist()
    reversed_segment = paths.anchor_chains(words, references, table, nearest(1 - alphas), "greedy", m)
    assert not torch.equal(reversed_segment, expected)  # the mistake the test guards against changes the anchors
