"""The demo: handlers as plain functions, then the launched app through gradio_client, endpoint by endpoint.

MiniLM (from its PyPI package, conftest's seeded heads) stands in for the trained default so the tests do
not depend on it; steps are small (8) to keep the module well under a minute after the DIG graph is built.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from conftest import DEMO_MODEL, DEMO_STEPS, DEMO_TEXT, INJECTION, PAYLOADS, free_port, highlighted, make_demo

from udig.app import (
    UNTRAINED_QA_MODEL,
    AppConfig,
    Demo,
    Limits,
    evaluation,
    handlers,
    links,
    memory,
    qa_notice,
    service,
    views,
    waiting,
)
from udig.app import config as app_config
from udig.app.content import QA_EXAMPLE
from udig.metrics import SCORES
from udig.version import __version__ as udig_version

ROOT = Path(__file__).resolve().parent.parent
MODEL, STEPS, TEXT = DEMO_MODEL, DEMO_STEPS, DEMO_TEXT
SETTINGS = {  # the sentiment tab's settings, by name; the API takes their values in this order
    "method": "udig",
    "strategy": "maxcount",
    "steps": STEPS,
    "factor": 0,
    "nbrs": 50,
    "baseline": "paper default",
    "candidates": "words",
}
PATH_SETTINGS = {"strategy": "maxcount", "steps": STEPS, "factor": 0, "nbrs": 50, "candidates": "words"}
VALUES = tuple(SETTINGS.values())  # as the API takes them, after the text and the model


# -- handlers as plain functions ----------------------------------------------------------------------


def test_explain_shows_label_words_table_scores_and_runtime(demo):
    label, highlight, legend, tokens, scores, runtime = demo.explain(text=TEXT, model=MODEL, **SETTINGS)
    highlight = highlighted(highlight)  # the HTML as (text, value) pieces
    assert set(label) == {"negative", "positive"} and sum(label.values()) == pytest.approx(1.0)
    assert "".join(text for text, _ in highlight) == TEXT  # shown on the original text
    words = [text for text, score in highlight if score is not None]
    assert words == ["A", "gorgeous", ",", "witty", ",", "seductive", "movie", "."]
    assert max(abs(score) for _, score in highlight if score is not None) == pytest.approx(1.0)
    assert "toward" in legend and "away" in legend
    assert isinstance(tokens, pd.DataFrame) and tokens["token"].iloc[0] == "[CLS]"
    assert list(scores["score"]) == [
        "Log-odds",
        "Comprehensiveness",
        "Sufficiency",
        "AOPC comprehensiveness",
        "AOPC sufficiency",
        "Completeness error |Δ|",
    ]
    assert list(scores["better"]) == ["lower", "higher", "lower", "higher", "lower", "closer to 0"]
    assert scores["value"].notna().all()
    assert "UDIG" in runtime and " s" in runtime and "Δ" in runtime


def test_results_are_cached_and_reused_by_export(demo, monkeypatch):
    from udig import Explainer

    demo.explain(text=TEXT, model=MODEL, **SETTINGS)

    def recompute(*args, **kwargs):
        raise AssertionError("the export must reuse the explanation just shown")

    monkeypatch.setattr(Explainer, "explain", recompute)  # a recomputation would fail the export
    files, card = demo.export(text=TEXT, model=MODEL, **SETTINGS)
    names = sorted(Path(f).name for f in files)
    assert names == sorted(
        [
            "udig-udig.json",
            "udig-udig.csv",
            "udig-udig.html",
            "udig-udig-model-card.md",
            "udig-udig-model-card.html",
            "udig-udig.png",
            "udig-udig.svg",
        ]
    )
    document = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert (
        document["inputs"]["text"] == TEXT
        and document["inputs"]["steps"] == STEPS
        and document["inputs"]["model"] == MODEL
    )
    assert document["explanation"]["offsets"][1] == [0, 1] and "versions" in document
    assert set(document["metrics"]) == {
        "log_odds",
        "comprehensiveness",
        "sufficiency",
        "aopc_comprehensiveness",
        "aopc_sufficiency",
        "completeness_error",
    }
    assert "Example explanation" in card


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"text": "   "}, "empty"),
        ({"method": "shap"}, "unknown method"),
        ({"steps": 10**6}, "steps must be between"),
        ({"steps": 10**400}, "steps must be between 2 and 100, got 1000"),  # beyond a float: no OverflowError
        ({"steps": "many"}, "whole number"),
        ({"method": "dig", "steps": 100, "factor": 3}, "path points"),
        ({"model": "someone/else"}, "not offered"),
        ({"baseline": "notaword"}, "not in the vocabulary"),
        ({"text": None}, "empty"),
        ({"text": 42}, "must be given as text"),
        ({"stepz": 8}, "unknown field 'stepz'"),  # a typo is refused, not replaced by a default
    ],
)
def test_bad_input_is_a_readable_error(demo, changes, message):
    with pytest.raises(gr.Error) as caught:
        demo.explain(**{"text": TEXT, "model": MODEL, **SETTINGS, **changes})
    assert message in caught.value.message.lower() or message in caught.value.message
    assert "Traceback" not in caught.value.message


def test_the_offline_default_model_explains():
    from udig.models import DEFAULT_MODEL, ModelLoadError, load_model

    try:
        load_model()
    except ModelLoadError as error:
        pytest.skip(f"the offline default model is not available: {error}")
    real = Demo(AppConfig(sentiment_models=(DEFAULT_MODEL,), qa_models=(UNTRAINED_QA_MODEL,), cache_examples=False))
    label, highlight, notes, _, scores, runtime = real.explain(
        text=TEXT, model=DEFAULT_MODEL, **{**SETTINGS, "steps": 30, "factor": 1}
    )
    assert max(label, key=label.get) == "positive" and label["positive"] > 0.8  # a trained model, a clear review
    assert "63 path points" in runtime and scores["value"].notna().all()
    found = re.search(r"<b>What 500 Rotten Tomatoes sentences found for this model.*?</b><br>(.*?)<br>", notes)
    mean = evaluation.shipped_finding()["methods"]["udig-maxcount:words"]["log_odds"]["mean"]
    expected = "UDIG (MaxCount, real words only): log-odds " + f"{mean:+.2f} [".replace("-", "−")
    assert found and found[1].startswith(expected)  # the evaluated model: its finding for this method


def test_unknown_model_offline_says_what_to_do(minilm, minilm_qa):
    open_demo = make_demo(minilm, minilm_qa, allow_any_model=True)
    with pytest.raises(gr.Error) as caught:
        open_demo.explain(text=TEXT, model="distilbert/distilbert-base-uncased-finetuned-sst-2-english", **SETTINGS)
    assert caught.value.title == "Model not available"
    assert "cannot reach the Hugging Face Hub" in caught.value.message and "pick a model" in caught.value.message


def test_long_input_is_cut_with_a_visible_notice(demo):
    text = ("a quietly moving film " * 80).strip()  # 1759 characters, ~320 tokens
    _, highlight, _, tokens, _, runtime = demo.explain(text=text, model=MODEL, **SETTINGS)
    assert "shortened to its first" in runtime and "truncated" in runtime
    assert len(tokens) == 64
    shown = "".join(t for t, _ in highlighted(highlight))
    assert len(shown) <= 1000 and text.startswith(shown)


def test_injection_strings_stay_text(demo):
    label, highlight, legend, tokens, scores, runtime = demo.explain(text=INJECTION, model=MODEL, **SETTINGS)
    assert "".join(t for t, _ in highlighted(highlight)) == INJECTION and "<script" not in highlight  # text
    assert "<script" not in legend and "<img" not in runtime
    files, card = demo.export(text=INJECTION, model=MODEL, **SETTINGS)
    page = Path(next(f for f in files if f.endswith(".html") and "card" not in f)).read_text()
    assert re.search(r"<\s*(script|img)\b", page) is None
    assert re.search(r"(?<!\\)<", card) is None  # every < in the Markdown card is escaped
    assert INJECTION in "".join(text for text, _ in highlighted(page))  # shown as text, character for character


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_compare_uses_one_scale_and_marks_winners(demo):
    ig, dig, udig, sig, legend, table, bars, summary = demo.compare(text=TEXT, model=MODEL, **PATH_SETTINGS)
    peaks = [max(abs(s) for _, s in highlighted(h) if s is not None) for h in (ig, dig, udig, sig)]
    assert max(peaks) == pytest.approx(1.0) and all(p <= 1.0 for p in peaks)
    assert list(table.columns)[1:] == ["IG", "DIG", "UDIG", "SIG"]  # one column per method: fits a phone
    scores = table[table.iloc[:, 0] != "seconds"].set_index(table.columns[0])
    assert (scores.apply(lambda row: row.str.contains("★").sum(), axis=1) >= 1).all()  # a winner for every score
    for s in SCORES:  # every score in the chart, with which way is better; every method's bar
        assert s.name in bars and views.BETTER_WORDS[s.better] in bars
    assert bars.count("#6366f1") == len(SCORES)  # UDIG's colour once per score
    assert "One colour scale" in summary


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_sequential_runs_show_their_cost_first_and_keep_the_point_cap(minilm, minilm_qa):
    demo = make_demo(minilm, minilm_qa, limits=Limits(max_chars=1000, max_tokens=64, max_points=60))
    text = "A gorgeous, witty film."  # 6 words between [CLS] and [SEP]

    def cost(method, steps, **more):
        return demo.cost(text=text, model=MODEL, method=method, steps=steps, factor=0, **more)

    def cost_qa(question, method, steps, **more):
        fields = dict(question=question, context=text, model=UNTRAINED_QA_MODEL, method=method, steps=steps)
        return demo.cost_qa(**fields, factor=0, **more)

    assert cost("udig", STEPS, sequential=False) == ""  # a joint path: the sliders bound it
    assert cost("sig", 8) == (
        "⏱️ SIG moves each of 6 words along its own path: 6 × 9 = 54 path points, within this demo's cap of 60."
    )
    assert "6 × 11 = 66 path points, **more than this demo allows (60)**" in cost("udig", 9, sequential=True)
    assert cost("sig", "abc").startswith("⚠️ Steps must be a whole number")
    # QA: the question's and the context's words all move (3 + 6 here: "?" is one), and the same cap holds
    assert cost_qa("Who laughed?", "sig", 5) == (
        "⏱️ SIG moves each of 9 words along its own path: 9 × 6 = 54 path points, within this demo's cap of 60."
    )
    assert "**more than this demo allows (60)**" in cost_qa("Who laughed?", "sig", 8)
    assert cost_qa("Who laughed?", "udig", 8, sequential=False) == ""
    assert cost_qa("", "sig", 8) == ""
    *_, runtime = demo.explain(text=text, model=MODEL, **{**SETTINGS, "method": "sig", "steps": 8})
    assert "9 path points × 6 words (sequential)" in runtime and "48 gradient evaluations" in runtime  # 8 on each path
    with pytest.raises(
        gr.Error,
        match="UDIG moves each of 6 words along its own path: 6 × 11 = 66 path points, more than this demo allows",
    ):
        demo.explain(text=text, model=MODEL, **{**SETTINGS, "steps": 9}, sequential=True)
    *highlights, legend, table, bars, summary = demo.compare(text=text, model=MODEL, **{**PATH_SETTINGS, "steps": 12})
    assert list(table.columns)[1:] == ["IG", "DIG", "UDIG"] and highlights[3] == ""  # SIG left out, the others shown
    assert "SIG left out: SIG moves each of 6 words along its own path: 6 × 13 = 78 path points" in html.unescape(
        summary
    )


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_path_lists_anchors_and_distances(demo):
    summary, anchors, distances = demo.path(text=TEXT, model=MODEL, word="2: witty", **PATH_SETTINGS)
    assert "witty" in summary
    assert list(anchors.columns) == ["step (0 = input word)", "DIG anchor", "UDIG anchor"]
    assert anchors.iloc[0, 1] == "witty" and anchors.iloc[0, 2] == "witty" and len(anchors) == STEPS + 1
    assert set(distances["method"]) == {"IG", "DIG", "UDIG", "DIG anchor words", "UDIG anchor words"}
    key = views.path_legend_html()  # the plot's colour key: every series drawn, in its colour, and no other
    for series in set(distances["method"]):
        name = series if series.endswith(views.ANCHOR_SERIES) else f"{series} path points"
        assert f'background:{views.METHOD_COLOURS[series]}"></span>{name}</span>' in key
    assert key.count("udig-swatch") == len(set(distances["method"]))
    for _, group in distances[distances["method"].isin(["IG", "DIG", "UDIG"])].groupby("method"):
        assert group["position"].min() == 0 and group["position"].max() == 1
        assert group.sort_values("position")["distance"].iloc[0] == pytest.approx(0.0, abs=1e-3)  # starts on the word
    summary, _, _ = demo.path(text=TEXT, model=MODEL, word="", **PATH_SETTINGS)  # empty: most influential word
    assert "Word **" in summary
    with pytest.raises(gr.Error, match="not in the input"):
        demo.path(text=TEXT, model=MODEL, word="banana", **PATH_SETTINGS)


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_large_paths_are_not_kept_in_the_cache(demo, monkeypatch):
    monkeypatch.setattr(service, "PATH_CACHE_BYTES", 0)
    text = "Paths this big are dropped from the cache."
    demo.explain(text=text, model=MODEL, **SETTINGS)
    cached = demo.service.compute("classification", MODEL, {"text": text}, demo.config.settings(SETTINGS))
    assert cached.explanation.path is None
    summary, anchors, _ = demo.path(text=text, model=MODEL, word="big", **PATH_SETTINGS)  # recomputed
    assert "big" in summary and anchors.iloc[0, 2] == "big"


def test_a_remembered_result_carries_its_own_notices_not_an_earlier_requests(demo):
    """A text cut to the demo's limit and then sent again at the cut length is one cached result: the second
    answer says it is remembered, with the first run's time, and not that its text was shortened."""
    long = "good " * (demo.config.limits.max_chars // 5 + 20)
    cut = demo.config.limits.text("text", long, [])
    *_, first = demo.explain(text=long, model=MODEL, **SETTINGS)
    assert "shortened" in first and "remembered" not in first
    *_, again = demo.explain(text=cut, model=MODEL, **SETTINGS)
    assert "shortened" not in again and "remembered from an identical recent request" in again
    settings = demo.config.settings(SETTINGS)
    computed = demo.service.compute("classification", MODEL, {"text": cut}, settings, ["asked once"])
    assert computed.remembered and computed.notices[0] == "asked once"
    assert "asked once" not in demo.service.compute("classification", MODEL, {"text": cut}, settings).notices


def test_words_lists_the_choices(demo):
    update = demo.words("Unbelievably dull, isn't it?", MODEL)
    assert [c[0] for c in update.choices] == ["0: Unbelievably", "1: dull", "2: ,", "3: isn't", "4: it", "5: ?"]
    assert demo.words("", MODEL).choices == []
    assert demo.words("some text", "not/offered").choices == []  # silent: it runs on every keystroke


def test_qa_explains_start_and_end(demo):
    question, context = QA_EXAMPLE
    answer, start, end, legend, scores, runtime = demo.explain_qa(
        question=question, context=context, model=UNTRAINED_QA_MODEL, **SETTINGS
    )
    assert answer.startswith("**Answer:**")
    assert (
        "".join(t for t, _ in highlighted(start)) == f"{question}\n{context}" == "".join(t for t, _ in highlighted(end))
    )
    assert list(scores.columns)[:3] == ["score", "start logit", "end logit"] and scores["start logit"].notna().all()
    assert "untrained" in runtime and "[MASK]" in legend


def test_qa_tab_explains_itself_offline(demo, minilm, minilm_qa):
    notice = qa_notice(demo.config)
    assert "No trained question-answering model is on this machine" in notice and "untrained" in notice
    assert not re.search(r"UDIG_|HF_HUB|python |`", notice)  # the visitor's words; the operator's are in the docs
    mixed = make_demo(minilm, minilm_qa, qa_models=(MODEL,))
    assert qa_notice(mixed.config) == ""
    with pytest.raises(gr.Error, match="question-answering"):
        mixed.explain_qa(question="who?", context="Bob.", model=MODEL, **SETTINGS)


def test_share_link_round_trip(demo):
    layout = [
        ("sentiment", f)
        for f in ("text", "model", "method", "strategy", "steps", "factor", "nbrs", "baseline", "candidates")
    ]
    query = demo.share_sentiment(
        text=INJECTION,
        model=MODEL,
        method="dig",
        strategy="greedy",
        steps=12,
        factor=1,
        nbrs=20,
        baseline="mask",
        candidates="all",
    )
    assert query.startswith("?s=") and len(query) < 400
    tab, values, notices = links.restore(demo.config, layout, {"s": query[3:]})
    assert tab == "sentiment" and not notices
    assert values[("sentiment", "text")] == INJECTION
    assert values[("sentiment", "method")] == "dig" and values[("sentiment", "steps")] == 12
    assert values[("sentiment", "candidates")] == "all" and values[("sentiment", "baseline")] == "mask"


def _made(query: str) -> dict:
    """What a share link says made it, as the page reads it when the link is opened."""
    return links.made_by({"s": query[3:]})


def test_a_link_says_what_made_it_and_its_run_checks_the_result(demo):
    fields = {"text": TEXT, "model": MODEL, **SETTINGS}
    before = _made(demo.share_sentiment(**{**fields, "text": "never explained"}))
    assert before.keys() == {"udig", "revision"}  # no result at hand: no check
    demo.explain(**fields)
    made = _made(demo.share_sentiment(**fields))
    assert made["udig"] == udig_version and made["revision"] == demo.service.registry.revision(MODEL)
    assert made["check"]["label"] in ("negative", "positive") and len(made["check"]["words"][""]) == 3

    def opened(made: dict, notices=()) -> str:
        *outputs, notice = demo.open_link("sentiment", links.link_value(made, list(notices)), **fields)
        assert len(outputs) == 6 and notice.visible
        return notice.value

    shown = opened(made, ["Ignored 'color' from the link: this tab has no such field."])
    assert shown.startswith(f"🔗 Opened from a shared link, made with udig {views.literal(udig_version)} on model")
    assert "✅ The result recomputed here matches the link's check" in shown and "color" in shown
    assert "⚠️ **" not in shown
    (index, word, value), *_ = made["check"]["words"][""]
    wrong = {**made, "udig": "0.0.1", "check": {**made["check"], "words": {"": [[index, word, -3 * value - 1]]}}}
    shown = opened(wrong)
    assert "⚠️ **This server runs udig" in shown and "0&#46;0&#46;1" in shown
    assert "⚠️ **The result recomputed here does not match the link's check**" in shown
    assert views.literal(word) in shown  # the word whose attribution differs is named
    assert opened({}).startswith(links.OLD_LINK)  # a link made before links said what made them
    assert "carries no check" in opened({k: v for k, v in made.items() if k != "check"})


def test_a_model_revision_that_differs_is_a_visible_warning():
    made = {"udig": udig_version, "revision": "Hub commit aaaa", "check": {}}
    assert not any("⚠️" in line for line in links.made_lines(made, "Hub commit aaaa"))
    warned = links.made_lines(made, "Hub commit bbbb")
    assert any(line.startswith("⚠️ **The model here is at revision Hub commit bbbb") for line in warned)
    unknown = links.made_lines(made, "unknown (a model registered in code)")
    assert any("cannot be compared" in line for line in unknown) and not any("⚠️" in line for line in unknown)


def test_qa_has_share_and_export(demo):
    fields = {"question": "who?", "context": "Bob did it.", "model": UNTRAINED_QA_MODEL, **SETTINGS}
    demo.explain_qa(**fields)
    made = _made(demo.share_qa(**fields))
    assert made["revision"] == "untrained head (seed 0)" and set(made["check"]["words"]) == {"start", "end"}
    *_, notice = demo.open_link("qa", links.link_value(made, []), **fields)
    assert "✅" in notice.value
    files = demo.export_qa(**fields)
    names = sorted(Path(f).name for f in files)
    assert names == sorted(
        f"udig-qa-udig-{part}.{ext}" for part in ("start", "end") for ext in ("json", "csv", "png", "svg")
    )
    document = json.loads(Path(next(f for f in files if f.endswith("start.json"))).read_text())
    assert document["inputs"]["udig"] == udig_version and document["inputs"]["link"].startswith("?s=")
    assert document["inputs"]["model_revision"] == "untrained head (seed 0)" and "answer" in document["inputs"]


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
@pytest.mark.parametrize("tab", ["compare", "path"])
def test_compare_and_path_have_share_and_export(demo, tab):
    fields = {"text": TEXT, "model": MODEL, **PATH_SETTINGS, **({"word": "witty"} if tab == "path" else {})}
    getattr(demo, tab)(**fields)
    made = _made(getattr(demo, f"share_{tab}")(**fields))
    methods = ("ig", "dig", "udig", "sig") if tab == "compare" else views.JOINT_METHODS
    assert set(made["check"]["words"]) == set(methods)
    *outputs, notice = demo.open_link(tab, links.link_value(made, []), **fields)
    assert "✅" in notice.value
    files = getattr(demo, f"export_{tab}")(**fields)
    assert sorted(Path(f).name for f in files) == sorted(
        f"udig-{tab}-{m}.{ext}" for m in methods for ext in ("json", "csv", "png", "svg")
    )
    document = json.loads(Path(files[0]).read_text())
    assert document["inputs"]["method"] == methods[0] and document["inputs"]["link"].startswith("?s=")


def test_the_integration_rule_is_a_control_that_links_carry(demo):
    runtime = demo.explain(text=TEXT, model=MODEL, **SETTINGS, rule="riemann_trapezoid")[-1]
    assert "trapezoid" in runtime and re.search(r"\(\d+% of F\(x\) − F\(x′\)\)", runtime)  # the relative error, shown
    assert "left sum" in demo.explain(text=TEXT, model=MODEL, **SETTINGS)[-1]  # the papers' rule when none is given
    layout = [("compare", f) for f in ("text", "model", "strategy", "steps", "factor", "nbrs", "candidates", "rule")]
    query = demo.share_compare(text=TEXT, model=MODEL, **PATH_SETTINGS, rule="riemann_middle")
    tab, values, notices = links.restore(demo.config, layout, {"s": query[3:]})
    assert tab == "compare" and values[("compare", "rule")] == "riemann_middle" and not notices
    with pytest.raises(gr.Error, match="DIG takes rule riemann_left, .*not 'gausslegendre'"):
        demo.compare(text=TEXT, model=MODEL, **PATH_SETTINGS, rule="gausslegendre")


def test_restore_never_raises(demo):
    layout = [("sentiment", "text"), ("sentiment", "steps"), ("sentiment", "model"), ("compare", "text")]
    assert links.restore(demo.config, layout, {}) == (None, {}, [])
    tab, values, notices = links.restore(demo.config, layout, {"s": "not-a-valid-state"})
    assert tab is None and "could not be read" in notices[0]
    tab, values, notices = links.restore(
        demo.config, layout, {"tab": "sentiment", "text": "plain link", "steps": "9999", "model": "evil/model"}
    )
    assert tab == "sentiment" and values == {("sentiment", "text"): "plain link"} and len(notices) == 2
    bomb = links._encode_state({"tab": "compare", "text": "x" * 200_000})
    assert links.restore(demo.config, layout, {"s": bomb})[0] is None  # over the size limit: refused, no crash
    runs = ["sentiment", "compare"]
    values = links.load_values(demo.config, layout, runs, {"tab": "compare", "text": "hello"})
    assert values[-4] == "hello" and isinstance(values[2], dict)  # gr.skip() for the rest
    assert values[-3:-1] == [gr.skip(), links.RUN]  # only the link's tab runs
    assert links.read_link_value(values[-1]) == ({}, [])  # a hand-written link says nothing of what made it
    assert links.OLD_LINK in values[1].value


def test_one_explainer_and_one_vocab_index_under_concurrency(minilm, minilm_qa):
    loads = []

    def loader():
        loads.append(1)
        time.sleep(0.2)  # a slow load: every thread arrives while it runs
        return minilm

    fresh = make_demo(minilm, minilm_qa)
    fresh.service.registry.register(MODEL, loader)
    explainers, errors = [], []

    def work():
        try:
            e = fresh.service.registry.explainer(MODEL)
            explainers.append((e, e.vocab_))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(loads) == 1
    assert len({id(e) for e, _ in explainers}) == 1 and len({id(v) for _, v in explainers}) == 1
    assert fresh.service.registry.explainer(MODEL).vocab_ is explainers[0][1]  # one explainer, so one index, per model


def test_spaces_gpu_shim(monkeypatch):
    assert service.gpu(duration=5)(len) is len and service.gpu(len) is len
    calls = []

    class FakeSpaces:
        @staticmethod
        def GPU(fn=None, **kwargs):  # noqa: N802 - the spaces API
            calls.append(kwargs)
            return fn if fn is not None else (lambda f: f)

    monkeypatch.setitem(sys.modules, "spaces", FakeSpaces)
    spec = importlib.util.spec_from_file_location("udig.app._service_on_spaces", ROOT / "udig" / "app" / "service.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.gpu is FakeSpaces.GPU and calls == [{"duration": module.attribution_seconds}]  # seconds per request


# -- start-up, memory and the queue -------------------------------------------------------------------


def _hold(start_up: service.StartUp, stage: str, seconds: float) -> threading.Thread:
    """A thread doing ``stage`` for ``seconds``, as the warm-up would."""

    def work() -> None:
        with start_up.doing(stage):
            time.sleep(seconds)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_request_during_start_up_shows_each_stage_it_waits_for_and_counts_the_wait(minilm, minilm_qa):
    fresh = make_demo(minilm, minilm_qa)
    start_up, stages = fresh.service.start_up, []
    start_up.expect(service.COMPILING_KERNELS)
    compiling = _hold(start_up, service.COMPILING_KERNELS, 1.0)
    result = fresh.service.compute(
        "classification",
        MODEL,
        {"text": TEXT},
        fresh.config.settings(SETTINGS),
        report=stages.append,
        references=evaluation.REFERENCES,  # as the sentiment tab asks: its explain below is remembered
    )
    compiling.join()
    assert stages == [service.LOADING_MODEL, service.COMPILING_KERNELS]
    waited = float(re.search(r"compiling the attribution kernels, once per start \(([\d.]+) s\)", result.notices[0])[1])
    assert 0.8 <= waited <= result.seconds
    assert result.seconds >= waited + result.main.timings["path"]  # the runtime counts the wait and the work
    runtime = fresh.explain(text=TEXT, model=MODEL, **SETTINGS)[-1]  # remembered: the wait was that request's own
    assert "one-time work" not in runtime and f"{result.seconds:.2f} s" in runtime
    stages.clear()
    settings = fresh.config.settings(SETTINGS)
    fresh.service.compute("classification", MODEL, {"text": "Dull."}, settings, report=stages.append)
    assert stages == []  # nothing left to wait for


def test_warm_up_prepares_the_first_request_and_never_leaves_it_waiting(minilm, minilm_qa):
    ready = make_demo(minilm, minilm_qa, warmup="model")
    ready.service.registry.register(MODEL, lambda: time.sleep(0.5) or minilm)
    warming = ready.start_warm_up()
    assert ready.service.start_up.pending(service.COMPILING_KERNELS)  # announced before any request can arrive
    warming.join(timeout=120)
    stages: list[str] = []
    settings = ready.config.settings(SETTINGS)
    ready.service.compute("classification", MODEL, {"text": TEXT}, settings, report=stages.append)
    assert ready.service.registry.loaded(MODEL) and stages == []

    broken = make_demo(minilm, minilm_qa)
    broken.service.registry.register(MODEL, lambda: 1 / 0)  # the warm-up's first stage fails
    broken.start_warm_up().join(timeout=60)
    assert not broken.service.start_up.pending(service.COMPILING_KERNELS)  # requests would wait for ever
    assert make_demo(minilm, minilm_qa, warmup="off").start_warm_up() is None


def _compiler_that_stops_after(n_parts: int) -> subprocess.Popen:
    """A stand-in for ``python -m udig.vocab``: says its first ``n_parts`` parts are written at once, the rest
    after a line on its stdin (compiling nothing: the kernels are in the cache or compile where they are used)."""
    from udig.vocab import COMPILE_ORDER

    script = (
        "import sys\n"
        f"for part in {list(COMPILE_ORDER[:n_parts])!r}: print(part, 0.1, flush=True)\n"
        "sys.stdin.readline()\n"
        f"for part in {list(COMPILE_ORDER[n_parts:])!r}: print(part, 0.1, flush=True)\n"
    )
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_the_warm_up_skips_udigs_screen_until_the_compiler_has_written_it(minilm, minilm_qa):
    """With a compiler process, the warm-up ends the kernels' stage once UDIG's search and chains are written,
    and UDIG's searches skip the int8 screen (the same words) until the compiler says the screen is written too;
    then the screen is used again."""
    from udig.kernels.search import _screen_segments
    from udig.vocab import COMPILE_ORDER
    from udig.vocab import nearest as nearest_module
    from udig.vocab.int8 import int8_product

    compiler = _compiler_that_stops_after(len(COMPILE_ORDER) - 1)
    demo = make_demo(minilm, minilm_qa, warmup="model")
    try:
        warming = demo.start_warm_up(compiler)
        demo.service.start_up.wait(service.COMPILING_KERNELS)
        time.sleep(0.2)
        assert warming.is_alive() and nearest_module._SCREEN_HELD.is_set()  # waiting for the screen
    finally:
        compiler.stdin.write("go\n")  # the warm-up ends (and releases the screen) whatever happened
        compiler.stdin.flush()
    warming.join(timeout=120)
    assert not warming.is_alive() and not nearest_module._SCREEN_HELD.is_set() and compiler.returncode == 0
    if int8_product(384) != "none":  # the warm-up loaded (here: compiled) the screen once released
        assert _screen_segments.signatures


def test_the_warm_up_loads_each_part_as_soon_as_the_compiler_has_written_it(minilm, minilm_qa, monkeypatch):
    """UDIG's search is loaded while the compiler still compiles UDIG's chains (the server's load of numba and
    of the search overlaps that compilation), not once both are written."""
    compiler = _compiler_that_stops_after(1)
    loaded = []
    monkeypatch.setattr(handlers, "compile_kernels", lambda parts: loaded.append(tuple(parts)))
    demo = make_demo(minilm, minilm_qa, warmup="model")
    try:
        warming = demo.start_warm_up(compiler)
        deadline = time.monotonic() + 60
        while not loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loaded == [("udig-search",)]  # the chains are not written yet
    finally:
        compiler.stdin.write("go\n")
        compiler.stdin.flush()
    warming.join(timeout=120)
    assert loaded == [("udig-search",), ("udig-chains",), ("udig-screen",)]


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_the_full_warm_up_prepares_digs_graph(minilm, minilm_qa):
    ready = make_demo(minilm, minilm_qa)
    assert ready.config.warmup == "full"  # the default
    ready.start_warm_up().join(timeout=300)
    stages: list[str] = []
    settings = ready.config.settings({**SETTINGS, "method": "dig"})
    ready.service.compute("classification", MODEL, {"text": TEXT}, settings, report=stages.append)
    assert stages == []


def test_time_estimates_learn_only_from_runs_beside_no_one_time_work():
    start_up = service.StartUp()
    times = waiting.LearnedTimes(start_up)
    with start_up.doing(service.LOADING_MODEL):
        times["explain"].add(0.01)  # ran while a model loaded
    assert "explain" not in times  # Gradio shows no estimate rather than a wrong one
    times["explain"].add(30.0)  # began before the load ended
    time.sleep(0.05)
    times["explain"].add(0.02)  # began after it
    times["explain"].add(0.04)
    assert times["explain"].count == 2 and times["explain"].avg_time == pytest.approx(0.03)


def test_a_visitors_places_count_their_attributions_waiting_or_running():
    from types import SimpleNamespace

    def event(session: str, queue: str | None = "classifier") -> SimpleNamespace:
        return SimpleNamespace(session_hash=session, concurrency_id=queue)

    queue = SimpleNamespace(
        event_queue_per_concurrency_id={
            "classifier": SimpleNamespace(queue=[event("a"), event("b"), event("a")]),
            "qa": SimpleNamespace(queue=[event("b", "qa")]),
            None: SimpleNamespace(queue=[event("a", None)]),  # a word list: not an attribution
        },
        active_jobs=[None, [event("a", "qa")]],
    )
    assert waiting.held_by(queue, "a", ("classifier", "qa")) == 3
    assert waiting.held_by(queue, "b", ("classifier", "qa")) == 2
    assert waiting.refusal(2, 3) is None
    assert waiting.refusal(3, 3).startswith("You already have 3 runs waiting or running")


def test_one_visitor_holds_at_most_three_places_and_sees_what_the_first_waits_for(served, demo):
    """Five runs from one client while the kernels' stage is under way: the first waits (showing the stage),
    two queue, two are refused; another visitor still gets a place; the run that waited teaches no estimate."""
    from gradio_client import Client

    url, _, blocks = served
    explain = next(fn for fn in blocks.fns.values() if fn.api_name == "explain")
    times = blocks._queue.process_time_per_fn
    learned = times[explain].count if explain in times else 0
    start_up = demo.service.start_up
    start_up.expect(service.COMPILING_KERNELS)
    try:
        visitor, other = Client(url, verbose=False), Client(url, verbose=False)
        jobs = [visitor.submit(f"{TEXT} {i}", MODEL, *VALUES, api_name="/explain") for i in range(5)]
        deadline = time.time() + 60
        while sum(job.done() for job in jobs) < 2 and time.time() < deadline:
            time.sleep(0.1)
        refused = [job for job in jobs if job.done()]
        assert len(refused) == 2
        for job in refused:
            assert "You already have 3 runs waiting or running" in job.exception().response.json()["detail"]
        shown = []
        while not shown and time.time() < deadline:
            shown = [
                (unit.desc, unit.index, unit.length, unit.unit)
                for job in jobs
                if not job.done()
                for unit in job.status().progress_data or []
            ]
            time.sleep(0.1)
        assert shown == [("Compiling the attribution kernels, once per start", 1, 3, "start-up stages")]
        later = other.submit(f"{TEXT} other", MODEL, *VALUES, api_name="/explain")
    finally:
        start_up.end(service.COMPILING_KERNELS)
    runtimes = [job.result(timeout=120)[-1] for job in jobs if job not in refused] + [later.result(timeout=120)[-1]]
    assert sum("compiling the attribution kernels" in runtime for runtime in runtimes) == 1  # the one that waited
    assert times[explain].count == learned + 3  # the three that ran after the stage; not the one that waited


def test_freed_memory_goes_back_to_the_system():
    """glibc serves a 512 kB block from its heap once a 1 MB mapped block was freed (its threshold rises);
    after the hook it maps it, so freeing it gives it back. Each case in a fresh process."""
    if memory._glibc() is None:
        pytest.skip("mallopt is glibc's")
    probe = (
        "import ctypes, runpy, sys\n"
        "memory = runpy.run_path(sys.argv[1])\n"
        "if sys.argv[2] == 'hook':\n"
        "    assert memory['hand_back_freed_memory']()\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]\n"
        "libc.free(libc.malloc(1 << 20))\n"
        "block = libc.malloc(512 << 10)\n"
        "print(ctypes.c_size_t.from_address(block - 8).value & 2)\n"  # the chunk header's IS_MMAPPED bit
    )
    mapped = {
        case: subprocess.run(
            [sys.executable, "-c", probe, str(ROOT / "udig" / "app" / "memory.py"), case],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for case in ("hook", "none")
    }
    assert mapped == {"hook": "2", "none": "0"}


def test_each_computed_request_trims_and_the_app_start_installs_the_hook(demo, monkeypatch):
    from types import SimpleNamespace

    import app

    trims = []
    monkeypatch.setattr(memory, "trim", lambda: trims.append(1))
    demo.service.compute("classification", MODEL, {"text": "Trimmed after."}, demo.config.settings(SETTINGS))
    demo.service.compute("classification", MODEL, {"text": "Trimmed after."}, demo.config.settings(SETTINGS))
    assert trims == [1]  # the remembered one computed nothing
    calls = []
    monkeypatch.setattr(app, "hand_back_freed_memory", lambda: calls.append("memory"))
    monkeypatch.setattr(app, "KERNEL_COMPILER", compiler := SimpleNamespace(name="python -m udig.vocab"))
    monkeypatch.setattr(app.Demo, "start_warm_up", lambda self, given: calls.append(("warm-up", given)))
    monkeypatch.setattr(app, "build_demo", lambda demo: SimpleNamespace(launch=lambda **_: calls.append("launch")))
    app.main()
    # the warm-up runs while the page is built and served, told of the compiler app.py started at its top
    assert calls == ["memory", ("warm-up", compiler), "launch"]


def test_caches_live_in_persistent_storage_when_a_space_has_it(tmp_path):
    import app

    absent = {"UDIG_PERSISTENT_DIR": str(tmp_path / "absent")}
    assert app.keep_caches_in_persistent_storage(absent) is None and list(absent) == ["UDIG_PERSISTENT_DIR"]
    environ = {"UDIG_PERSISTENT_DIR": str(tmp_path), "HF_ASSETS_CACHE": "/chosen"}
    assert app.keep_caches_in_persistent_storage(environ) == tmp_path
    assert environ["NUMBA_CACHE_DIR"] == str(tmp_path / "udig" / "numba") and environ["HF_ASSETS_CACHE"] == "/chosen"


@pytest.mark.slow  # a Python process importing the app
def test_persistent_caches_are_set_before_numba_and_the_hub_read_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "HF_ASSETS_CACHE", "HF_HOME")}
    code = "import app, numba, huggingface_hub.constants as c; print(numba.config.CACHE_DIR); print(c.HF_ASSETS_CACHE)"
    shown = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "UDIG_PERSISTENT_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == [str(tmp_path / "udig" / "numba"), str(tmp_path / "udig" / "assets")]


# -- user input in messages, links and configuration --------------------------------------------------

PATH_FIELDS = {"text": TEXT, "model": MODEL, "word": "witty", **PATH_SETTINGS}
FIELDS = {  # handler: good fields; each is a field a user types, or a link or a call sets
    "explain": {"text": TEXT, "model": MODEL, **SETTINGS},
    "explain_qa": {"question": QA_EXAMPLE[0], "context": QA_EXAMPLE[1], "model": UNTRAINED_QA_MODEL, **SETTINGS},
    "compare": {"text": TEXT, "model": MODEL, **PATH_SETTINGS},
    "path": PATH_FIELDS,
    "share_sentiment": {"text": TEXT, "model": MODEL, **SETTINGS},
    "share_path": PATH_FIELDS,
}
QUOTING = {
    "model",
    "word",
    "method",
    "strategy",
    "steps",
    "factor",
    "nbrs",
    "baseline",
    "candidates",
}  # refused, quoted
NOT_CHECKED_BY_SHARE = {"baseline", "word"}  # any token or word: restore checks them against the model


@pytest.mark.parametrize("handler", list(FIELDS))
def test_error_messages_show_user_input_as_text(demo, handler):
    """Gradio renders gr.Error messages as HTML: every message quoting a field's value has it escaped."""
    good = FIELDS[handler]
    fields = QUOTING - (NOT_CHECKED_BY_SHARE if handler.startswith("share") else set())
    quoted = 0
    for name in good:
        if name not in fields:
            continue
        for payload in PAYLOADS:
            with pytest.raises(gr.Error) as caught:
                getattr(demo, handler)(**{**good, name: payload})
            message = caught.value.message
            assert "<" not in message and ">" not in message, (name, message)
            quoted += payload in html.unescape(message)
    assert quoted >= len(PAYLOADS) * 2  # the model and a choice at least are quoted, as text


def test_text_the_model_cannot_read_is_one_clear_message_for_every_method(demo):
    unreadable = "\u200b\u200b \u2063"  # zero-width and invisible characters only
    for method in ("ig", "dig", "udig"):
        with pytest.raises(gr.Error, match="no word the model can read"):
            demo.explain(text=unreadable, model=MODEL, **{**SETTINGS, "method": method})
    with pytest.raises(gr.Error, match="no word the model can read"):
        demo.compare(text=unreadable, model=MODEL, **PATH_SETTINGS)
    with pytest.raises(gr.Error, match="no word the model can read"):
        demo.path(text=unreadable, model=MODEL, word="", **PATH_SETTINGS)
    qa = {"model": UNTRAINED_QA_MODEL, **SETTINGS}
    with pytest.raises(gr.Error, match="The context has no word the model can read"):
        demo.explain_qa(question="Who?", context=unreadable, **qa)
    with pytest.raises(gr.Error, match="The question has no word the model can read"):
        demo.explain_qa(question="\u200b\u200b", context=QA_EXAMPLE[1], **qa)  # not a run with an empty question


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": None, "baseline": None, "candidates": None}, None),  # missing settings: the controls' defaults
        ({"text": "\ud800 lone surrogate"}, "not valid Unicode"),
        ({"model": "\udfff"}, "not valid Unicode"),
        ({"baseline": "\ud800"}, "not valid Unicode"),
        ({"model": "m" * 500}, "at most 200 characters"),
        ({"steps": [8]}, "whole number"),
    ],
)
def test_api_values_get_the_uis_messages(demo, changes, message):
    fields = {"text": TEXT, "model": MODEL, **SETTINGS, **changes}
    if message is None:
        assert "UDIG" in demo.explain(**fields)[-1]
        return
    with pytest.raises(gr.Error) as caught:
        demo.explain(**fields)
    assert message in caught.value.message and "codec" not in caught.value.message


