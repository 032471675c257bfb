"""Faithfulness metrics and path diagnostics on hand-built cases whose answers are known in advance.

A probe model reads exactly one vocabulary word ("good"): its class-1 logit is +c when the word is present
and -c when it is absent (and its QA start logit is c on that word, 0 elsewhere). Deleting the word therefore
moves the whole probability, and keeping only the word keeps all of it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from udig import Explainer, Explanation
from udig.metrics import (
    faithfulness,
    path_quality,
    qa_faithfulness,
    top_k_count,
    top_k_positions,
    word_approximation_error,
)
from udig.vocab import VocabIndex

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
GOOD, BAD, FILM, THE = 5, 6, 7, 8
VOCAB = 9
C = 8.0  # probe logit scale


class ProbeOutput(SimpleNamespace):
    pass


class ProbeForSequenceClassification(torch.nn.Module):
    """logits = [0, C (2 * count("good") - 1)]: the prediction reads one word, ignores every other token."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 4)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(VOCAB, 4, generator=torch.Generator().manual_seed(0)))
            self.embed.weight[:, 0] = 0.0
            self.embed.weight[GOOD, 0] = 1.0  # only "good" has a first coordinate
        self.config = SimpleNamespace(
            id2label={0: "negative", 1: "positive"}, max_position_embeddings=64, model_type="probe"
        )
        self.calls = 0

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, token_type_ids=None):
        self.calls += 1
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, d)
        mask = torch.ones(x.shape[:2]) if attention_mask is None else attention_mask.float()
        count = (x[..., 0] * mask).sum(1)  # (B,)
        positive = C * (2 * count - 1)
        return ProbeOutput(logits=torch.stack([torch.zeros_like(positive), positive], dim=1))


class ProbeForQuestionAnswering(ProbeForSequenceClassification):
    """start logit = C on "good", 0 elsewhere; end logits all 0."""

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, token_type_ids=None):
        self.calls += 1
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        start = C * x[..., 0]  # (B, L)
        return ProbeOutput(start_logits=start, end_logits=torch.zeros_like(start))


PROBE_TOKENIZER = SimpleNamespace(
    pad_token_id=PAD, unk_token_id=UNK, mask_token_id=MASK, model_input_names=["input_ids", "attention_mask"]
)


def explanation(ids, attributions, target, *, task="classification", output="logits") -> Explanation:
    """An Explanation holding just what the metrics read (ids, specials, attributions, target)."""
    special = [i in (CLS, SEP) for i in ids]
    return Explanation(
        task=task,
        method="ig",
        strategy=None,
        text="",
        tokens=[str(i) for i in ids],
        input_ids=list(ids),
        offsets=[(0, 0)] * len(ids),
        special_mask=special,
        attributions=list(attributions),
        target=target,
        target_label=str(target),
        output=output,
        probs=[],
        f_input=0.0,
        f_baseline=0.0,
        delta=0.0,
        anchors=[None] * len(ids),
        anchor_tokens=[None] * len(ids),
        real_word_share=None,
        baseline_token="[PAD]",
        settings={},
        timings={},
    )


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# -- the top-k rule --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,topk,k",
    [
        (5, 20, 1),
        (4, 20, 0),
        (9, 20, 1),
        (10, 20, 2),
        (10, 25, 2),
        (8, 12.5, 1),
        (7, 12.5, 0),
        (3, 100, 3),
        (3, 0, 0),
        (0, 20, 0),
        (29, 20, 5),
        (35, 20.0, 7),
    ],
)
def test_k_is_the_floor_of_the_percentage_of_all_tokens(length, topk, k):
    assert top_k_count(length, topk) == k


@pytest.mark.parametrize("topk", [-1, 100.5, True, "20"])
def test_bad_topk_is_refused(topk):
    with pytest.raises(ValueError, match="topk"):
        top_k_count(10, topk)


def test_top_k_takes_the_largest_signed_scores_and_ties_go_first():
    scores = [0.0, 0.5, -2.0, 0.5, 0.0, 0.1]  # specials at 0 and 4
    assert top_k_positions(scores, 2) == [1, 3]
    assert top_k_positions(scores, 3) == [1, 3, 5]
    assert top_k_positions(scores, 4) == [0, 1, 3, 5]  # a special token, reached only by the rule
    assert top_k_positions(scores, 0) == []
    assert top_k_positions(scores, 6) == [0, 1, 2, 3, 4, 5]


# -- classification on the probe --------------------------------------------------------------------------


