"""Every common tokenizer family, for classification and QA: tiny random models over tokenizers trained here.

Each family's tokenizer class builds its own pipeline (normaliser, pre-tokenizer, decoder, special-token
template); ``train_new_from_iterator`` trains its model (WordPiece, byte-level BPE or Unigram, with the
``tokenizers`` library) on Rotten Tomatoes sentences, and the tokenizer is saved and read back as a Hub
folder would be. The models are 2-layer, 32-wide, seeded, with their output layer scaled so that F moves
visibly along a path. What each family must get right: the word-start marks of real-word candidates
(``##`` continuations, ``Ġ`` and ``▁`` word starts), its own MASK and PAD tokens as baselines, offsets that
group pieces into the words as typed, and the model's forward on word embeddings.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch

from udig import Explainer
from udig.metrics import faithfulness
from udig.render.words import words as typed_words
from udig.tasks import max_tokens, task_of
from udig.vocab import vocab_index_for
from udig.vocab.words import frequent_words, real_words, vocabulary_of

VOCAB_SIZE = 1000  # small enough to train in a second, large enough for ~300-700 real words
TRAINING_SENTENCES = 2000  # the first sentences of udig's Rotten Tomatoes training split
SCALE = 40.0  # the output layer's weights are scaled so that F(x) - F(x') is far above float32 noise
EXTRA_ROWS = 3  # embedding rows past the tokenizer's vocabulary, as in padded checkpoints (DeBERTa-v3, ...)
COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@dataclass(frozen=True)
class Family:
    """One tokenizer family: its transformers class prefix, how its vocabulary marks word starts, its tokens."""

    prefix: str  # Bert, Roberta, ...: <prefix>Tokenizer, <prefix>Config, <prefix>ForSequenceClassification
    marks: str  # "##" (a continuation is marked), "Ġ" or "▁" (a word start is marked)
    mask: str
    pad: str
    cls: str
    sep: str
    config: dict = field(default_factory=dict)

    def word_start(self, token: str) -> bool:
        return not token.startswith("##") if self.marks == "##" else token.startswith(self.marks)

    def bare(self, token: str) -> str:
        return token.removeprefix("##") if self.marks == "##" else token.removeprefix(self.marks)


ABSOLUTE = dict(COMMON, max_position_embeddings=64)
ROBERTA_LIKE = dict(COMMON, type_vocab_size=1, max_position_embeddings=66)  # positions start after the pad index
LIMITS = {"deberta-v2": 512}  # the longest input each model takes: 64 (RoBERTa's 66 less 2), DeBERTa's default
FAMILIES = {
    "bert": Family("Bert", "##", "[MASK]", "[PAD]", "[CLS]", "[SEP]", ABSOLUTE),
    "distilbert": Family(
        "DistilBert",
        "##",
        "[MASK]",
        "[PAD]",
        "[CLS]",
        "[SEP]",
        dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64),
    ),
    "electra": Family("Electra", "##", "[MASK]", "[PAD]", "[CLS]", "[SEP]", dict(ABSOLUTE, embedding_size=16)),
    "roberta": Family("Roberta", "Ġ", "<mask>", "<pad>", "<s>", "</s>", ROBERTA_LIKE),
    "albert": Family("Albert", "▁", "[MASK]", "<pad>", "[CLS]", "[SEP]", dict(ABSOLUTE, embedding_size=16)),
    "deberta-v2": Family(
        "DebertaV2",
        "▁",
        "[MASK]",
        "[PAD]",
        "[CLS]",
        "[SEP]",
        dict(  # DeBERTa-v3's layout: relative attention only, no absolute positions, no token types
            COMMON,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
        ),
    ),
    "xlm-roberta": Family("XLMRoberta", "▁", "<mask>", "<pad>", "<s>", "</s>", ROBERTA_LIKE),
}
TASKS = ("classification", "qa")
HEADS = {"classification": "ForSequenceClassification", "qa": "ForQuestionAnswering"}
CASES = [(name, task) for name in FAMILIES for task in TASKS]
INPUTS = {
    "classification": {"text": "a gorgeous, moving film"},
    "qa": {"question": "what film?", "context": "a good film about a family"},
}
# punctuation, a contraction, two spaces, accents, a hyphenated word, an emoji, a long word split in pieces
TYPED = "Don't  stop: it's a café-style, naïve film 😀 ... unbelievably good!"
TYPED_WORDS = re.compile(r"[\w'’\-]+")  # udig.render.words joins pieces across these characters


@pytest.fixture(scope="session")
def families(tmp_path_factory):
    """``families.tokenizer(name)`` and ``families.model(name, task)``, each built once per session."""
    import transformers
    from transformers import AutoTokenizer

    from udig.data import load_split

    root = tmp_path_factory.mktemp("tokenizer-families")
    sentences = [example.text for example in load_split("train")[:TRAINING_SENTENCES]]

    @functools.cache
    def tokenizer(name: str):
        family = FAMILIES[name]
        untrained = getattr(transformers, f"{family.prefix}Tokenizer")()
        trained = untrained.train_new_from_iterator(sentences, vocab_size=VOCAB_SIZE)
        trained.save_pretrained(root / name)
        return AutoTokenizer.from_pretrained(root / name)

    @functools.cache
    def model(name: str, task: str):
        family, tok = FAMILIES[name], tokenizer(name)
        torch.manual_seed(0)
        ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
        config = getattr(transformers, f"{family.prefix}Config")(
            vocab_size=len(tok) + EXTRA_ROWS, num_labels=2, **ids, **family.config
        )
        config.id2label, config.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
        built = getattr(transformers, f"{family.prefix}{HEADS[task]}")(config).eval()
        head = built.qa_outputs if task == "qa" else built.classifier
        with torch.no_grad():
            getattr(head, "out_proj", head).weight.mul_(SCALE)  # RoBERTa's and ELECTRA's heads end in out_proj
        return built, tok

    return SimpleNamespace(tokenizer=tokenizer, model=model)


def _explain(model, tokenizer, task: str, **options):
    return Explainer(model, tokenizer, graph_k=8).explain(**INPUTS[task], **options)


def _parts(result) -> list:
    """The explanations of one result: one for classification, start and end for QA."""
    return [result.start, result.end] if hasattr(result, "start") else [result]


# -- the fixture is each family as its checkpoints are ---------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_each_tokenizer_is_its_familys(families, name):
    family, tokenizer = FAMILIES[name], families.tokenizer(name)
    assert (tokenizer.mask_token, tokenizer.pad_token) == (family.mask, family.pad)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("what film?", "a film")["input_ids"])
    assert tokens[0] == family.cls and tokens[-1] == family.sep
    assert tokens.count(family.sep) == (3 if family.cls == "<s>" else 2)  # RoBERTa's pairs: </s></s> between
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(" unbelievably", add_special_tokens=False)["input_ids"])
    assert len(pieces) > 1 and family.word_start(pieces[0]) and not any(family.word_start(p) for p in pieces[1:])


@pytest.mark.parametrize("name,task", CASES)
def test_the_model_reads_word_embeddings_as_it_reads_ids(families, name, task):
    """udig passes word embeddings as ``inputs_embeds``: position and type embeddings must be added once."""
    model, tokenizer = families.model(name, task)
    encoded = tokenizer(*INPUTS[task].values(), return_tensors="pt")
    words = model.get_input_embeddings()(encoded["input_ids"])
    extras = {key: value for key, value in encoded.items() if key != "input_ids"}
    with torch.no_grad():
        by_ids, by_embeddings = model(**encoded), model(inputs_embeds=words, **extras)
    for key in ("start_logits", "end_logits") if task == "qa" else ("logits",):
        assert torch.allclose(by_ids[key], by_embeddings[key], atol=1e-5)


# -- real-word candidates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_real_words_are_whole_words_of_each_vocabulary(families, name):
    """Every real word is a word-start piece (no ``##`` continuation; ``Ġ``/``▁`` marked), letters only, not
    special; common words are in; continuation pieces that spell a frequent English word are out."""
    family = FAMILIES[name]
    model, tokenizer = families.model(name, "classification")
    mask = vocab_index_for(model, tokenizer).word_mask_
    tokens, surfaces = vocabulary_of(tokenizer, len(mask))
    assert tokens[-EXTRA_ROWS:] == [""] * EXTRA_ROWS and not mask[-EXTRA_ROWS:].any()  # rows past the vocabulary
    chosen = mask.nonzero().squeeze(1).tolist()
    assert 200 < len(chosen) < VOCAB_SIZE - 200  # words, not every piece
    for i in chosen:
        assert family.word_start(tokens[i]) and surfaces[i] == family.bare(tokens[i]), (tokens[i], surfaces[i])
        assert surfaces[i].isalpha() and i not in tokenizer.all_special_ids, tokens[i]
    vocab = tokenizer.get_vocab()
    for word in ("film", "movie", "good", "story", "the"):
        token = word if family.marks == "##" else family.marks + word
        assert mask[vocab[token]], token
    continuations = [i for i, token in enumerate(tokens) if token and not family.word_start(token)]
    spelled = [tokens[i] for i, known in zip(continuations, _frequent(tokens, continuations, family)) if known]
    assert len(spelled) >= 5, "no continuation piece spells an English word: the test would prove nothing"
    assert not any(mask[vocab[token]] for token in spelled), [t for t in spelled if mask[vocab[t]]]
    undecodable = [i for i, surface in enumerate(surfaces) if "\ufffd" in surface]  # byte pieces of a character
    assert bool(undecodable) == (family.marks == "Ġ") and not mask[undecodable].any()
    without_frequency = real_words(
        model.get_input_embeddings().weight, tokens, surfaces, tokenizer.all_special_ids, None, 0
    )
    assert all(family.word_start(tokens[i]) for i in without_frequency.nonzero().squeeze(1).tolist())


def _frequent(tokens: list[str], ids: list[int], family: Family) -> list[bool]:
    bare = [family.bare(tokens[i]) for i in ids]
    letters = [text.isalpha() and len(text) > 1 for text in bare]
    return [ok and known for ok, known in zip(letters, frequent_words(bare, "en").tolist())]


# -- every method, both tasks ------------------------------------------------------------------------------------

RUNS = [
    ("ig", None),
    ("dig", "greedy"),
    ("dig", "maxcount"),
    ("udig", "greedy"),
    ("udig", "maxcount"),
    ("sig", None),
]
PAPER_BASELINE = {"ig": "pad", "dig": "pad", "udig": "mask", "sig": "mask"}  # METHOD.md: "Baseline x'"


def _f_at(model, tokenizer, task: str, part, word_ids: list[int]) -> float:
    """The target's value with the word-embedding layer's output replaced by the rows of ``word_ids`` (as
    captum's layer attribution does): positions and token types come from the input's own ids."""
    encoded = tokenizer(*INPUTS[task].values(), return_tensors="pt")
    layer = model.get_input_embeddings()
    handle = layer.register_forward_hook(lambda module, args, out: module.weight[torch.tensor([word_ids])])
    try:
        with torch.no_grad():
            output = model(**encoded)
    finally:
        handle.remove()
    return float(getattr(output, part.output)[0, part.target])


@pytest.mark.parametrize("name,task", CASES)
def test_every_method_runs_with_the_familys_baseline(families, name, task):
    """Each path method runs; F(x) and F(x') are the model's own on the input and on the family's MASK (UDIG,
    SIG) or PAD (IG, DIG) baseline; special tokens keep their embedding and get 0; real-word anchors are
    word starts of the vocabulary."""
    family = FAMILIES[name]
    model, tokenizer = families.model(name, task)
    words = vocab_index_for(model, tokenizer).word_mask_
    for method, strategy in RUNS:
        options = dict(method=method, steps=4, nbrs=4, candidates="words")
        result = _explain(model, tokenizer, task, **options, **({"strategy": strategy} if strategy else {}))
        for part in _parts(result):
            reference = getattr(family, PAPER_BASELINE[method])
            if name == "deberta-v2":  # its zero PAD row is no baseline: MASK instead (the test below)
                reference = family.mask
            assert part.baseline_token == reference, (method, part.baseline_token)
            special = torch.tensor(part.special_mask)
            assert all(a == 0.0 for a, s in zip(part.attributions, part.special_mask) if s)
            assert {part.tokens[0], part.tokens[-1]} <= {family.cls, family.sep} and special[[0, -1]].all()
            assert part.f_input == pytest.approx(_f_at(model, tokenizer, task, part, part.input_ids), abs=1e-4)
            if method != "sig":  # SIG's F(x') sums one path per word (tests/test_tasks.py)
                baseline_ids = [
                    i if s else tokenizer.convert_tokens_to_ids(reference)
                    for i, s in zip(part.input_ids, part.special_mask)
                ]
                assert part.f_baseline == pytest.approx(_f_at(model, tokenizer, task, part, baseline_ids), abs=1e-4)
            assert part.delta == pytest.approx(
                sum(part.attributions) - (part.f_input - part.f_baseline), rel=1e-6, abs=1e-4
            )
            if method in ("dig", "udig"):
                anchors = {a for row in part.anchors if row for a in row[1:]} - {
                    tokenizer.convert_tokens_to_ids(reference)
                }
                assert anchors and all(words[a] for a in anchors)
                assert all(family.word_start(token) for token in tokenizer.convert_ids_to_tokens(sorted(anchors)))
        if task == "qa":
            assert result.answer == result.context[result.answer_span[0] : result.answer_span[1]]
            assert result.answer and result.answer == result.answer.strip()


@pytest.mark.slow
@pytest.mark.parametrize("name,task", CASES)
def test_the_published_settings_run_on_every_family(families, name, task):
    """METHOD.md's published runs (m = 30, k = 50 neighbours, factor 1; DIG's graph of 500 over every row) on
    every family: each token's path has 2^factor (m + 1) + 1 points and ends at the input."""
    model, tokenizer = families.model(name, task)
    explainer = Explainer(model, tokenizer, graph_k=500)
    for method, strategy in (("udig", "maxcount"), ("udig", "greedy"), ("dig", "greedy")):
        result = explainer.explain(**INPUTS[task], method=method, strategy=strategy, factor=1, candidates="all")
        for part in _parts(result):
            assert part.path.shape[0] == 2 * 31 + 1 and part.settings["nbrs"] == 50
            embeddings = model.get_input_embeddings().weight.detach()
            assert torch.equal(part.path[-1], embeddings[torch.tensor(part.input_ids)])
            assert all(math.isfinite(a) for a in part.attributions) and math.isfinite(part.delta)


@pytest.mark.parametrize("name,task", CASES)
def test_ig_equals_captum(families, name, task):
    """IG is captum's LayerIntegratedGradients on the word-embedding layer: same PAD baseline (special tokens
    kept), same number of left-Riemann steps. Both sum the same gradients at the same points in float32; only
    the batching differs, hence the 1e-4 relative tolerance (tests/test_explainer.py uses the same)."""
    from captum.attr import LayerIntegratedGradients

    model, tokenizer = families.model(name, task)
    result = _explain(model, tokenizer, task, method="ig", steps=16)
    encoded = tokenizer(*INPUTS[task].values(), return_tensors="pt")
    ids = encoded["input_ids"]
    extras = {key: value for key, value in encoded.items() if key != "input_ids"}
    for part in _parts(result):
        assert ids[0].tolist() == part.input_ids
        baseline_id = tokenizer.convert_tokens_to_ids(part.baseline_token)  # PAD; MASK where PAD's row is singular
        reference = torch.where(torch.tensor([part.special_mask]), ids, baseline_id)

        def forward(input_ids, part=part):
            return getattr(model(input_ids=input_ids, **extras), part.output)[:, part.target]

        lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
        expected = lig.attribute(ids, baselines=reference, n_steps=16, method="riemann_left").sum(-1)[0]
        ours = torch.tensor(part.attributions)
        assert torch.linalg.norm(ours - expected) / torch.linalg.norm(expected) < 1e-4


@pytest.mark.parametrize("name,task", CASES)
def test_completeness_holds_where_the_method_promises_it(families, name, task):
    """IG, DIG and UDIG integrate a path from x' to x: refined until it is exact enough, Σ a = F(x) - F(x')
    to 5 % (of 1e-3 where F changes by less: the target's own floor). SIG moves one word at a time and takes no
    completeness target."""
    model, tokenizer = families.model(name, task)
    for method in ("ig", "dig", "udig"):
        result = _explain(
            model, tokenizer, task, method=method, steps=4, nbrs=4, rule="riemann_trapezoid", max_delta=0.05
        )
        for part in _parts(result):
            change = abs(part.f_input - part.f_baseline)
            assert part.delta_target_met is True and abs(part.delta) <= 0.05 * max(change, 1e-3), (method, part.delta)


@pytest.mark.parametrize("name,task", CASES)
def test_the_pad_baseline_is_usable_at_the_default_steps(families, name, task):
    """IG from the family's PAD at 30 steps: Σ a within F(x) - F(x') of the change itself (every family but one
    is within 20 % here; the tolerance only separates usable from broken)."""
    model, tokenizer = families.model(name, task)
    explanation = _explain(model, tokenizer, task, method="ig", steps=30, baseline="pad")
    for part in _parts(explanation):
        assert abs(part.delta) <= max(abs(part.f_input - part.f_baseline), 1e-3), part.relative_delta
    # DeBERTa-v3's layout normalises word embeddings alone and its PAD row is zero: LayerNorm's singular point
    # (Δ was 500x F(x) - F(x') at 30 steps), so the Explainer starts from MASK there and says so
    singular = name == "deberta-v2"
    assert any("embedding is all zeros" in w for w in _parts(explanation)[0].warnings) == singular
    assert (_parts(explanation)[0].baseline_token == FAMILIES[name].mask) == singular


@pytest.mark.parametrize("name,task", CASES)
def test_long_inputs_are_cut_to_the_models_positions(families, name, task):
    """A text longer than the position table is truncated to it (RoBERTa's positions start after its PAD index,
    so it takes 2 fewer than its table has), and explained without an index error."""
    model, tokenizer = families.model(name, task)
    limit = LIMITS.get(name, 64)
    assert max_tokens(model, tokenizer) == limit
    long_text = " ".join([TYPED] * 12)
    inputs = {"text": long_text} if task == "classification" else {"question": "what film?", "context": long_text}
    full = len(tokenizer(*inputs.values())["input_ids"])
    assert full > 64
    part = _parts(Explainer(model, tokenizer).explain(**inputs, method="ig", steps=1))[0]
    assert len(part.tokens) == min(full, limit) and part.truncated == (full > limit)
    assert part.tokens[-1] == FAMILIES[name].sep


@pytest.mark.parametrize("name,task", CASES)
def test_every_family_loads_from_a_saved_folder(families, name, task, tmp_path):
    """A checkpoint of each family, saved as the Hub holds it, loads through udig with its head and tokenizer."""
    from udig.models import load_model

    model, tokenizer = families.model(name, task)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model(str(tmp_path))
    assert type(loaded) is type(model) and task_of(loaded).name == task
    assert loaded_tokenizer.mask_token == FAMILIES[name].mask and loaded_tokenizer.is_fast
    encoded = tokenizer(*INPUTS[task].values(), return_tensors="pt")
    with torch.no_grad():
        before, after = model(**encoded), loaded(**encoded)
    output = "start_logits" if task == "qa" else "logits"
    assert torch.equal(before[output], after[output])


# -- words as typed ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,task", CASES)
def test_offsets_never_take_the_space_before_a_word(families, name, task):
    """SentencePiece-style tokenizers give ``▁word`` the space before it; a highlight or an answer must not."""
    model, tokenizer = families.model(name, task)
    text = TYPED if task == "classification" else None
    inputs = {"text": TYPED} if text else {"question": "who  stops?", "context": TYPED}
    explanation = _parts(Explainer(model, tokenizer).explain(**inputs, method="ig", steps=1))[0]
    for (start, end), special in zip(explanation.offsets, explanation.special_mask):
        piece = explanation.text[start:end]
        assert special or piece == piece.strip(), (piece, start, end)


@pytest.mark.parametrize("name", FAMILIES)
def test_highlights_group_pieces_into_the_words_as_typed(families, name):
    """Every run of word characters is one highlighted word, however the family splits it; the rest (punctuation,
    the emoji) is highlighted without the spaces around it, and nothing crosses a word's edge."""
    model, tokenizer = families.model(name, "classification")
    explanation = Explainer(model, tokenizer).explain(TYPED, method="ig", steps=1)
    shown = typed_words(explanation)
    typed = [(m.start(), m.end()) for m in TYPED_WORDS.finditer(TYPED)]
    assert [(w.start, w.end) for w in shown if TYPED_WORDS.fullmatch(w.text)] == typed
    for word in shown:
        assert word.text == TYPED[word.start : word.end] == word.text.strip()
        assert not any(
            start < word.end and word.start < end for start, end in typed if (start, end) != (word.start, word.end)
        )
    assert "😀" in [w.text for w in shown]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_piece_counts_in_the_highlighted_words(families, name):
    """A piece that covers no character (byte-level BPE's lone Ġ before a second space, DeBERTa-v2's lone ▁ before
    an emoji) still counts: its attribution goes to the next word."""
    model, tokenizer = families.model(name, "classification")
    explanation = Explainer(model, tokenizer).explain(TYPED, method="ig", steps=1)
    total = sum(a for a, special in zip(explanation.attributions, explanation.special_mask) if not special)
    assert sum(word.attribution for word in typed_words(explanation)) == pytest.approx(total, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name,task", CASES)
def test_faithfulness_perturbs_with_the_familys_tokens(families, name, task):
    """Log-odds replaces the top-k tokens in place by the family's PAD (classification) or MASK (QA, where
    positions must stay comparable), with the tokenizer's own token types."""
    family = FAMILIES[name]
    model, tokenizer = families.model(name, task)
    encoded = tokenizer(*INPUTS[task].values(), return_tensors="pt")
    extras = {key: value for key, value in encoded.items() if key != "input_ids"}
    replacement = tokenizer.convert_tokens_to_ids(family.pad if task == "classification" else family.mask)
    for part in _parts(_explain(model, tokenizer, task, method="udig", steps=4, nbrs=4)):
        scores = faithfulness(part, model, tokenizer)
        perturbed = encoded["input_ids"].clone()
        perturbed[0, list(scores.top)] = replacement
        with torch.no_grad():
            before, after = (
                getattr(model(input_ids=ids, **extras), part.output)[0] for ids in (encoded["input_ids"], perturbed)
            )
        expected = after.log_softmax(-1)[scores.label] - before.log_softmax(-1)[scores.label]
        assert scores.k >= 1 and scores.log_odds == pytest.approx(float(expected), abs=1e-4)