def test_model_load_errors_name_only_what_was_typed(minilm, minilm_qa, tmp_path):
    """UDIG_ALLOW_ANY_MODEL: a visitor's name is a Hub id, checked before anything is read: the visitor sees only
    their own words, the same whether a folder of that name exists or not."""
    open_demo = make_demo(minilm, minilm_qa, allow_any_model=True)
    (tmp_path / "folder").mkdir()
    messages = {}
    for typed in ("/root", "/proc/self", "/no/such/folder", "~", "udig", str(tmp_path / "folder"), "../.."):
        with pytest.raises(gr.Error) as caught:
            open_demo.explain(text=TEXT, model=typed, **SETTINGS)
        message = caught.value.message
        assert caught.value.title == "Model not available"
        shown = re.fullmatch(
            r"“([^”]*)” is not a model name: write it as owner/name, as on the Hugging Face Hub\.", message
        )
        assert shown and typed.startswith(shown[1].rstrip("…")), message
        messages[typed] = message.replace(shown[1], "NAME")
    assert len(set(messages.values())) == 1  # an existing folder reads like a missing one: nothing to probe
    with pytest.raises(gr.Error) as caught:  # a Hub id, this server offline (HF_HUB_OFFLINE=1)
        open_demo.explain(text=TEXT, model="someone/no-such-model", **SETTINGS)
    assert caught.value.message == service.HUB_UNREACHABLE.format(model="“someone/no-such-model”")
    with pytest.raises(gr.Error) as caught:
        open_demo.explain(text=TEXT, model='<img src=x onerror="window.__pwned=5">', **SETTINGS)
    assert "<" not in caught.value.message


