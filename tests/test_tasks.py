"""Task adapters and the method registry: what differs between tasks and methods lives in one class or entry."""

from __future__ import annotations

import math

import pytest
import torch

from udig import Explainer
from udig.methods import METHODS, PATH_METHODS, REGISTRY, get_method
from udig.metrics import faithfulness
from udig.settings import PARAMETERS, Settings
from udig.tasks import TASKS, Classification, QuestionAnswering, get_task, task_of


def test_adapters_are_found_by_head_and_by_name(tiny, minilm_qa):
    assert task_of(tiny[0]) is TASKS["classification"] and task_of(minilm_qa[0]) is TASKS["qa"]
    assert get_task("qa") is TASKS["qa"]
    with pytest.raises(ValueError, match="unknown task 'ner'"):
        get_task("ner")


def test_inputs_are_checked_by_the_adapter():
    classification, qa = TASKS["classification"], TASKS["qa"]
    assert classification.check_inputs({"text": "fine", "question": None}) == {"text": "fine"}
    with pytest.raises(ValueError, match="classification model: pass text=..., not question/context"):
        classification.check_inputs({"text": None, "question": "q", "context": "c"})
    with pytest.raises(ValueError, match="question-answering model: pass question=... and context=..., not text"):
        qa.check_inputs({"text": "t", "question": "q", "context": "c"})
    with pytest.raises(TypeError, match="context must be a string"):
        qa.check_inputs({"question": "q", "context": 3})
    with pytest.raises(ValueError, match="question is empty"):
        qa.check_inputs({"question": " ", "context": "c"})


def test_classification_perturbations_by_hand(tiny):
    ids = torch.tensor([2, 10, 11, 12, 3])  # [CLS] w1 w2 w3 [SEP]
    chosen = torch.tensor([False, True, False, True, False])
    types = torch.zeros(5, dtype=torch.long)
    variants = TASKS["classification"].perturbations(ids, chosen, types, tiny[1])
    pad = tiny[1].pad_token_id
    assert variants["original"][0].tolist() == [2, 10, 11, 12, 3]
    assert variants["log_odds"][0].tolist() == [2, pad, 11, pad, 3]  # replaced in place
    assert variants["comprehensiveness"][0].tolist() == [2, 11, 3]  # deleted, re-packed
    assert variants["sufficiency"][0].tolist() == [10, 12]  # only the top-k, no [CLS]/[SEP] added back
    assert variants["sufficiency"][1].tolist() == [0, 0]
    assert TASKS["classification"].perturbations(ids, chosen, None, tiny[1])["comprehensiveness"][1] is None


def test_qa_perturbations_keep_positions(minilm_qa):
    tokenizer = minilm_qa[1]
    ids = torch.tensor([101, 2040, 102, 3000, 3001, 102])
    chosen = torch.tensor([False, False, False, True, False, False])
    variants = TASKS["qa"].perturbations(ids, chosen, None, tokenizer)
    mask = tokenizer.mask_token_id
    assert variants["log_odds"] is variants["comprehensiveness"]  # one masked input serves both
    assert variants["log_odds"][0].tolist() == [101, 2040, 102, mask, 3001, 102]
    assert variants["sufficiency"][0].tolist() == [mask, mask, mask, 3000, mask, mask]


def test_qa_token_types_start_at_the_context(minilm_qa):
    model, tokenizer = minilm_qa
    explanation = Explainer(model, tokenizer).explain(question="who?", context="Ann did.", method="ig", steps=2).start
    expected = tokenizer("who?", "Ann did.")["token_type_ids"]
    assert TASKS["qa"].token_types(explanation).tolist() == expected


@pytest.mark.parametrize("method", METHODS)
def test_text_without_readable_tokens_is_one_clear_error_for_every_method(tiny, method):
    model, tokenizer = tiny
    assert tokenizer("\u200b\u200c\x01")["input_ids"] == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    with pytest.raises(ValueError, match="no word the model can read"):
        Explainer(model, tokenizer).explain("\u200b\u200c\x01", method=method, steps=3)


def test_qa_context_without_readable_tokens_is_named(minilm_qa):
    with pytest.raises(ValueError, match="the context has no word the model can read"):
        Explainer(*minilm_qa).explain(question="who?", context="\u200b\ufe0f", method="ig", steps=2)


