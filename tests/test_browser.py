"""The demo in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

Screenshots of every tab go to ``tests/output/browser/`` for a human to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_app import INJECTION, MODEL, STEPS, free_port, make_demo

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent / "output" / "browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TIMEOUT = 120_000  # ms: the first DIG run builds the vocabulary graph

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: `apt-get install chromium` to run browser tests"),
]


@pytest.fixture(scope="module")
def demo(minilm, minilm_qa):
    return make_demo(minilm, minilm_qa)


@pytest.fixture(scope="module")
def url(demo):
    import app

    blocks = app.build_demo(demo=demo)
    port = free_port()
    blocks.launch(**{**app.launch_kwargs(), "server_port": port}, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots():
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    return OUTPUT


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#sentiment-explain")


def wait_for_text(page, selector: str, needle: str) -> None:
    page.wait_for_function(
        "([selector, needle]) => { const el = document.querySelector(selector); return !!el && el.innerText.includes(needle); }",
        arg=[selector, needle],
    )


def set_steps(page) -> None:
    """Open the visible tab's Advanced accordion and type the small test step count."""
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_text("Advanced").first.click()
    box = panel.get_by_label("number input for Steps").first
    box.fill(str(STEPS))
    box.press("Enter")


def test_explain_a_typed_sentence(page, url, demo, shots):
    open_app(page, url)
    set_steps(page)
    text = page.locator("#sentiment-text textarea")
    text.fill("A tender, funny and thoroughly charming film.")
    page.click("#sentiment-explain")
    wait_for_text(page, "#sentiment-runtime", "path points")
    highlight = page.locator("#sentiment-highlight").inner_text()
    for word in ("tender", "funny", "thoroughly", "charming", "film"):
        assert word in highlight
    assert "##" not in highlight  # words, not word pieces
    label = page.locator("#sentiment-label").inner_text()
    assert "negative" in label and "positive" in label and "%" in label
    scores = page.locator("#sentiment-scores").inner_text()
    for name in ("Log-odds", "Comprehensiveness", "Sufficiency", "Completeness error"):
        assert name in scores
    factor = demo.config.defaults.factor
    assert f"{2**factor * (STEPS + 1) + 1} path points" in page.locator("#sentiment-runtime").inner_text()
    page.screenshot(path=shots / "sentiment.png", full_page=True)
    assert not page.errors


def test_copied_link_reopens_the_same_explanation(page, url, browser, demo, shots):
    sentence = "A shared link should bring this exact sentence back."
    query = demo.share_sentiment(sentence, MODEL, "ig", "greedy", STEPS, 0, 50, "pad", "all")
    page.goto(url + query)
    wait_for_text(page, "#sentiment-runtime", "path points")  # restored and run on load
    assert page.locator("#sentiment-text textarea").input_value() == sentence
    assert "IG" in page.locator("#sentiment-runtime").inner_text()
    assert "bring" in page.locator("#sentiment-highlight").inner_text()
    # the Copy link button makes the same kind of link from what is on screen
    page.get_by_text("Share and export").first.click()
    page.get_by_role("button", name="🔗 Copy link").first.click()
    link_box = page.get_by_placeholder("a link that reopens this explanation").first
    page.wait_for_function("(el) => el.value.startsWith('http')", arg=link_box.element_handle())
    link = link_box.input_value()
    assert link.startswith(url + "?s=")
    other = browser.new_page()
    other.set_default_timeout(TIMEOUT)
    other.goto(link)
    wait_for_text(other, "#sentiment-runtime", "path points")
    assert other.locator("#sentiment-text textarea").input_value() == sentence
    assert other.locator("#sentiment-highlight").inner_text() == page.locator("#sentiment-highlight").inner_text()
    other.screenshot(path=shots / "shared-link.png", full_page=True)
    other.close()


def test_screenshot_of_every_tab(page, url, shots):
    open_app(page, url)
    runs = {
        "Question answering": ("#qa-explain", "#qa-answer", "Answer"),
        "Compare methods": ("#compare-run", "#compare-summary", "colour scale"),
        "See the path": ("#path-run", "#path-summary", "Anchors run"),
    }
    for tab in ("Question answering", "Compare methods", "See the path", "About"):
        page.get_by_role("tab", name=tab).click()
        if tab in runs:
            button, output, needle = runs[tab]
            set_steps(page)
            page.click(button)
            wait_for_text(page, output, needle)
        if tab == "Question answering":
            assert "No trained question-answering model is on this machine" in page.locator("#qa-notice").inner_text()
        page.wait_for_timeout(500)  # let plots draw
        page.screenshot(path=shots / f"{tab.lower().replace(' ', '-')}.png", full_page=True)
    assert "★" in page.get_by_role("tab", name="Compare methods").evaluate("() => document.querySelector('#compare-table').innerText")
    assert not page.errors


def test_injection_renders_as_text(page, url, demo, shots):
    open_app(page, url)
    set_steps(page)
    page.locator("#sentiment-text textarea").fill(INJECTION)
    page.click("#sentiment-explain")
    wait_for_text(page, "#sentiment-runtime", "path points")
    assert page.evaluate("() => window.__pwned") is None
    highlight = page.locator("#sentiment-highlight")
    shown = "".join(highlight.text_content().split())  # the component pads each piece with spaces
    assert "".join(INJECTION.split()) in shown  # every character of the input, shown as text
    assert highlight.locator("img, script").count() == 0
    page.screenshot(path=shots / "injection.png", full_page=True)
    # the same through a link: restored into the text box, never into the page
    page.goto(url + demo.share_sentiment(INJECTION, MODEL, "ig", "maxcount", STEPS, 0, 50, "pad", "words"))
    wait_for_text(page, "#sentiment-runtime", "path points")
    assert page.locator("#sentiment-text textarea").input_value() == INJECTION
    page.goto(url + "?tab=%3Cimg%20src%3Dx%20onerror%3D%22window.__pwned%3D3%22%3E")
    page.wait_for_selector("#sentiment-explain")
    page.wait_for_timeout(1000)
    assert page.evaluate("() => window.__pwned") is None
    assert "Unknown tab" in page.inner_text("body")