def _restore(demo, query: dict) -> tuple:
    layout = [
        (tab, f)
        for tab, fields in {
            "sentiment": ("text", "model", "method", "strategy", "steps", "factor", "nbrs", "baseline", "candidates"),
            "path": ("text", "model", "word", "strategy", "steps", "factor", "nbrs", "candidates"),
        }.items()
        for f in fields
    ]
    return links.restore(demo.config, layout, query, demo.tokenizer)


def test_restore_checks_every_field(demo):
    tab, values, notices = _restore(demo, {"tab": "sentiment", "text": "ok", "baseline": "zzz"})
    assert tab == "sentiment" and values == {("sentiment", "text"): "ok"}
    assert notices == ["Ignored baseline from the link: 'zzz' is not a token of test/minilm."]
    tab, values, notices = _restore(demo, {"tab": "sentiment", "text": "ok", "baseline": "film", "__theme": "dark"})
    assert values[("sentiment", "baseline")] == "film" and not notices  # a vocabulary token, Gradio's own parameter
    tab, values, notices = _restore(demo, {"tab": "path", "text": TEXT, "word": "3: witty"})
    assert values[("path", "word")] == "3: witty" and not notices
    tab, values, notices = _restore(
        demo, {"tab": "path", "text": TEXT, "word": "banana", "method": "ig", "color": "red"}
    )
    assert set(values) == {("path", "text")} and len(notices) == 3
    assert any("banana" in n and "not in the input" in n for n in notices)
    ignored = {f"Ignored '{name}' from the link: this tab has no such field." for name in ("method", "color")}
    assert ignored <= set(notices)
    tab, values, notices = _restore(demo, {"tab": "sentiment", "text": "x " * 3000, "steps": "1e9", "model": {"a": 1}})
    assert len(values[("sentiment", "text")]) <= demo.config.limits.max_chars and len(notices) == 3
    assert "shortened" in notices[0]
    bad_text = json.dumps({"tab": "sentiment", "text": "\ud800", "method": "dig"}).encode()  # ASCII: \ud800 escaped
    tab, values, notices = _restore(demo, {"s": base64.urlsafe_b64encode(zlib.compress(bad_text)).decode()})
    assert values == {("sentiment", "method"): "dig"} and "not valid Unicode" in notices[0]


