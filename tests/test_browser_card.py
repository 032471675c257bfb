"""The model-card export in a real browser: click Export, then load the exported PNG and SVG in the page.

Playwright drives Debian's Chromium (never a downloaded one) through conftest's ``page``, as in
tests/test_browser.py. The images are fetched through the links the Downloads component shows, the way a
visitor gets them.
"""

from __future__ import annotations

import re

import pytest
from conftest import BROWSER_OUTPUT, open_app, set_steps, wait_for_text

pytestmark = pytest.mark.browser  # conftest skips it without Chromium, and fails it where UDIG_REQUIRE_BROWSER=1

SENTENCE = "A tender, funny and thoroughly charming film."
WORDS = ("tender", "funny", "thoroughly", "charming", "film")

IMAGE_SIZE_JS = """async ([src, type]) => {
  const image = new Image();
  // Gradio serves SVG files as downloads (application/octet-stream): give the bytes their image type
  image.src = type ? URL.createObjectURL(new Blob([await (await fetch(src)).arrayBuffer()], {type})) : src;
  await image.decode();
  return [image.naturalWidth, image.naturalHeight];
}"""

SVG_TEXTS_JS = """async (src) => {
  const source = await (await fetch(src)).text();
  const svg = new DOMParser().parseFromString(source, "image/svg+xml");
  if (svg.querySelector("parsererror")) { return null; }
  return [...svg.querySelectorAll("text")].map((t) => t.textContent);
}"""


def download_link(page, suffix: str) -> str:
    link = page.locator(f"a[href$='{suffix}']").first
    link.wait_for()
    return link.evaluate("(a) => a.href")  # absolute, as the browser resolves it


def test_exported_card_image_loads_in_the_page(page, url):
    open_app(page, url)
    set_steps(page)
    page.locator("#sentiment-text textarea").fill(SENTENCE)
    page.get_by_text("Share and export").first.click()
    page.get_by_role("button", name=re.compile("^Export")).click()
    png, svg = download_link(page, "udig-udig.png"), download_link(page, "udig-udig.svg")

    width, height = page.evaluate(IMAGE_SIZE_JS, [png, None])
    assert width == 1200 and height > 100  # a decoded image, 8 in at 150 dpi
    assert min(page.evaluate(IMAGE_SIZE_JS, [svg, "image/svg+xml"])) > 0  # Chromium renders it
    texts = page.evaluate(SVG_TEXTS_JS, svg)
    assert texts is not None, "the exported SVG does not parse"
    for word in WORDS:
        assert word in texts, word
    assert any("away from" in t for t in texts) and any(t.startswith("Model ") for t in texts)  # legend, model

    wait_for_text(page, "body", "### Model examination")
    card = page.locator("body").inner_text()
    assert "](udig-udig.png)" in card and "?s=" in card

    # for a human: the exported PNG as a visitor's browser shows it
    page.set_content(f'<body style="margin:0;background:#fff"><img id="card" src="{png}"></body>')
    page.wait_for_function("() => document.getElementById('card').complete")
    BROWSER_OUTPUT.mkdir(parents=True, exist_ok=True)
    page.locator("#card").screenshot(path=BROWSER_OUTPUT / "model-card-image.png")
    assert not page.errors