IDS = [CLS, THE, FILM, GOOD, BAD, SEP]  # L = 6, k = 1 at 20 %


def test_deleting_the_only_word_read_moves_the_whole_probability():
    model = ProbeForSequenceClassification()
    e = explanation(IDS, [0, 0.1, 0.2, 0.9, -0.3, 0], target=1)
    f = faithfulness(e, model, PROBE_TOKENIZER, topk=20)
    p = sigmoid(C)  # "good" present: logit difference +C
    assert (f.k, f.top, f.label, f.length) == (1, (3,), 1, 6)
    assert f.prob == pytest.approx(p, abs=1e-6)
    assert f.comprehensiveness == pytest.approx(p - sigmoid(-C), abs=1e-6)  # ~ the full probability
    assert f.comprehensiveness > 0.999
    assert f.sufficiency == pytest.approx(0.0, abs=1e-6)  # "good" alone keeps everything
    assert f.log_odds == pytest.approx(math.log(sigmoid(-C)) - math.log(p), abs=1e-4)  # [PAD] in place
    assert model.calls == 1, "every perturbed input of one explanation goes through one forward pass"


def test_an_explanation_that_misses_the_word_scores_badly():
    model = ProbeForSequenceClassification()
    e = explanation(IDS, [0, 0.1, 0.9, 0.2, -0.3, 0], target=1)  # ranks "film" first
    f = faithfulness(e, model, PROBE_TOKENIZER, topk=20)
    assert f.top == (2,)
    assert f.comprehensiveness == pytest.approx(0.0, abs=1e-6)
    assert f.log_odds == pytest.approx(0.0, abs=1e-6)
    assert f.sufficiency == pytest.approx(sigmoid(C) - sigmoid(-C), abs=1e-6)  # "film" alone: class flips


def test_k_zero_perturbs_nothing_and_sufficiency_is_zero():
    model = ProbeForSequenceClassification()
    e = explanation([CLS, GOOD, FILM, SEP], [0, 1.0, 0.5, 0], target=1)
    f = faithfulness(e, model, PROBE_TOKENIZER, topk=20)  # floor(4 * 0.2) = 0
    assert (f.k, f.top) == (0, ())
    assert (f.log_odds, f.comprehensiveness, f.sufficiency) == (0.0, 0.0, 0.0)


def test_k_equal_to_l_keeps_everything_for_sufficiency_and_deletes_to_chance():
    model = ProbeForSequenceClassification()
    e = explanation(IDS, [0, 0.1, 0.2, 0.9, -0.3, 0], target=1)
    f = faithfulness(e, model, PROBE_TOKENIZER, topk=100)
    assert f.k == 6 and f.top == tuple(range(6))
    assert f.sufficiency == pytest.approx(0.0, abs=1e-7)
    assert f.comprehensiveness == pytest.approx(sigmoid(C) - 0.5, abs=1e-6)  # nothing left: chance, 1/C
    assert f.log_odds == pytest.approx(math.log(sigmoid(-C)) - math.log(sigmoid(C)), abs=1e-4)


def test_special_tokens_are_not_added_back_for_sufficiency():
    """Keeping only the top-k means [CLS]/[SEP] are gone too; a probe that counts them sees it."""

    class CountsTokens(ProbeForSequenceClassification):
        def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, token_type_ids=None):
            length = attention_mask.float().sum(1)
            return ProbeOutput(logits=torch.stack([torch.zeros_like(length), length], dim=1))

    e = explanation(IDS, [0, 0.1, 0.2, 0.9, -0.3, 0], target=1)
    f = faithfulness(e, CountsTokens(), PROBE_TOKENIZER, topk=20)
    assert f.sufficiency == pytest.approx(sigmoid(6) - sigmoid(1), abs=1e-6)  # 1 token kept, not 3
    assert f.comprehensiveness == pytest.approx(sigmoid(6) - sigmoid(5), abs=1e-6)  # re-packed: 5 tokens


# -- AOPC (ERASER): the same two scores averaged over the top 1, 5, 10, 20 and 50 % ------------------------------


LONG = [CLS, *[THE, FILM] * 4, GOOD, *[BAD, THE] * 4, SEP]  # L = 19: k = 0, 0, 1, 3, 9 at 1, 5, 10, 20, 50 %