def test_restore_downloads_nothing_to_check_a_link(minilm, minilm_qa):
    two = make_demo(minilm, minilm_qa, sentiment_models=(MODEL, "someone/not-downloaded"))
    asked = []
    layout = [("sentiment", "model"), ("sentiment", "baseline")]
    query = {"tab": "sentiment", "model": "someone/not-downloaded", "baseline": "zzz"}
    tab, values, notices = links.restore(two.config, layout, query, asked.append)
    assert asked == [] and values[("sentiment", "baseline")] == "zzz" and not notices  # its run will say


def test_restore_survives_deeply_nested_json(demo):
    token = base64.urlsafe_b64encode(zlib.compress(b"[" * 30_000 + b"]" * 30_000, 9)).decode()
    tab, values, notices = _restore(demo, {"s": token})
    assert (
        tab is None
        and values == {}
        and notices == ["The shared link could not be read (nested too deeply); showing the defaults."]
    )
    deep = links._encode_state({"tab": "sentiment", "text": "ok", "steps": {"a": [[[[[1]]]]]}})
    tab, values, notices = _restore(demo, {"s": deep})
    assert values == {("sentiment", "text"): "ok"} and "steps" in notices[0]


def test_a_link_with_numbers_beyond_a_float_is_restored_without_them(demo):
    """JSON integers have no size limit: a 401-digit ``steps`` once escaped the number checks as an OverflowError,
    and the page load answered HTTP 500 with nothing restored."""
    state = '{"tab": "sentiment", "text": "ok", "steps": 1' + "0" * 400 + ', "nbrs": 1e400, "factor": "1e999"}'
    token = base64.urlsafe_b64encode(zlib.compress(state.encode())).decode()
    tab, values, notices = _restore(demo, {"s": token})
    assert tab == "sentiment" and values == {("sentiment", "text"): "ok"}
    assert notices[0].startswith("Ignored steps from the link: steps must be between 2 and 100, got 1000")
    assert notices[0].endswith("… (401 characters).") and len(notices[0]) < 200  # named, not echoed whole
    assert notices[1:] == [
        "Ignored nbrs from the link: nbrs must be a whole number, got inf.",
        "Ignored factor from the link: factor must be a whole number, got '1e999'.",
    ]
    page = links.load_values(demo.config, [("sentiment", "text"), ("sentiment", "steps")], ["sentiment"], {"s": token})
    assert page[2] == "ok" and page[-2] == links.RUN  # the page loads, restores the text and runs


