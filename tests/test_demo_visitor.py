"""Holes a visitor's probe found in the demo (issue 32): a token limit above the model's own, uploads of any size,
labels that said less than the truth. On a tiny model, so they run in seconds; the page itself is in
test_browser.py, the colours in test_render.py.
"""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import DEMO_MODEL, make_demo, tiny_bert

from udig import Explainer
from udig.app import UNTRAINED_QA_MODEL, Limits
from udig.app.content import QA_EXAMPLE, RULE_LABELS
from udig.integrate import RULES
from udig.methods import PATH_METHODS, REGISTRY
from udig.settings import Settings

LONG = " ".join(["a good film"] * 40)  # 120 words: more than the tiny model's 40 positions
FIELDS = dict(method="ig", strategy="maxcount", steps=4, factor=0, nbrs=10, baseline="paper default")


@pytest.fixture(scope="module")
def demo(tiny, tiny_vocab_file):
    """The demo over the tiny models, with a token limit far above their 40 positions (UDIG_MAX_TOKENS=512)."""
    return make_demo(tiny, tiny_bert(tiny_vocab_file, "qa"), limits=Limits(max_chars=5000, max_tokens=512))


def test_a_token_limit_above_the_models_own_is_cut_to_the_models(tiny):
    model, tokenizer = tiny
    explanation = Explainer(model, tokenizer, max_length=512).explain(LONG, method="ig", steps=4)
    assert len(explanation.tokens) == model.config.max_position_embeddings == 40 and explanation.truncated


def test_the_demo_cuts_long_inputs_when_its_token_limit_exceeds_the_models(demo):
    *_, tokens, _, runtime = demo.explain(text=LONG, model=DEMO_MODEL, **FIELDS)  # was: a tensor-size error
    assert len(tokens) == 40 and "truncated to 40 tokens" in runtime


def test_the_upload_route_takes_small_files_only(served):
    url = served[0]
    small = httpx.post(url + "gradio_api/upload", files={"files": ("small.txt", b"x" * 1000)}, timeout=60)
    large = httpx.post(url + "gradio_api/upload", files={"files": ("large.txt", b"x" * 2_000_000)}, timeout=60)
    assert small.status_code == 200 and large.status_code == 413  # was 200: any size, though the page uploads nothing


def _takes(method: str, rule: str) -> bool:
    try:
        Settings.make(method=method, rule=rule)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_label_names_exactly_the_methods_that_take_it(rule):
    """A rule every path method takes names none; any other names each method that takes it (the settings check
    decides, not the label's own source)."""
    titles = {REGISTRY[m].title for m in PATH_METHODS}
    takers = {REGISTRY[m].title for m in PATH_METHODS if _takes(m, rule)}
    named = {title for title in titles if re.search(rf"\b{title}\b", RULE_LABELS[rule])}
    assert named == (set() if takers == titles else takers), RULE_LABELS[rule]


def test_qa_score_meanings_say_what_qa_does(demo):
    """QA replaces the top tokens by [MASK] (positions stay comparable): no [PAD], nothing deleted."""
    question, context = QA_EXAMPLE
    *_, scores, _ = demo.explain_qa(question=question, context=context, model=UNTRAINED_QA_MODEL, **FIELDS)
    meanings = dict(zip(scores["score"], scores["meaning"]))
    for name in ("Log-odds", "Comprehensiveness", "Sufficiency"):
        assert "[MASK]" in meanings[name], meanings[name]
    assert not any("[PAD]" in meaning or "delete" in meaning for meaning in meanings.values())
