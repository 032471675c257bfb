"""The demo: handlers as plain functions, then the launched app through gradio_client, endpoint by endpoint.

MiniLM (from its PyPI package, conftest's seeded heads) stands in for the trained default so the tests do
not depend on it; steps are small (8) to keep the module well under a minute after the DIG graph is built.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from udig.app import UNTRAINED_QA_MODEL, AppConfig, Demo, Limits, links, qa_notice, service, views
from udig.app.content import QA_EXAMPLE
from udig.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MODEL = "test/minilm"
STEPS = 8
SETTINGS = ("udig", "maxcount", STEPS, 0, 50, "paper default", "words")
TEXT = "A gorgeous, witty, seductive movie."
INJECTION = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> boring'


def make_demo(classifier, qa, **config) -> Demo:
    """A Demo over the given (model, tokenizer) pairs, small defaults, no example cache."""
    options = dict(
        sentiment_models=(MODEL,), qa_models=(UNTRAINED_QA_MODEL,), cache_examples=False,
        defaults=Settings.make(steps=STEPS, candidates="words"), limits=Limits(max_chars=1000, max_tokens=64),
    )
    options.update(config)
    demo = Demo(AppConfig(**options))
    demo.service.registry.register(MODEL, lambda: classifier)
    demo.service.registry.register(UNTRAINED_QA_MODEL, lambda: qa)
    return demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(minilm, minilm_qa) -> Demo:
    return make_demo(minilm, minilm_qa)


# -- handlers as plain functions ----------------------------------------------------------------------


def test_explain_shows_label_words_table_scores_and_runtime(demo):
    label, highlight, legend, tokens, scores, runtime = demo.explain(TEXT, MODEL, *SETTINGS)
    assert set(label) == {"negative", "positive"} and sum(label.values()) == pytest.approx(1.0)
    assert "".join(text for text, _ in highlight) == TEXT  # shown on the original text
    words = [text for text, score in highlight if score is not None]
    assert words == ["A", "gorgeous", ",", "witty", ",", "seductive", "movie", "."]
    assert max(abs(score) for _, score in highlight if score is not None) == pytest.approx(1.0)
    assert "toward" in legend and "away" in legend
    assert isinstance(tokens, pd.DataFrame) and tokens["token"].iloc[0] == "[CLS]"
    assert list(scores["score"]) == ["Log-odds", "Comprehensiveness", "Sufficiency", "Completeness error |Δ|"]
    assert list(scores["better"]) == ["lower", "higher", "lower", "closer to 0"]
    assert scores["value"].notna().all()
    assert "UDIG" in runtime and " s" in runtime and "Δ" in runtime


def test_results_are_cached_and_reused_by_export(demo):
    demo.explain(TEXT, MODEL, *SETTINGS)
    started = time.perf_counter()
    files, card = demo.export(TEXT, MODEL, *SETTINGS)
    assert time.perf_counter() - started < 1.0  # no recomputation
    names = sorted(Path(f).name for f in files)
    assert names == sorted(["udig-udig.json", "udig-udig.csv", "udig-udig.html", "udig-udig-model-card.md", "udig-udig-model-card.html"])
    document = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert document["inputs"]["text"] == TEXT and document["inputs"]["steps"] == STEPS and document["inputs"]["model"] == MODEL
    assert document["explanation"]["offsets"][1] == [0, 1] and "versions" in document
    assert set(document["metrics"]) == {"log_odds", "comprehensiveness", "sufficiency", "completeness_error"}
    assert card.startswith("### Example explanation")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("   ", MODEL, *SETTINGS), "empty"),
        ((TEXT, MODEL, "shap", *SETTINGS[1:]), "unknown method"),
        ((TEXT, MODEL, "udig", "maxcount", 10**6, 0, 50, "paper default", "words"), "steps must be between"),
        ((TEXT, MODEL, "udig", "maxcount", "many", 0, 50, "paper default", "words"), "whole number"),
        ((TEXT, MODEL, "dig", "maxcount", 100, 3, 50, "paper default", "words"), "path points"),
        ((TEXT, "someone/else", *SETTINGS), "not offered"),
        ((TEXT, MODEL, "udig", "maxcount", STEPS, 0, 50, "notaword", "words"), "not in the vocabulary"),
        ((None, MODEL, *SETTINGS), "empty"),
        ((42, MODEL, *SETTINGS), "must be text"),
    ],
)
def test_bad_input_is_a_readable_error(demo, args, message):
    with pytest.raises(gr.Error) as caught:
        demo.explain(*args)
    assert message in caught.value.message.lower() or message in caught.value.message
    assert "Traceback" not in caught.value.message


def test_the_offline_default_model_explains():
    from udig.models import DEFAULT_MODEL, ModelLoadError, load_model

    try:
        load_model()
    except ModelLoadError as error:
        pytest.skip(f"the offline default model is not available: {error}")
    real = Demo(AppConfig(sentiment_models=(DEFAULT_MODEL,), qa_models=(UNTRAINED_QA_MODEL,), cache_examples=False))
    label, highlight, _, _, scores, runtime = real.explain(TEXT, DEFAULT_MODEL, "udig", "maxcount", 30, 1, 50, "paper default", "words")
    assert max(label, key=label.get) == "positive" and label["positive"] > 0.8  # a trained model, a clear review
    assert "63 path points" in runtime and scores["value"].notna().all()


def test_unknown_model_offline_says_what_to_do(minilm, minilm_qa):
    open_demo = make_demo(minilm, minilm_qa, allow_any_model=True)
    with pytest.raises(gr.Error) as caught:
        open_demo.explain(TEXT, "distilbert-base-uncased-finetuned-sst-2-english", *SETTINGS)
    assert caught.value.title == "Model not available"
    assert "offline" in caught.value.message.lower() or "hub" in caught.value.message.lower()


def test_long_input_is_cut_with_a_visible_notice(demo):
    text = ("a quietly moving film " * 80).strip()  # 1759 characters, ~320 tokens
    _, highlight, _, tokens, _, runtime = demo.explain(text, MODEL, *SETTINGS)
    assert "shortened to its first" in runtime and "truncated" in runtime
    assert len(tokens) == 64
    shown = "".join(t for t, _ in highlight)
    assert len(shown) <= 1000 and text.startswith(shown)


def test_injection_strings_stay_text(demo):
    label, highlight, legend, tokens, scores, runtime = demo.explain(INJECTION, MODEL, *SETTINGS)
    assert "".join(t for t, _ in highlight) == INJECTION  # HighlightedText renders strings as text
    assert "<script" not in legend and "<img" not in runtime
    files, card = demo.export(INJECTION, MODEL, *SETTINGS)
    page = Path(next(f for f in files if f.endswith(".html") and "card" not in f)).read_text()
    assert re.search(r"<\s*(script|img)\b", page) is None
    assert re.search(r"(?<!\\)<", card) is None  # every < in the Markdown card is escaped
    assert INJECTION in html.unescape(re.sub(r"<[^>]+>", "", page))  # shown as text, character for character


def test_compare_uses_one_scale_and_marks_winners(demo):
    ig, dig, udig, legend, table, bars, summary = demo.compare(TEXT, MODEL, "maxcount", STEPS, 0, 50, "words")
    peaks = [max(abs(s) for _, s in h if s is not None) for h in (ig, dig, udig)]
    assert max(peaks) == pytest.approx(1.0) and all(p <= 1.0 for p in peaks)
    assert list(table["method"]) == ["IG", "DIG", "UDIG"]
    stars = table.drop(columns=["method", "seconds"]).apply(lambda col: col.str.contains("★").sum())
    assert (stars >= 1).all()  # a winner for every score
    assert set(bars["method"]) == {"IG", "DIG", "UDIG"} and len(bars) == 12
    assert set(bars["score"]) <= set(views.BAR_ORDER)
    assert "One colour scale" in summary


def test_path_lists_anchors_and_distances(demo):
    summary, anchors, distances = demo.path(TEXT, MODEL, "2: witty", "maxcount", STEPS, 0, 50, "words")
    assert "witty" in summary
    assert list(anchors.columns) == ["step (0 = input word)", "DIG anchor", "UDIG anchor"]
    assert anchors.iloc[0, 1] == "witty" and anchors.iloc[0, 2] == "witty" and len(anchors) == STEPS + 1
    assert set(distances["method"]) == {"IG", "DIG", "UDIG"}
    for method, group in distances.groupby("method"):
        assert group["position"].min() == 0 and group["position"].max() == 1
        assert group.sort_values("position")["distance"].iloc[0] == pytest.approx(0.0, abs=1e-3)  # starts on the word
    summary, _, _ = demo.path(TEXT, MODEL, "", "maxcount", STEPS, 0, 50, "words")  # empty: most influential word
    assert "Word **" in summary
    with pytest.raises(gr.Error, match="not in the input"):
        demo.path(TEXT, MODEL, "banana", "maxcount", STEPS, 0, 50, "words")


def test_large_paths_are_not_kept_in_the_cache(demo, monkeypatch):
    monkeypatch.setattr(service, "PATH_CACHE_BYTES", 0)
    text = "Paths this big are dropped from the cache."
    demo.explain(text, MODEL, *SETTINGS)
    cached = demo.service.compute("classification", MODEL, {"text": text}, demo.config.settings(*SETTINGS))
    assert cached.explanation.path is None
    summary, anchors, _ = demo.path(text, MODEL, "big", "maxcount", STEPS, 0, 50, "words")  # recomputed
    assert "big" in summary and anchors.iloc[0, 2] == "big"


def test_words_lists_the_choices(demo):
    update = demo.words("Unbelievably dull, isn't it?", MODEL)
    assert [c[0] for c in update.choices] == ["0: Unbelievably", "1: dull", "2: ,", "3: isn't", "4: it", "5: ?"]
    assert demo.words("", MODEL).choices == []
    assert demo.words("some text", "not/offered").choices == []  # silent: it runs on every keystroke


def test_qa_explains_start_and_end(demo):
    question, context = QA_EXAMPLE
    answer, start, end, legend, scores, runtime = demo.explain_qa(question, context, UNTRAINED_QA_MODEL, *SETTINGS)
    assert answer.startswith("**Answer:**")
    assert "".join(t for t, _ in start) == f"{question}\n{context}" == "".join(t for t, _ in end)
    assert list(scores.columns)[:3] == ["score", "start logit", "end logit"] and scores["start logit"].notna().all()
    assert "untrained" in runtime and "[MASK]" in legend


def test_qa_tab_explains_itself_offline(demo, minilm, minilm_qa):
    notice = qa_notice(demo.config)
    assert "No trained question-answering model is on this machine" in notice and "UDIG_QA_MODEL" in notice and "HF_HUB_OFFLINE" in notice
    mixed = make_demo(minilm, minilm_qa, qa_models=(MODEL,))
    assert qa_notice(mixed.config) == ""
    with pytest.raises(gr.Error, match="question-answering"):
        mixed.explain_qa("who?", "Bob.", MODEL, *SETTINGS)


def test_share_link_round_trip(demo):
    layout = [("sentiment", f) for f in ("text", "model", "method", "strategy", "steps", "factor", "nbrs", "baseline", "candidates")]
    query = demo.share_sentiment(INJECTION, MODEL, "dig", "greedy", 12, 1, 20, "mask", "all")
    assert query.startswith("?s=") and len(query) < 400
    tab, values, notices = links.restore(demo.config, layout, {"s": query[3:]})
    assert tab == "sentiment" and not notices
    assert values[("sentiment", "text")] == INJECTION
    assert values[("sentiment", "method")] == "dig" and values[("sentiment", "steps")] == 12
    assert values[("sentiment", "candidates")] == "all" and values[("sentiment", "baseline")] == "mask"


def test_restore_never_raises(demo):
    layout = [("sentiment", "text"), ("sentiment", "steps"), ("sentiment", "model"), ("compare", "text")]
    assert links.restore(demo.config, layout, {}) == (None, {}, [])
    tab, values, notices = links.restore(demo.config, layout, {"s": "not-a-valid-state"})
    assert tab is None and "could not be read" in notices[0]
    tab, values, notices = links.restore(demo.config, layout, {"tab": "sentiment", "text": "plain link", "steps": "9999", "model": "evil/model"})
    assert tab == "sentiment" and values == {("sentiment", "text"): "plain link"} and len(notices) == 2
    bomb = links._encode_state({"tab": "compare", "text": "x" * 200_000})
    assert links.restore(demo.config, layout, {"s": bomb})[0] is None  # over the size limit: refused, no crash
    values = links.load_values(demo.config, layout, {"tab": "compare", "text": "hello"})
    assert values[1] == "compare" and values[-1] == "hello" and isinstance(values[3], dict)  # gr.skip() for the rest


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
    assert module.gpu is FakeSpaces.GPU and calls == [{"duration": 120}]


# -- the launched app through gradio_client -----------------------------------------------------------


@pytest.fixture(scope="module")
def client(demo):
    from gradio_client import Client

    import app

    blocks = app.build_demo(demo=demo)
    port = free_port()
    blocks.launch(**{**app.launch_kwargs(), "server_port": port}, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        blocks.close()


ENDPOINTS = ["/explain", "/explain_qa", "/compare", "/path", "/words", "/export",
             "/share_sentiment", "/share_qa", "/share_compare", "/share_path"]


def test_every_named_endpoint_is_listed(client):
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(ENDPOINTS) <= set(named)
    assert not any("autorun" in name or "on_load" in name for name in named)


def test_client_explain(client):
    label, highlight, legend, tokens, scores, runtime = client.predict(TEXT, MODEL, *SETTINGS, api_name="/explain")
    assert label["label"] in ("negative", "positive")
    assert [item["token"] for item in highlight][:2] == ["A", " "]
    assert len(scores["data"]) == 4 and "UDIG" in runtime


def test_client_errors_are_messages(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("", MODEL, *SETTINGS, api_name="/explain")


def test_client_qa_compare_path_words(client):
    question, context = QA_EXAMPLE
    answer, *_ = client.predict(question, context, UNTRAINED_QA_MODEL, *SETTINGS, api_name="/explain_qa")
    assert "Answer" in answer
    compared = client.predict(TEXT, MODEL, "maxcount", STEPS, 0, 50, "words", api_name="/compare")
    assert [row[0] for row in compared[4]["data"]] == ["IG", "DIG", "UDIG"]
    summary, anchors, plot = client.predict(TEXT, MODEL, "witty", "maxcount", STEPS, 0, 50, "words", api_name="/path")
    assert "witty" in summary and anchors["data"][0][1] == "witty"
    words = client.predict(TEXT, MODEL, api_name="/words")
    assert words is not None


def test_client_share_and_export(client):
    link = client.predict(TEXT, MODEL, *SETTINGS, api_name="/share_sentiment")
    assert link.startswith("?s=")
    for name, args in [
        ("/share_qa", ("q?", "ctx", UNTRAINED_QA_MODEL, *SETTINGS)),
        ("/share_compare", (TEXT, MODEL, "maxcount", STEPS, 0, 50, "words")),
        ("/share_path", (TEXT, MODEL, "witty", "maxcount", STEPS, 0, 50, "words")),
    ]:
        assert client.predict(*args, api_name=name).startswith("?s=")
    files, card = client.predict(TEXT, MODEL, *SETTINGS, api_name="/export")
    assert len(files) == 5 and all(Path(f).is_file() for f in files) and "Example explanation" in card


# -- python app.py ------------------------------------------------------------------------------------


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
        print(f"python app.py answered after {elapsed:.1f} s")
        assert elapsed < 30
        names = {d.get("api_name") for d in page["dependencies"]}
        assert {"explain", "explain_qa", "compare", "path", "export"} <= names
        with pytest.raises(OSError):  # bound to 127.0.0.1 only
            ip = socket.gethostbyname(socket.gethostname())
            if ip.startswith("127."):
                raise OSError("no other interface to test")
            urllib.request.urlopen(f"http://{ip}:{port}/config", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