def test_link_notices_name_what_they_ignore_in_short_and_stop_counting(demo):
    """A 130-character link once produced a 301 KB notice: names are cut as refused values are, and a link
    naming many fields gets a few notices and a count."""
    tab, _, notices = _restore(demo, {"s": links._encode_state({"tab": "t" * 60_000})})
    assert tab is None and notices == [f"Unknown tab '{'t' * 59}… (60002 characters) in the link."]
    many = {"tab": "sentiment", "text": "ok", **{f"field{i}" + "y" * 1000: i for i in range(50)}}
    token = links._encode_state(many)
    assert len(token) < 1000  # a short link
    _, values, notices = _restore(demo, {"s": token})
    assert values == {("sentiment", "text"): "ok"} and len(notices) == links.MAX_NOTICES
    assert all(len(notice) < 200 for notice in notices) and notices[0].startswith("Ignored 'field0yyy")
    assert notices[-1] == f"{50 - links.MAX_NOTICES + 1} more notices about this link are not shown."
    assert len(views.notices_markdown(notices)) < 8000


def test_share_links_are_cut_like_the_ui(demo):
    limits = demo.config.limits
    query = demo.share_sentiment(text="x " * 30_000, model=MODEL, **SETTINGS)
    assert len(query) < 400  # 60,000 characters in, a link to the first 1000 (and what made it) out
    tab, values, _ = _restore(demo, {"s": query[3:]})
    assert len(values[("sentiment", "text")]) <= limits.max_chars
    query = demo.share_qa(question="why? " * 1000, context="because " * 5000, model=UNTRAINED_QA_MODEL, **SETTINGS)
    state = links._decode_state(query[3:])
    assert len(state["question"]) <= limits.max_question_chars and len(state["context"]) <= limits.max_chars
    state = links._decode_state(demo.share_path(**{**PATH_FIELDS, "word": "w" * 10_000})[3:])
    assert len(state["word"]) <= limits.max_word_chars
    random_text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(60_000))  # incompressible
    assert len(demo.share_compare(text=random_text, model=MODEL, **PATH_SETTINGS)) < 6000
    for bad in (("steps", "abc"), ("method", "x" * 60_000)):
        with pytest.raises(gr.Error):
            demo.share_sentiment(**{**FIELDS["share_sentiment"], bad[0]: bad[1]})