@pytest.mark.parametrize("rank,comprehensive_bins", [(1, 3), (2, 2), (4, 1), (10, 0)])
def test_aopc_counts_the_bins_whose_top_k_reaches_the_word_read(rank, comprehensive_bins):
    """ "good" ranked ``rank``-th: each bin whose k reaches it deletes the whole probability (comprehensiveness)
    and keeps it (sufficiency); a bin that misses it keeps the probability and, keeping only other words, loses it."""
    model = ProbeForSequenceClassification()
    others = [i for i, token in enumerate(LONG) if token not in (CLS, SEP, GOOD)]
    scores = [0.0] * len(LONG)
    for place, position in enumerate(others):  # the other words rank 1, 2, ... skipping "good"'s place
        scores[position] = 1.0 - 0.01 * (place + (place + 1 >= rank))
    scores[LONG.index(GOOD)] = 1.0 - 0.01 * (rank - 1)
    f = faithfulness(explanation(LONG, scores, target=1), model, PROBE_TOKENIZER)
    full = sigmoid(C) - sigmoid(-C)
    assert f.aopc_k == (0, 0, 1, 3, 9) and model.calls == 1
    assert f.aopc_comprehensiveness == pytest.approx(comprehensive_bins * full / 5, abs=1e-6)
    missed = 3 - comprehensive_bins  # bins with k > 0 that miss "good"; k = 0 scores 0 by the sufficiency rule
    assert f.aopc_sufficiency == pytest.approx(missed * full / 5, abs=1e-6)


def test_aopc_averages_each_cut_off_by_the_top_k_rule():
    """A probe whose logit is the number of tokens it reads: scores known for every k, whatever is ranked."""

    class CountsTokens(ProbeForSequenceClassification):
        def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, token_type_ids=None):
            length = attention_mask.float().sum(1)
            return ProbeOutput(logits=torch.stack([torch.zeros_like(length), length], dim=1))

    f = faithfulness(explanation(IDS, [0, 0.1, 0.2, 0.9, -0.3, 0], target=1), CountsTokens(), PROBE_TOKENIZER, topk=50)
    assert f.aopc_k == (0, 0, 0, 1, 3)  # L = 6
    s = sigmoid
    assert f.aopc_comprehensiveness == pytest.approx((3 * 0 + (s(6) - s(5)) + (s(6) - s(3))) / 5, abs=1e-6)
    assert f.aopc_sufficiency == pytest.approx((3 * 0 + (s(6) - s(1)) + (s(6) - s(3))) / 5, abs=1e-6)
    assert f.comprehensiveness == pytest.approx(s(6) - s(3), abs=1e-6)  # topk=50 changes the single cut-off only


def test_qa_aopc_masks_in_place():
    model = ProbeForQuestionAnswering()
    ids = [CLS, THE, SEP, FILM, THE, GOOD, BAD, FILM, THE, SEP]  # L = 10: k = 0, 0, 1, 2, 5
    e = explanation(ids, [0, 0.1, 0, 0.2, 0.1, 0.9, 0.4, -1, 0, 0], target=5, task="qa", output="start_logits")
    f = faithfulness(e, model, PROBE_TOKENIZER)
    p = math.exp(C) / (math.exp(C) + len(ids) - 1)
    assert f.aopc_comprehensiveness == pytest.approx(3 * (p - 1 / len(ids)) / 5, abs=1e-6)  # "good" masked in 3 bins
    assert f.aopc_sufficiency == pytest.approx(0.0, abs=1e-7)  # "good" kept in place whenever k > 0


def test_an_explanation_of_another_class_is_refused():
    e = explanation(IDS, [0, 0.1, 0.2, 0.9, -0.3, 0], target=0)
    with pytest.raises(ValueError, match="predicts class 1"):
        faithfulness(e, ProbeForSequenceClassification(), PROBE_TOKENIZER)


def test_qa_explanations_go_one_side_at_a_time():
    with pytest.raises(TypeError, match="start"):
        faithfulness(SimpleNamespace(), ProbeForSequenceClassification(), PROBE_TOKENIZER)


# -- QA on the probe: replacement by [MASK] keeps positions -----------------------------------------------