def test_a_question_that_fills_the_input_is_refused_by_name(minilm_qa):
    """A question leaving no token for the context is refused with its length (the tokenizer itself raises a
    bare Exception there); one token shorter, the context is cut to the one token left and the question kept."""
    tokenizer = minilm_qa[1]
    limit = 16
    too_long = " ".join(["a"] * (limit - 3))  # 13 tokens + [CLS] [SEP] [SEP] = the whole input
    with pytest.raises(ValueError, match="question is 13 tokens long .* shorten it"):
        TASKS["qa"].encode(tokenizer, {"question": too_long, "context": "Bob won the race."}, limit)
    encoding = TASKS["qa"].encode(tokenizer, {"question": too_long[2:], "context": "Bob won the race."}, limit)
    assert len(encoding.input_ids) == limit and encoding.truncated
    assert (
        int(encoding.context_mask.sum()) == 1 and tokenizer.decode(encoding.input_ids[encoding.context_mask]) == "bob"
    )


# -- the registry's contract: every method, one suite -------------------------------------------------------


def test_unknown_methods_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown method 'shap'; choose one of ig, dig, udig, sig, random, grad-input"):
        get_method("shap")
    assert set(PATH_METHODS) == {"ig", "dig", "udig", "sig"} and set(METHODS) == set(REGISTRY)


PAPER_BASELINES = {"ig": "[PAD]", "dig": "[PAD]", "udig": "[MASK]", "sig": "[MASK]"}  # METHOD.md: "Baseline x'"


def _independent_f(model, tokenizer, text: str, target: int, method: str) -> tuple[float, float]:
    """F(x) and F(x') by running the model on token ids, not through udig: the target class's logit on the input,
    and on the paper's baseline (every word the reference token, special tokens kept). SIG's paths move one word
    at a time, so its F(x') is the one that makes Δ the sum of the words' own errors:
    F(x) - sum_i (F(x) - F(x with word i replaced))."""
    encoding = tokenizer(text, return_special_tokens_mask=True)
    ids, special = encoding["input_ids"], encoding["special_tokens_mask"]
    reference = tokenizer.convert_tokens_to_ids(PAPER_BASELINES[method])

    def logit(rows: list[list[int]]) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=torch.tensor(rows)).logits[:, target].double()

    f_input = float(logit([ids])[0])
    if method != "sig":
        return f_input, float(logit([[i if s else reference for i, s in zip(ids, special)]])[0])
    one_word_each = [ids[:i] + [reference] + ids[i + 1 :] for i, s in enumerate(special) if not s]
    return f_input, f_input - float((f_input - logit(one_word_each)).sum())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_the_contract(tiny, method):
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer, graph_k=8)
    text = "a gorgeous, moving film"
    first = explainer.explain(text, method=method, steps=4, nbrs=4)
    again = Explainer(model, tokenizer, graph_k=8, internal_batch_size=1).explain(text, method=method, steps=4, nbrs=4)
    assert len(first.attributions) == len(first.tokens) == len(first.input_ids)
    assert all(a == 0.0 for a, special in zip(first.attributions, first.special_mask) if special)
    assert first.attributions == pytest.approx(again.attributions, rel=1e-5, abs=1e-7)  # chunking changes nothing
    assert first.settings["method"] == method and first.method == method
    if method in PATH_METHODS:
        rerun = Settings.make(
            {k: v for k, v in first.settings.items() if k in PARAMETERS}
        )  # settings are enough to rerun
        assert first.path.shape[0] == first.settings["n_points"] == get_method(method).n_points(rerun)
        f_input, f_baseline = _independent_f(model, tokenizer, text, first.target, method)
        assert first.f_input == pytest.approx(f_input, abs=1e-5)
        assert first.f_baseline == pytest.approx(f_baseline, abs=1e-5)
        assert first.delta == pytest.approx(sum(first.attributions) - (f_input - f_baseline), abs=1e-5)
    else:
        assert first.path is None and math.isnan(first.delta) and first.baseline_token == ""
    assert faithfulness(first, model, tokenizer).k == 1  # every method's output is scored the same way


@pytest.mark.parametrize("method", METHODS)
def test_every_method_explains_qa(tiny_vocab_file, method):
    from conftest import tiny_bert

    model, tokenizer = tiny_bert(tiny_vocab_file, task="qa")
    result = Explainer(model, tokenizer, graph_k=8).explain(
        question="what film?", context="a good film", method=method, steps=3, nbrs=4
    )
    assert set(result.parts) == {"start", "end"}
    assert result.answer == result.context[result.answer_span[0] : result.answer_span[1]]
    assert result.start.target <= result.end.target


# -- a new task is one class ---------------------------------------------------------------------------------


class SentencePairClassification(Classification):
    """Two sentences, one label (NLI, paraphrase): pair encoding and token types from QA, the rest classification."""

    name = "pair-classification"
    description = "sentence-pair classification"
    fields = ("question", "context")  # the first and second sentence
    encode = QuestionAnswering.encode
    token_types = QuestionAnswering.token_types