def test_env_numbers_fall_back_with_a_warning(monkeypatch, caplog):
    for name in (
        "UDIG_QUEUE_SIZE",
        "UDIG_CONCURRENCY",
        "UDIG_MAX_CHARS",
        "UDIG_MAX_TOKENS",
        "UDIG_MAX_POINTS",
        "GRADIO_SERVER_PORT",
    ):
        monkeypatch.setenv(name, "abc")
    with caplog.at_level("WARNING"):
        config = AppConfig.from_env()
    assert (
        config.queue_size == 32 and config.concurrency == 1 and config.limits == Limits() and config.server_port == 7860
    )
    assert "UDIG_QUEUE_SIZE='abc'" in caplog.text and "not an integer" in caplog.text
    monkeypatch.setenv("UDIG_QUEUE_SIZE", "0")
    monkeypatch.setenv("UDIG_MAX_CHARS", "-5")
    assert AppConfig.from_env().queue_size == 32 and AppConfig.from_env().limits.max_chars == 1000
    monkeypatch.setenv("UDIG_QUEUE_SIZE", "8")
    assert AppConfig.from_env().queue_size == 8


@pytest.mark.parametrize(
    ("offline", "reachable", "cached", "trained"),
    [
        (False, True, False, True),  # a Space: the trained model, fetched on first use
        (True, True, False, False),  # HF_HUB_OFFLINE: the mechanics demo
        (False, False, False, False),  # no network
        (True, False, True, True),  # in the cache: offline is fine
    ],
)
def test_qa_default_is_a_trained_model_when_the_hub_answers(monkeypatch, offline, reachable, cached, trained):
    from udig.models import CURATED_MODELS

    first = CURATED_MODELS["qa"][0] if trained else UNTRAINED_QA_MODEL
    monkeypatch.setattr(app_config, "hub_offline", lambda: offline)
    monkeypatch.setattr(app_config, "hub_reachable", lambda: reachable)
    monkeypatch.setattr(app_config, "model_at_hand", lambda name: name == UNTRAINED_QA_MODEL or cached)
    monkeypatch.delenv("UDIG_QA_MODEL", raising=False)
    config = AppConfig.from_env()
    assert config.qa_models[0] == first and UNTRAINED_QA_MODEL in config.qa_models
    notice = qa_notice(config)
    if first == UNTRAINED_QA_MODEL:
        assert "No trained question-answering model" in notice and "untrained" in notice  # saying so
    elif cached:
        assert notice == ""
    else:
        assert f"`{first}` is downloaded from the Hugging Face Hub on its first use" in notice


