"""Holes a visitor's probe found in the demo (issue 32): a token limit above the model's own, uploads of any size,
labels that said less than the truth. On a tiny model, so they run in seconds; the page itself is in
test_browser.py, the colours in test_render.py.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import replace
from pathlib import Path

import gradio as gr
import httpx
import pytest
from conftest import DEMO_MODEL, DEMO_TEXT, make_demo, tiny_bert

from udig import Explainer
from udig.app import UNTRAINED_QA_MODEL, AppConfig, Limits, evaluation, links, qa_notice, service, views
from udig.app import config as app_config
from udig.app.content import ABOUT, QA_EXAMPLE, RULE_LABELS
from udig.integrate import RULES
from udig.methods import PATH_METHODS, REGISTRY
from udig.metrics import top_k_count, top_k_positions
from udig.models import CURATED_MODELS, DEFAULT_MODEL, IMDB_MODEL, ModelLoadError, assets_dir
from udig.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

LONG = " ".join(["a good film"] * 40)  # 120 words: more than the tiny model's 40 positions
FIELDS = dict(method="ig", strategy="maxcount", steps=4, factor=0, nbrs=10, baseline="paper default")
PATH_FIELDS = dict(strategy="maxcount", steps=4, factor=0, nbrs=10, candidates="words")


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


# -- numbers with a yardstick -----------------------------------------------------------------------------


def test_the_scores_say_how_many_tokens_top_20_percent_is_and_stand_beside_the_sanity_baselines(demo):
    _, _, notes, _, scores, _ = demo.explain(text=DEMO_TEXT, model=DEMO_MODEL, **FIELDS)
    length = len(demo.tokenizer(DEMO_MODEL)(DEMO_TEXT)["input_ids"])
    k = top_k_count(length)
    assert k <= 3 and f"<b>{k} of {length} tokens</b>" in notes  # a short input: the page says so...
    assert "identical log-odds" in notes and "AOPC" in notes  # ...and where to look instead
    meanings = dict(zip(scores["score"], scores["meaning"]))
    assert f"top 20 % (here {k} of {length} tokens)" in meanings["Log-odds"]
    assert list(scores.columns) == ["score", "value", "better", "meaning"]  # as before: the API's table
    yardstick = notes[notes.index('<table class="udig-yardstick"') :]
    assert [header for header in re.findall(r"<th[^>]*>([^<]*)</th>", yardstick) if header] == [
        "this method",
        "random",
        "grad × input",
    ]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", yardstick)]
    assert len(cells) == 5  # the faithfulness scores (the baselines have no path, so no completeness error)
    for column, method in ((2, "random"), (3, "grad-input")):  # the library's own baselines, on the same input
        reference = demo.service.compute(
            "classification", DEMO_MODEL, {"text": DEMO_TEXT}, Settings.make(method=method)
        )
        expected = [f"{v:+.3f}".replace("-", "−") for k, v in reference.scores[""].items() if v is not None]
        assert [row[column] for row in cells] == expected, method
    assert [row[1] for row in cells] == [f"{v:+.3f}".replace("-", "−") for v in list(scores["value"])[:5]]


def test_the_sanity_baselines_share_the_explanations_gpu_window(demo, monkeypatch):
    """On ZeroGPU each attribute() call is a GPU request from the visitor's quota: the yardsticks ride along."""
    calls = []
    attribute = service.attribute
    monkeypatch.setattr(service, "attribute", lambda *args: calls.append(args[-1]) or attribute(*args))
    demo.explain(text="Yet another sentence to explain.", model=DEMO_MODEL, **FIELDS)
    assert calls == [evaluation.REFERENCES]  # one call, the references with it
    demo.export(text="Yet another sentence to explain.", model=DEMO_MODEL, **FIELDS)
    assert len(calls) == 1  # the export reuses the cached result, references and all


def test_compare_says_when_every_method_ranks_the_same_top_tokens(demo, monkeypatch):
    same = views.same_top  # the comparison's own test of equal top-k sets, on results built to agree
    results = {
        m: demo.service.compute("classification", DEMO_MODEL, {"text": DEMO_TEXT}, Settings.make(method=m))
        for m in ("ig", "udig")
    }
    tops = {
        m: top_k_positions(r.explanation.attributions, top_k_count(len(r.explanation.tokens)))
        for m, r in results.items()
    }
    assert (same(results) == ["IG", "UDIG"]) == (tops["ig"] == tops["udig"])
    agreeing = {
        m: replace(r, explanation=replace(r.explanation, attributions=results["ig"].explanation.attributions))
        for m, r in results.items()
    }
    assert same(agreeing) == ["IG", "UDIG"]
    assert "IG and UDIG put the same" in views.reading_notes(10, same_top=same(agreeing))