def test_qa_masks_in_place_so_the_answer_position_stays_put():
    model = ProbeForQuestionAnswering()
    ids = [CLS, THE, SEP, FILM, THE, GOOD, BAD, FILM, THE, SEP]  # L = 10, k = 2
    start = 5  # "good"
    e = explanation(ids, [0, 0.1, 0, 0.2, 0.1, 0.9, 0.4, -1, 0, 0], target=start, task="qa", output="start_logits")
    f = faithfulness(e, model, PROBE_TOKENIZER, topk=20)
    length = len(ids)
    p = math.exp(C) / (math.exp(C) + length - 1)
    assert (f.k, f.top, f.label) == (2, (5, 6), start)
    assert f.prob == pytest.approx(p, abs=1e-6)
    assert f.comprehensiveness == pytest.approx(p - 1 / length, abs=1e-6)  # "good" masked: uniform
    assert f.log_odds == pytest.approx(math.log(1 / length) - math.log(p), abs=1e-5)
    # everything but "good" and "bad" masked: "good" is still at position 5, so nothing changes.
    # Deleting instead would have moved it to position 0 and scored the wrong position.
    assert f.sufficiency == pytest.approx(0.0, abs=1e-7)


def test_qa_pairs_score_start_and_end(minilm_qa):
    model, tokenizer = minilm_qa
    e = Explainer(model, tokenizer).explain(
        question="who wrote the script?",
        context="the film was written by jane smith and shot in rome.",
        method="ig",
        steps=4,
    )
    scores = qa_faithfulness(e, model, tokenizer)
    assert scores["start"].label == e.start.target and scores["end"].label == e.end.target
    for side, f in scores.items():
        expected = _embedding_level(getattr(e, side), model, tokenizer, qa=True)
        assert f.log_odds == pytest.approx(expected["log_odds"], abs=1e-5), side
        assert f.comprehensiveness == pytest.approx(expected["comprehensiveness"], abs=1e-6), side
        assert f.sufficiency == pytest.approx(expected["sufficiency"], abs=1e-6), side


# -- token ids agree with a direct embedding-level computation on a real BERT ------------------------------


def _embedding_level(e: Explanation, model, tokenizer, qa: bool = False) -> dict[str, float]:
    """The metrics computed the long way: one unpadded inputs_embeds forward per perturbation."""
    table = model.get_input_embeddings().weight.detach()
    ids = torch.tensor(e.input_ids)
    k = math.floor(len(ids) * 20 / 100)
    top = torch.tensor(e.attributions).argsort(descending=True, stable=True)[:k]
    chosen = torch.zeros(len(ids), dtype=torch.bool)
    chosen[top] = True
    if qa:
        encoded = tokenizer(e.text[: e.segments["context"][0] - 1], e.text[e.segments["context"][0] :])
        types = torch.tensor(encoded["token_type_ids"])
        assert encoded["input_ids"] == e.input_ids

    def prob(keep: torch.Tensor, replace_with: int | None) -> torch.Tensor:
        if replace_with is None:
            embeds, kept_types = table[ids[keep]], (types[keep] if qa else None)
        else:
            embeds, kept_types = table[torch.where(keep, ids, replace_with)], (types if qa else None)
        extra = {"token_type_ids": kept_types[None]} if qa else {}
        with torch.no_grad():
            out = getattr(model(inputs_embeds=embeds[None], **extra), e.output)[0]
        return out.softmax(-1)

    everything = torch.ones(len(ids), dtype=torch.bool)
    p = prob(everything, None)
    label = e.target if qa else int(p.argmax())
    if qa:
        removed, kept, padded = prob(~chosen, tokenizer.mask_token_id), prob(chosen, tokenizer.mask_token_id), None
    else:
        removed, kept, padded = prob(~chosen, None), prob(chosen, None), prob(~chosen, tokenizer.pad_token_id)
    padded = removed if padded is None else padded
    return {
        "log_odds": float(padded[label].log() - p[label].log()),
        "comprehensiveness": float(p[label] - removed[label]),
        "sufficiency": float(p[label] - kept[label]) if k else 0.0,
    }


@pytest.mark.parametrize("method", ["ig", "udig"])
def test_metrics_on_token_ids_match_embedding_level_computation(minilm, method):
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    sentences = [
        "the film is good but the plot is dull.",
        "a very boring and sad story of a family in crisis, not funny.",
    ]
    for sentence in sentences:
        e = explainer.explain(sentence, method=method, steps=4, nbrs=10)
        f = faithfulness(e, model, tokenizer)
        expected = _embedding_level(e, model, tokenizer)
        assert f.k == math.floor(len(e.input_ids) * 0.2) > 0
        assert abs(f.comprehensiveness) > 1e-3 and abs(f.sufficiency) > 1e-3, "the model must be sensitive"
        assert f.log_odds == pytest.approx(expected["log_odds"], abs=1e-5)
        assert f.comprehensiveness == pytest.approx(expected["comprehensiveness"], abs=1e-6)
        assert f.sufficiency == pytest.approx(expected["sufficiency"], abs=1e-6)