def test_a_new_task_is_one_class(tiny, monkeypatch):
    model, tokenizer = tiny
    pair = SentencePairClassification()
    monkeypatch.setitem(TASKS, pair.name, pair)
    explainer = Explainer(model, tokenizer)
    explainer.task = pair
    explanation = explainer.explain(question="the film is good", context="it was fine", method="ig", steps=4)
    assert explanation.task == "pair-classification" and explanation.output == "logits"
    assert explanation.text == "the film is good\nit was fine"
    assert pair.token_types(explanation).tolist() == tokenizer("the film is good", "it was fine")["token_type_ids"]
    assert faithfulness(explanation, model, tokenizer).length == len(explanation.tokens)


@pytest.mark.parametrize("method", PATH_METHODS)
def test_every_rule_integrates_the_same_path(tiny, method):
    """A rule changes where gradients are taken, never the path: the points, and so F(x) - F(x'), stay."""
    model, tokenizer = tiny
    explainer = Explainer(model, tokenizer, graph_k=8)
    left = explainer.explain("a gorgeous, moving film", method=method, steps=5, nbrs=4)
    for rule in ("riemann_right", "riemann_middle", "riemann_trapezoid"):
        other = explainer.explain("a gorgeous, moving film", method=method, steps=5, nbrs=4, rule=rule)
        assert torch.equal(other.path, left.path) and other.settings["rule"] == rule
        assert other.f_baseline == pytest.approx(left.f_baseline, abs=1e-6) and other.f_input == left.f_input
        assert other.attributions != left.attributions
        per_path = len(left.path) - (0 if rule == "riemann_trapezoid" else 1)
        words = (len(left.tokens) - sum(left.special_mask)) if left.settings["sequential"] else 1  # one path per word
        assert other.settings["n_evaluations"] == per_path * words
    if method in ("dig", "udig"):  # word paths of segments; IG's and SIG's straight lines take Gauss-Legendre too
        with pytest.raises(ValueError, match="takes rule riemann_left, .*not 'gausslegendre'"):
            explainer.explain("a film", method=method, rule="gausslegendre")


@pytest.mark.parametrize(
    "method",
    [  # SIG refuses; DIG builds MiniLM's KNN graph first
        pytest.param(name, marks=pytest.mark.slow) if name == "dig" else name
        for name in PATH_METHODS
        if not REGISTRY[name].fixed.get("sequential")
    ],
)
def test_a_completeness_target_refines_until_met_or_capped(minilm, method):
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer, graph_k=50)
    text = "a gorgeous, witty film"
    plain = explainer.explain(text, method=method, steps=6, nbrs=8)
    assert plain.delta_target_met is None and plain.relative_delta == pytest.approx(
        abs(plain.delta) / abs(plain.f_input - plain.f_baseline)
    )
    # the trapezoid converges fast enough for a test (the left sum needs ~1,000 points on this small F(x) - F(x'))
    target = explainer.explain(
        text, method=method, steps=6, nbrs=8, rule="riemann_trapezoid", max_delta=0.05, max_points=600
    )
    assert target.delta_target_met is True and target.relative_delta <= 0.05
    assert target.settings["max_delta"] == 0.05 and target.settings["n_points"] == len(target.path) >= len(plain.path)
    capped = explainer.explain(text, method=method, steps=6, nbrs=8, max_delta=1e-7, max_points=len(plain.path) + 3)
    assert capped.delta_target_met is False and len(capped.path) == len(plain.path) + 3
    assert capped.settings["n_evaluations"] == len(capped.path) - 1  # the left sum: every point but the input


def test_a_target_is_refused_where_it_cannot_apply(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="max_delta must be more than 0"):
        Explainer(model, tokenizer).explain("a film", max_delta=0)
    assert Explainer(model, tokenizer).explain("a film", method="random", max_delta=0.05).delta_target_met is None


def test_prepare_builds_what_a_method_shares_ahead_of_time(tiny_vocab_file):
    from conftest import tiny_bert

    model, tokenizer = tiny_bert(tiny_vocab_file, seed=11)  # its own vocabulary index: no graph from other tests
    explainer = Explainer(model, tokenizer, graph_k=8)
    vocab = explainer.vocab_
    for method in ("ig", "udig", "random"):
        explainer.prepare(Settings.make(method=method, candidates="words"))
    assert not vocab.graphs.built()  # nothing to build for them
    explainer.prepare(Settings.make(method="dig", candidates="words"))
    assert vocab.graphs.built() == [(8, "words")]  # DIG's graph, for its candidate set and k