def test_first_use_of_a_hub_qa_model_says_it_downloads(demo, monkeypatch):
    from udig.app import handlers

    told = []
    monkeypatch.setattr(gr, "Info", lambda message, **kwargs: told.append(message))
    monkeypatch.setattr(handlers, "hub_usable", lambda: True)
    monkeypatch.setattr(handlers, "model_at_hand", lambda name: False)  # as a Hub model not yet in the cache
    question, context = QA_EXAMPLE
    demo.explain_qa(question=question, context=context, model=UNTRAINED_QA_MODEL, **SETTINGS)
    assert told == [f"Downloading {UNTRAINED_QA_MODEL} from the Hugging Face Hub for its first use: about a minute."]
    monkeypatch.setattr(handlers, "model_at_hand", lambda name: True)  # cached now: nothing to say
    demo.explain_qa(question=question, context=context, model=UNTRAINED_QA_MODEL, **SETTINGS)
    assert len(told) == 1


# -- the launched app through gradio_client -----------------------------------------------------------


@pytest.fixture(scope="module")
def client(url):
    """gradio_client on the app conftest serves (``served``) over this module's demo."""
    from gradio_client import Client

    return Client(url, verbose=False)


ENDPOINTS = [
    "/explain",
    "/explain_qa",
    "/compare",
    "/path",
    "/words",
    "/export",
    "/share_sentiment",
    "/share_qa",
    "/share_compare",
    "/share_path",
    "/export_qa",
    "/export_compare",
    "/export_path",
    "/cost",
]