# -- path diagnostics --------------------------------------------------------------------------------------


def toy_vocab() -> VocabIndex:
    """Rows on a line: [PAD] at 0, [CLS] at 10, words at 1, 4 and 6 (2-d, second coordinate 0)."""
    xs = [0.0, 10.0, 1.0, 4.0, 6.0]
    table = torch.tensor([[x, 0.0] for x in xs])
    return VocabIndex(table, ["[PAD]", "[CLS]", "one", "four", "six"], special_ids=[0, 1])


def test_wae_is_the_mean_distance_to_the_nearest_row_over_moving_tokens():
    vocab = toy_vocab()
    # 3 points, tokens: [CLS] (special, far from everything: ignored), word A, word B (repeats A's path)
    a = [[0.0, 0.0], [0.5, 0.0], [2.5, 0.0], [4.0, 0.0]]  # distances (all): 0, .5, 1.5, 0 ; (words): 1, .5, 1.5, 0
    cls = [[10.0, 3.0]] * 4
    path = torch.tensor([[c, p, p] for c, p in zip(cls, a)])  # (N=4, L=3, d=2)
    wae = word_approximation_error(path, [True, False, False], vocab)
    assert wae["all"] == pytest.approx((0 + 0.5 + 1.5 + 0) / 4)
    assert wae["words"] == pytest.approx((1 + 0.5 + 1.5 + 0) / 4)  # [PAD] is no real word


def test_path_quality_reports_completeness_and_share():
    vocab = toy_vocab()
    e = explanation([CLS, GOOD, SEP], [0.0, 1.5, 0.0], target=1)
    e.delta, e.f_input, e.f_baseline, e.real_word_share = -0.5, 3.0, 1.0, 0.75
    e.path = torch.zeros(2, 3, 2)
    q = path_quality(e, vocab)
    assert q.delta == 0.5 and q.relative_delta == pytest.approx(0.25) and q.real_word_share == 0.75
    assert q.wae == 0.0 and q.wae_words == pytest.approx(1.0)
    e.f_baseline = 3.0
    assert path_quality(e, None).relative_delta is None and path_quality(e, None).wae is None
    e.path, e.delta = None, float("nan")
    assert path_quality(e, vocab).delta is None


def test_wae_of_real_paths_is_zero_at_the_ends_and_larger_for_ig_than_udig(minilm):
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    text = "a gorgeous, moving film"
    ig = explainer.explain(text, method="ig", steps=10)
    udig = explainer.explain(text, method="udig", steps=10)
    vocab = explainer.vocab_
    ends = torch.stack([ig.path[0], ig.path[-1]])
    assert word_approximation_error(ends, ig.special_mask, vocab)["all"] == pytest.approx(0.0, abs=1e-3)
    ig_wae = path_quality(ig, vocab).wae
    udig_wae = path_quality(udig, vocab).wae
    assert 0 < udig_wae < ig_wae  # UDIG's anchors are words; IG's straight line is not
    inner = ig.path[:, 1:-1].reshape(-1, ig.path.shape[-1]).double()  # brute force, independent of the index
    expected = torch.cdist(inner, vocab.embeddings.double()).amin(1).mean()
    # float32 |c|^2 - 2 c.p + |p|^2 against float64 differences: the cancellation costs about 1e-4 relative
    assert ig_wae == pytest.approx(float(expected), rel=1e-3)


def test_the_wae_cache_is_exact_and_skips_paths_seen_before(minilm, monkeypatch):
    model, tokenizer = minilm
    explainer = Explainer(model, tokenizer)
    vocab = explainer.vocab_
    first = explainer.explain("a gorgeous film, a gorgeous cast", method="ig", steps=6)
    second = explainer.explain("the gorgeous film", method="ig", steps=6)
    cache: dict = {}
    # exact, not approximate: each token's distances are computed alone, whatever else is new
    assert word_approximation_error(first.path, first.special_mask, vocab, cache=cache) == word_approximation_error(
        first.path, first.special_mask, vocab
    )
    assert len(cache) == 5  # a, gorgeous, film, ",", cast: repeated words are measured once
    seen: list[int] = []
    real = vocab.nearest_distances
    monkeypatch.setattr(vocab, "nearest_distances", lambda points, *a: seen.append(len(points)) or real(points, *a))
    cached = word_approximation_error(second.path, second.special_mask, vocab, cache=cache)
    assert seen == [7]  # only "the" is new: its 7 points
    assert cached == word_approximation_error(second.path, second.special_mask, vocab)