def test_the_shipped_evaluation_finding_is_the_evaluations_summary():
    summary = json.loads((ROOT / "docs" / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    assert evaluation.shipped_finding() == evaluation.finding(summary)
    assert (assets_dir() / evaluation.FINDING_FILE).is_file()  # in assets/: the wheel and the Space carry it


def test_the_page_shows_what_the_evaluation_found_for_the_chosen_method_on_its_model():
    found = evaluation.shipped_finding()
    udig = AppConfig(sentiment_models=(found["model"],), qa_models=("x",)).settings({"method": "udig"})
    lines = evaluation.finding_lines(found["model"], udig, "UDIG (MaxCount)")
    scores = found["methods"]["udig-maxcount:words"]
    heading, *lines = lines
    assert heading.startswith(f"What {found['n_examples']} Rotten Tomatoes sentences found for this model")
    assert lines[0].startswith("UDIG (MaxCount): log-odds ") and len(lines) == 3  # the method, random, grad × input
    low, high = (f"{scores['log_odds'][end]:+.2f}".replace("-", "−") for end in ("low", "high"))
    assert f"[{low}, {high}]" in lines[0]
    assert lines[1].startswith("Random:") and lines[2].startswith("Gradient × input:")
    assert evaluation.finding_lines("another/model", udig, "UDIG") == []  # found on another model: not shown
    typed = udig.replace(baseline="unk")
    assert evaluation.evaluated_name(typed) == "udig-maxcount:words@unk"  # as the evaluation writes it...
    assert evaluation.finding_lines(found["model"], typed, "UDIG") == []  # ...and never evaluated


@pytest.mark.slow  # DIG's graph of MiniLM (the tiny vocabulary has too few words for one)
def test_the_path_plot_and_the_words_agree_about_dig(minilm, minilm_qa):
    """DIG's anchors are words; its path points are the anchors made monotone, which can lie far from words:
    the plot shows both series and the summary and About say which is which."""
    summary, _, distances = make_demo(minilm, minilm_qa).path(text=DEMO_TEXT, model=DEMO_MODEL, word="", **PATH_FIELDS)
    by_series = distances.groupby("method")["distance"]
    assert {"DIG", "DIG anchor words", "UDIG", "UDIG anchor words", "IG"} == set(by_series.groups)
    assert by_series.max()["DIG anchor words"] < 1e-2  # real words (candidates "words"): on a word
    assert by_series.mean()["DIG"] > 10 * by_series.max()["DIG anchor words"]  # the points it integrates over: not
    assert "made monotone" in summary and "anchor word" in summary
    about = " ".join(ABOUT.split())
    assert (
        "hops from word to word" not in about and "gradients are taken at these moved points, not at the words" in about
    )


# -- visitor messages carry no developer text ------------------------------------------------------------

DEVELOPER_WORDS = re.compile(r"load_model|UDIG_|HF_HUB|Error -3|decompress|zlib|Traceback|\w+Error\b")


def test_a_model_that_fails_to_load_is_a_plain_sentence(demo, monkeypatch):
    def broken(name):
        raise ModelLoadError(
            f"udig's {name} model files are missing from /srv/x (reinstall udig or set UDIG_DEFAULT_MODEL_DIR); "
            "udig's built-in offline sentiment model is 'x' (load_model() with no argument)."
        )

    monkeypatch.setattr(demo.service.registry, "model", broken)
    monkeypatch.setattr(demo.service.registry, "explainer", broken)
    with pytest.raises(gr.Error) as caught:
        demo.explain(text="A sentence no earlier test explained.", model=DEMO_MODEL, **FIELDS)  # not cached
    assert caught.value.title == "Model not available" and DEMO_MODEL in caught.value.message
    assert not DEVELOPER_WORDS.search(caught.value.message) and "/srv" not in caught.value.message


def test_an_unexpected_library_error_is_a_plain_sentence(demo, monkeypatch):
    def corrupt(*args, **kwargs):
        raise zlib.error("Error -3 while decompressing data: incorrect header check")

    monkeypatch.setattr(demo.service, "compute", corrupt)
    with pytest.raises(gr.Error) as caught:
        demo.explain(text="Another sentence no earlier test explained.", model=DEMO_MODEL, **FIELDS)
    assert "went wrong" in caught.value.message and not DEVELOPER_WORDS.search(caught.value.message)


def test_a_damaged_link_and_a_model_not_offered_say_so_in_plain_words(demo):
    damaged = base64.urlsafe_b64encode(b"certainly not zlib data").decode()
    for query in ({"s": damaged}, {"s": "!!!"}, {"s": base64.urlsafe_b64encode(zlib.compress(b"{oops")).decode()}):
        _, _, notices = links.restore(demo.config, [("sentiment", "text")], query)
        assert notices == [
            "The shared link could not be read (it is damaged or was cut short when copied); showing the defaults."
        ], notices
    with pytest.raises(gr.Error) as caught:
        demo.explain(text=DEMO_TEXT, model="someone/else", **FIELDS)
    assert "not offered" in caught.value.message and not DEVELOPER_WORDS.search(caught.value.message)


def test_the_qa_notice_speaks_to_visitors(demo):
    notice = qa_notice(replace(demo.config, qa_models=(UNTRAINED_QA_MODEL,)))
    assert "untrained" in notice and not DEVELOPER_WORDS.search(notice) and "`" not in notice


# -- only models that can load are offered ------------------------------------------------------------------


@pytest.mark.parametrize("hub", [False, True])
def test_sentiment_models_that_cannot_load_here_are_not_offered(monkeypatch, hub):
    at_hand = {"someone/cached"}
    monkeypatch.setattr(app_config, "hub_usable", lambda: hub)
    monkeypatch.setattr(app_config, "model_at_hand", lambda name: name in at_hand)
    monkeypatch.setenv("UDIG_SENTIMENT_MODELS", f"someone/missing,someone/cached,{DEFAULT_MODEL}")
    offered = AppConfig.from_env().sentiment_models
    assert offered == (("someone/missing",) if hub else ()) + ("someone/cached", DEFAULT_MODEL)
    monkeypatch.setenv("UDIG_SENTIMENT_MODELS", "someone/missing")
    assert AppConfig.from_env().sentiment_models == (("someone/missing",) if hub else (DEFAULT_MODEL,))
    monkeypatch.delenv("UDIG_SENTIMENT_MODELS")
    curated = AppConfig.from_env().sentiment_models  # the curated list: offline, only the built-in models
    assert curated == (DEFAULT_MODEL, IMDB_MODEL, *(CURATED_MODELS["sentiment"] if hub else ()))


# -- any-model mode: a visitor's name is a Hub id, never a server folder ---------------------------------------


@pytest.fixture(scope="module")
def model_folder(tiny, tmp_path_factory):
    """A loadable model folder on the server (the tiny classifier, saved)."""
    folder = tmp_path_factory.mktemp("server") / "model"
    model, tokenizer = tiny
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_visitors_model_name_never_opens_a_server_folder(tiny, model_folder, monkeypatch):
    from udig.app import handlers

    monkeypatch.setattr(handlers, "hub_usable", lambda: True)  # the Hub reachable: the case that told folders apart
    told: list[str] = []
    monkeypatch.setattr(gr, "Info", lambda message, **kwargs: told.append(message))
    open_demo = make_demo(tiny, tiny, allow_any_model=True)
    question, context = QA_EXAMPLE
    answers = {}
    for typed in (str(model_folder), str(model_folder.parent / "missing"), "/root"):
        with pytest.raises(gr.Error) as caught:  # a real model folder does not load when a visitor names it
            open_demo.explain_qa(question=question, context=context, model=typed, **FIELDS)
        assert caught.value.title == "Model not available" and not told  # no "Downloading ..." for a non-Hub name
        answers[typed] = re.sub(r"“[^”]*”", "NAME", caught.value.message)
    assert len(set(answers.values())) == 1, answers  # the same words for a folder that exists and one that does not
    assert "is not a model name" in answers["/root"]
    with pytest.raises(gr.Error, match="is not a model name"):
        open_demo.explain(text=DEMO_TEXT, model=str(model_folder), **FIELDS)
    listed = make_demo(tiny, tiny, sentiment_models=(DEMO_MODEL, str(model_folder)), allow_any_model=True)
    label, *_ = listed.explain(text=DEMO_TEXT, model=str(model_folder), **FIELDS)  # the operator's folder loads
    assert sum(label.values()) == pytest.approx(1.0)


# -- work over a few seconds says what it is doing ----------------------------------------------------------


def test_compare_shows_which_method_runs(demo, monkeypatch):
    shown: list[tuple] = []
    monkeypatch.setattr(gr, "Progress", lambda: lambda progress, desc=None, unit=None: shown.append((progress, desc)))
    results, _ = demo._path_methods({"text": DEMO_TEXT, "model": DEMO_MODEL, **FIELDS}, ("ig", "sig"))
    assert set(results) == {"ig", "sig"}
    methods = [(progress, desc) for progress, desc in shown if desc.endswith(("of 1", "of 2"))]  # not points, stages
    assert methods == [((0, 2), "IG, method 1 of 2"), ((1, 2), "SIG, method 2 of 2")]


def test_a_run_tells_how_many_of_its_path_points_are_done(demo, monkeypatch):
    explainer = demo.service.registry.explainer(DEMO_MODEL)
    monkeypatch.setattr(explainer, "internal_batch_size", 2)  # points through the model two at a time
    counted: list[tuple[int, int]] = []
    for rule, evaluations in (("riemann_left", 4), ("riemann_trapezoid", 5)):  # 4 steps: 5 points, 4 or 5 gradients
        settings = Settings.make(method="ig", steps=4, rule=rule)
        demo.service.compute(
            "classification", DEMO_MODEL, {"text": f"Counting by {rule}."}, settings, count=lambda *c: counted.append(c)
        )
        assert counted == [(min(done, evaluations), evaluations) for done in range(2, evaluations + 2, 2)], rule
        counted.clear()
    shown: list[str] = []
    monkeypatch.setattr(gr, "Progress", lambda: lambda progress, desc=None, unit=None: shown.append(desc))
    demo._path_methods({"text": "Counted on the Compare tab.", "model": DEMO_MODEL, **FIELDS}, ("ig",))
    assert shown == [
        "IG, method 1 of 1",
        "IG, method 1 of 1: gradients at 2 of 4 points",
        "IG, method 1 of 1: gradients at 4 of 4 points",
    ]


# -- a visitor's own Hub model: vetted before any download, a few in memory, one load at a time --------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def fake_hub(model_folder, monkeypatch, tmp_path):
    """The Hub as the demo sees it, from local folders: vetting reads a folder as :func:`udig.hub.hub_model_files`
    reads a repository (``owner/name`` -> ``folders[name]``, at commit SHA or the revision asked for), and
    ``snapshot_download`` records what it was asked and hands the folder back."""
    import huggingface_hub

    from udig import hub

    folders = {"someone/tiny": model_folder, "someone/other": model_folder}
    downloads: list[dict] = []

    def vet_hub_model(name, revision=None, limits=None, token=None):
        assert token is False  # a visitor's model is looked up without the server's token: public models only
        hub.check_model_id(name, revision)
        if name not in folders:
            raise hub.ModelRefused(f"There is no public model called “{name}” on the Hugging Face Hub.")
        facts = replace(hub.folder_model_files(folders[name], name), revision=revision or SHA)
        return hub.vet(facts, limits or hub.VettingLimits())

    def snapshot_download(repo_id, **kwargs):
        downloads.append({"repo_id": repo_id, **kwargs})
        return str(folders[repo_id])

    monkeypatch.setattr(hub, "vet_hub_model", vet_hub_model)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(service, "hub_usable", lambda: True)
    return folders, downloads


def test_a_visitor_loads_a_vetted_hub_model_exactly_as_vetted(tiny, fake_hub, tmp_path):
    from udig import hub

    folders, downloads = fake_hub
    model_folder = folders["someone/tiny"]
    (model_folder / "pytorch_model.bin").write_bytes(b"pickled")  # in the repository, never fetched
    try:
        demo = make_demo(tiny, tiny, allow_any_model=True)
        picker, status = demo.load_sentiment_model(name=" someone/tiny ", revision="")
        key = f"someone/tiny@{SHA}"
        assert status == f"✅ Loaded {views.literal(key)}: it is now this tab's model."
        assert picker.value == key and picker.choices[-1] == (key, key)
        vetted = hub.vet(replace(hub.folder_model_files(model_folder, "someone/tiny"), revision=SHA))
        fetched = {"repo_id": "someone/tiny", "revision": SHA, "allow_patterns": list(vetted.files), "token": False}
        assert downloads == [fetched]  # exactly the vetted files at the vetted commit, never with the server's token
        assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(vetted.files)
        assert "pytorch_model.bin" not in vetted.files  # the pickled weights stay on the Hub
        label, *_ = demo.explain(text=DEMO_TEXT, model=key, **FIELDS)
        assert sum(label.values()) == pytest.approx(1.0)
        assert demo.service.registry.revision(key) == f"Hub commit {SHA}"
        made = links.made_by({"s": demo.share_sentiment(text=DEMO_TEXT, model=key, **FIELDS)[3:]})
        assert made["revision"] == f"Hub commit {SHA}" and "check" in made
        picker, status = demo.load_sentiment_model(name="someone/tiny", revision="")  # loaded: not fetched again
        assert picker.value == key and len(downloads) == 1
    finally:
        (model_folder / "pytorch_model.bin").unlink()


def test_a_refused_model_shows_vettings_sentence_as_is(tiny, fake_hub, tmp_path):
    from udig import hub

    folders, downloads = fake_hub
    demo = make_demo(tiny, tiny, allow_any_model=True)
    picker, status = demo.load_sentiment_model(name="someone/absent", revision="")
    assert picker == gr.skip() and status == "⚠️ " + views.literal(
        "There is no public model called “someone/absent” on the Hugging Face Hub."
    )
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for path in folders["someone/tiny"].iterdir():
        if path.name != "model.safetensors":
            (pickled / path.name).write_bytes(path.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"pickled")
    folders["someone/pickled"] = pickled
    _, status = demo.load_sentiment_model(name="someone/pickled", revision="")
    sentence = str(pytest.raises(hub.ModelRefused, hub.vet, hub.folder_model_files(pickled, "someone/pickled")).value)
    assert "safetensors" in sentence and status == "⚠️ " + views.literal(sentence)
    _, status = demo.load_qa_model(name="someone/tiny", revision="")  # a classifier, in the QA tab
    assert "load it in the Sentiment tab" in status
    _, status = demo.load_sentiment_model(name="../../etc", revision="")
    assert "is not a model name" in status
    assert downloads == []  # nothing refused was downloaded
    closed = make_demo(tiny, tiny)
    with pytest.raises(gr.Error, match="only the models in its list"):
        closed.load_sentiment_model(name="someone/tiny")


def test_offline_the_field_says_the_hub_cannot_be_reached(tiny, fake_hub, monkeypatch):
    _, downloads = fake_hub
    monkeypatch.setattr(service, "hub_usable", lambda: False)
    demo = make_demo(tiny, tiny, allow_any_model=True)
    _, status = demo.load_sentiment_model(name="someone/tiny", revision="")
    assert status == "⚠️ " + views.literal(service.HUB_UNREACHABLE.format(model="“someone/tiny”"))
    assert downloads == []


def test_a_few_visitor_models_stay_the_least_recently_used_leaves(tiny, fake_hub):
    demo = make_demo(tiny, tiny, allow_any_model=True, max_visitor_models=1)
    registry = demo.service.registry
    demo.explain(text=DEMO_TEXT, model=DEMO_MODEL, **FIELDS)
    first = demo.load_sentiment_model(name="someone/tiny")[0].value
    second = demo.load_sentiment_model(name="someone/other", revision="v1")[0].value
    assert second == "someone/other@v1" and registry.loaded(second)
    assert not registry.loaded(first) and registry.loaded(DEMO_MODEL)  # the operator's models stay
    label, *_ = demo.explain(text=DEMO_TEXT, model=first, **FIELDS)  # a link to it loads it again (vetted)
    assert registry.loaded(first) and not registry.loaded(second) and sum(label.values()) == pytest.approx(1.0)


def test_visitor_models_load_one_at_a_time(tiny, fake_hub, monkeypatch):
    import threading
    import time

    import huggingface_hub

    _, downloads = fake_hub
    fetch = huggingface_hub.snapshot_download
    running, most = [0], [0]

    def slow(repo_id, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.3)
        running[0] -= 1
        return fetch(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", slow)
    demo = make_demo(tiny, tiny, allow_any_model=True)
    threads = [
        threading.Thread(target=demo.load_sentiment_model, kwargs={"name": name})
        for name in ("someone/tiny", "someone/other")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(downloads) == 2 and most[0] == 1  # the second waited for the first
    monkeypatch.setattr(service, "LOAD_WAIT_S", 0.01)
    demo.service.registry._visitor_load.acquire()  # a load under way that does not end in time
    try:
        _, status = demo.load_sentiment_model(name="someone/tiny", revision="v2")
    finally:
        demo.service.registry._visitor_load.release()
    assert "Another visitor" in status and "try again" in status


def test_any_model_is_on_by_default_and_its_memory_is_capped(monkeypatch):
    monkeypatch.delenv("UDIG_ALLOW_ANY_MODEL", raising=False)
    monkeypatch.delenv("UDIG_MAX_LOADED_MODELS", raising=False)
    config = AppConfig.from_env()
    assert config.allow_any_model and config.max_visitor_models == 2
    monkeypatch.setenv("UDIG_ALLOW_ANY_MODEL", "0")
    monkeypatch.setenv("UDIG_MAX_LOADED_MODELS", "5")
    config = AppConfig.from_env()
    assert not config.allow_any_model and config.max_visitor_models == 5