def test_every_named_endpoint_is_listed(client):
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(ENDPOINTS) <= set(named)
    assert not any("autorun" in name or "on_load" in name for name in named)


def test_client_explain(client):
    label, highlight, legend, tokens, scores, runtime = client.predict(TEXT, MODEL, *VALUES, api_name="/explain")
    assert label["label"] in ("negative", "positive")
    assert [text for text, _ in highlighted(highlight)][:2] == ["A", " "]
    assert len(scores["data"]) == len(SCORES) == 6 and "UDIG" in runtime


def test_client_errors_are_messages(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("", MODEL, *VALUES, api_name="/explain")


@pytest.mark.slow  # DIG's graph of MiniLM, built in whichever test needs it first
def test_client_qa_compare_path_words(client):
    question, context = QA_EXAMPLE
    answer, *_ = client.predict(question, context, UNTRAINED_QA_MODEL, *VALUES, api_name="/explain_qa")
    assert "Answer" in answer
    compared = client.predict(TEXT, MODEL, "maxcount", STEPS, 0, 50, "words", api_name="/compare")
    assert compared[5]["headers"][1:] == ["IG", "DIG", "UDIG", "SIG"] and "lower is better" in compared[6]
    summary, anchors, plot = client.predict(TEXT, MODEL, "witty", "maxcount", STEPS, 0, 50, "words", api_name="/path")
    assert "witty" in summary and anchors["data"][0][1] == "witty"
    words = client.predict(TEXT, MODEL, api_name="/words")
    assert words is not None
    cost = client.predict(TEXT, MODEL, "udig", STEPS, 0, True, api_name="/cost")  # before a sequential run
    assert cost.startswith("⏱️ UDIG moves each of") and f"× {STEPS + 2} =" in cost


def test_client_share_and_export(client):
    link = client.predict(TEXT, MODEL, *VALUES, api_name="/share_sentiment")
    assert link.startswith("?s=")
    for name, args in [
        ("/share_qa", ("q?", "ctx", UNTRAINED_QA_MODEL, *VALUES)),
        ("/share_compare", (TEXT, MODEL, "maxcount", STEPS, 0, 50, "words")),
        ("/share_path", (TEXT, MODEL, "witty", "maxcount", STEPS, 0, 50, "words")),
    ]:
        assert client.predict(*args, api_name=name).startswith("?s=")
    files, card = client.predict(TEXT, MODEL, *VALUES, api_name="/export")
    assert len(files) == 7 and all(Path(f).is_file() for f in files) and "Example explanation" in card
    files = client.predict("who?", "Bob did.", UNTRAINED_QA_MODEL, *VALUES, api_name="/export_qa")
    assert sorted(Path(f).suffix for f in files) == sorted([".json", ".csv", ".png", ".svg"] * 2)


def _raw_call(client, api_name: str, data: list) -> dict:
    """POST an API call as any HTTP client may send it (JSON escapes: lone surrogates, too few values)."""
    base = f"{client.src.rstrip('/')}/gradio_api/call/{api_name}"
    body = json.dumps({"data": data}).encode()  # ASCII JSON: "\ud800" travels as an escape
    request = urllib.request.Request(base, data=body, headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{base}/{event}", timeout=120).read().decode()
    kind, payload = re.findall(r"event: (\w+)\ndata: (.*)", stream)[-1]
    return {"event": kind, **(json.loads(payload) if payload.startswith("{") else {"data": json.loads(payload)})}


@pytest.mark.parametrize(
    ("api_name", "args", "message"),
    [
        (
            "/explain",
            (TEXT, MODEL, "udig", "maxcount", "abc", 0, 50, "paper default", "words"),
            "Steps must be a whole number, got 'abc'",
        ),
        ("/explain", (None, MODEL, *VALUES), "empty"),
        ("/explain", (TEXT, MODEL, "udig", "maxcount", STEPS, 0, 50, "paper default", 7), "Unknown candidates 7"),
        ("/compare", (TEXT, MODEL, "maxcount", 8.5, 0, 50, "words"), "whole number"),
        ("/explain_qa", ("Who?", "", UNTRAINED_QA_MODEL, *VALUES), "context is empty"),
        pytest.param(
            "/path",
            (TEXT, MODEL, "banana", "maxcount", STEPS, 0, 50, "words"),
            "not in the input",
            marks=pytest.mark.slow,  # the path tab runs DIG (its graph) before it looks for the word
        ),
        ("/share_path", (TEXT, MODEL, "w", "maxcount", "1e9", 0, 50, "words"), "between 2 and 100"),
        ("/explain", (TEXT, PAYLOADS[0], *VALUES), '&lt;h1 style="font-size:80px"&gt;HACKED&lt;/h1&gt;'),
    ],
)
def test_client_wrong_values_get_the_uis_messages(client, api_name, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api_name)
    assert message in str(caught.value) and "upstream" not in str(caught.value)


def test_client_missing_values_default_and_raw_calls_are_readable(client):
    runtime = client.predict(TEXT, MODEL, "udig", "maxcount", None, None, None, None, None, api_name="/explain")[-1]
    assert "UDIG" in runtime  # None: the control's default
    few = _raw_call(client, "explain", [TEXT, MODEL])
    assert few["event"] == "error" and few["error"].startswith(
        "This endpoint takes 11 values (Text, Sentiment model, Method"
    )
    older = _raw_call(client, "explain", [TEXT, MODEL, *VALUES])  # a call from before the rule control: still served
    assert older["event"] == "complete" and "left sum" in older["data"][-1]
    lone = _raw_call(client, "explain", ["\ud800 broken", MODEL, *VALUES])
    assert lone["event"] == "error" and "not valid Unicode" in lone["error"]
    for api_name, data in (("share_sentiment", [TEXT, "\udfff", *VALUES]), ("words", ["\ud800", MODEL])):
        answer = _raw_call(client, api_name, data)
        assert answer["event"] == "error" and "not valid Unicode" in answer["error"], answer
    link = client.predict("a " * 30_000, MODEL, *VALUES, api_name="/share_sentiment")
    assert len(link) < 300  # cut to the text limit, as the UI


# -- python app.py ------------------------------------------------------------------------------------


@pytest.mark.slow  # a Python process starting the whole app
def test_python_app_py_serves_offline_on_localhost(tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "UDIG_WARMUP": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_SERVER_NAME", None)
    log = (tmp_path / "app.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = None
        while time.perf_counter() - started < 60 and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    page = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.25)
        elapsed = time.perf_counter() - started
        assert page is not None, (tmp_path / "app.log").read_text()[-2000:]
        print(f"python app.py answered after {elapsed:.1f} s")  # a figure for the log; speed lives in benchmarks/
        names = {d.get("api_name") for d in page["dependencies"]}
        assert {"explain", "explain_qa", "compare", "path", "export"} <= names
        listening = _listening_addresses(port)  # what the kernel accepts connections on, whatever the host name
        assert listening and all(address.is_loopback for address in listening), listening
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the sockets listening on ``port``, from Linux's /proc/net/tcp and tcp6 (hex, each
    32-bit word little-endian); IPv4 addresses mapped into IPv6 count as IPv4."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reading listening sockets needs Linux's /proc/net/tcp")
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        rows = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
            found.add(ipaddress.ip_address(raw))
    return {getattr(a, "ipv4_mapped", None) or a for a in found}


def test_the_default_server_name_is_loopback_and_a_public_one_is_not(monkeypatch):
    """The bound-address check above can fail: it reads 0.0.0.0 as not loopback, and an app told to serve
    everywhere is told so."""
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert ipaddress.ip_address(app.launch_kwargs()["server_name"]).is_loopback
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert not ipaddress.ip_address(app.launch_kwargs(AppConfig.from_env())["server_name"]).is_loopback
    with socket.socket() as everywhere:
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        assert not any(a.is_loopback for a in _listening_addresses(everywhere.getsockname()[1]))
