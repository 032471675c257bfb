"""Model-card exports: the highlight as PNG and SVG, and the Markdown/HTML snippet that embeds it.

Card renderers (the Hub's among them) may strip inline ``style`` colours, so the card shows an image of the
highlight; these tests check that the image is a real one, drawn with the same words and colours as the HTML.
"""

from __future__ import annotations

import html
import io
import re
import struct
import threading
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    DEMO_MODEL,
    DEMO_STEPS,
    UNBELIEVABLE,
    UNBELIEVABLE_TOKENS,
    RenderedPage,
    injected,
    make_demo,
    rendered,
    spans,
)
from conftest import make_explanation as make

from udig import render
from udig.app import links
from udig.render import exports

SVG = "{http://www.w3.org/2000/svg}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_texts(data: bytes) -> list[str]:
    root = ElementTree.fromstring(data)  # raises on anything that is not well-formed XML
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def svg_fills(data: bytes) -> set[tuple[str, float]]:
    """(hex colour, opacity) of every filled shape, as matplotlib writes them in ``style``."""
    fills = set()
    for style in re.findall(rb'style="([^"]*)"', data):
        found = dict(part.split(": ", 1) for part in style.decode().split("; ") if ": " in part)
        if "fill" in found and found["fill"].startswith("#"):
            fills.add((found["fill"], round(float(found.get("fill-opacity", 1)), 3)))
    return fills


def expected_fills(explanation) -> set[tuple[str, float]]:
    """What :func:`render.colour` gives each visible (non-zero) word of the highlight."""
    out = set()
    for _, score in render.highlight_value(explanation):
        if score:
            r, g, b, a = re.findall(r"[\d.]+", render.colour(score))
            out.add((f"#{int(r):02x}{int(g):02x}{int(b):02x}", round(float(a), 3)))
    return out


def test_png_is_a_sized_image_with_the_highlight_colours(sample):
    import matplotlib.image

    data = render.highlight_image(sample, "png")
    width, height = png_size(data)
    assert width == 1200 and 150 < height < 1000  # 8 in at 150 dpi; a few lines tall
    pixels = (matplotlib.image.imread(io.BytesIO(data), format="png")[..., :3] * 255).round().astype(int)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 20 and (colours == 255).all(axis=1).any()  # a white page with text and shades on it
    for word, score in render.highlight_value(sample):
        if score and abs(score) * 4 % 1:  # a shade that is not one of the legend's
            *rgb, alpha = (float(v) for v in re.findall(r"[\d.]+", render.colour(score)))
            on_white = np.array([alpha * c + (1 - alpha) * 255 for c in rgb])
            assert (np.abs(colours - on_white) <= 1.5).all(axis=1).any(), (word, score)  # its box, as render.colour


def test_svg_has_every_word_as_text_and_the_html_colours(sample):
    data = render.highlight_image(sample, "svg")
    texts = svg_texts(data)
    for word in render.words(sample):
        assert word.text in texts, word.text
    assert any("positive" in t for t in texts) and any("test/model" in t for t in texts)  # label, model
    assert any("away from positive" in t for t in texts) and any("toward positive" in t for t in texts)  # legend
    assert expected_fills(sample) <= svg_fills(data)


def test_long_text_wraps_onto_more_lines(sample):
    long = make(
        UNBELIEVABLE * 8,
        [(t, a + 42 * k, b + 42 * k) for k in range(8) for t, a, b in spans(UNBELIEVABLE, UNBELIEVABLE_TOKENS)],
        [0.1] * 15 * 8,
    )
    assert len(UNBELIEVABLE) == 42
    short_height, long_height = png_size(render.highlight_image(sample))[1], png_size(render.highlight_image(long))[1]
    assert long_height > short_height + 100
    root = ElementTree.fromstring(render.highlight_image(long, "svg"))
    lines = {round(float(t.get("y"))) for t in root.iter(f"{SVG}text") if t.text in ("film", "unbelievable")}
    assert len(lines) >= 3


def test_a_newline_in_the_text_starts_a_new_line():
    text = "good film\nbad plot"
    explanation = make(
        text, [("good", 0, 4), ("film", 5, 9), ("bad", 10, 13), ("plot", 14, 18)], [0.5, 0.1, -0.5, -0.1]
    )
    y = {
        t.text: float(t.get("y"))
        for t in ElementTree.fromstring(render.highlight_image(explanation, "svg")).iter(f"{SVG}text")
    }
    assert (
        y["good"] == pytest.approx(y["film"], abs=0.5)
        and y["bad"] > y["film"] + 5
        and y["bad"] == pytest.approx(y["plot"], abs=0.5)
    )


def test_svg_keeps_markup_typed_by_users_as_text():
    explanation = injected()  # words like "<script>alert(1)</script>" and the label "<b>pos</b>"
    data = render.highlight_image(explanation, "svg")
    root = ElementTree.fromstring(data)
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("script", "img", "foreignObject", "a")]
    assert not any(name.startswith("on") for e in root.iter() for name in e.attrib)
    texts = svg_texts(data)
    assert "<script>alert(1)</script>" in texts and any("<b>pos</b>" in t for t in texts)
    assert all(word.text in texts for word in render.words(explanation))
    assert b"<script" not in data and b"&lt;script&gt;" in data


def test_unknown_image_format_is_refused(sample):
    with pytest.raises(ValueError, match="png or svg"):
        render.highlight_image(sample, "gif")


def test_concurrent_drawings_do_not_disturb_each_other(sample):
    results: dict[str, bytes] = {}

    def draw(name: str, fmt: str) -> None:
        results[name] = render.highlight_image(sample, fmt)

    threads = [threading.Thread(target=draw, args=(f"{fmt}{i}", fmt)) for i in range(3) for fmt in ("png", "svg")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({results[f"svg{i}"] for i in range(3)}) == 1 and len({results[f"png{i}"] for i in range(3)}) == 1
    assert "unbelievable" in svg_texts(results["svg0"])


def test_markdown_card_embeds_the_image_under_model_examination_and_links_back(sample):
    card = render.model_card(sample, fmt="markdown", image="udig-udig.png", link="?s=abc_-1")
    lines = card.splitlines()
    assert lines[0] == "### Model examination"
    heading = lines.index("### Model examination")
    image = next(i for i, line in enumerate(lines) if line.startswith("!["))
    assert heading < image and lines[image].endswith("](udig-udig.png)")
    assert "[Open this example in the udig demo](?s=abc_-1)" in lines
    plain = render.model_card(sample, fmt="markdown")
    assert "![" not in plain and "udig demo" not in plain and plain.startswith("### Model examination")


def test_card_links_are_encoded_and_only_web_links():
    sample = injected()  # its label is "<b>pos</b>": it goes into the image's alt text
    card = render.model_card(sample, fmt="markdown", image="my image (1).png", link="https://x.hf.space/?s=a b")
    assert "](my%20image%20%281%29.png)" in card and "(https://x.hf.space/?s=a%20b)" in card
    assert re.search(r"(?<!\\)<", card) is None
    page = render.model_card(sample, fmt="html", image='a"b.png', link="https://x.hf.space/?s=1&t=2")
    assert 'src="a%22b.png"' in page and 'href="https://x.hf.space/?s=1&amp;t=2"' in page
    assert "<b>pos</b>" not in page
    for bad in ("javascript:alert(1)", "data:text/html,<script>", "JavaScript:x"):
        with pytest.raises(ValueError, match="refusing"):
            render.model_card(sample, link=bad)


# -- the export handler ---------------------------------------------------------------------------------


def test_export_writes_the_images_and_a_card_that_uses_them(minilm, minilm_qa):
    demo = make_demo(minilm, minilm_qa)
    text = "A gorgeous, witty, seductive movie."
    fields = dict(text=text, model=DEMO_MODEL, method="udig", steps=DEMO_STEPS, baseline="paper default")
    files, card = demo.export(**fields)
    by_name = {Path(f).name: Path(f) for f in files}
    assert {"udig-udig.png", "udig-udig.svg", "udig-udig-model-card.md", "udig-udig-model-card.html"} <= set(by_name)
    assert len({p.parent for p in by_name.values()}) == 1  # side by side, as the card refers to them
    assert png_size(by_name["udig-udig.png"].read_bytes())[0] == 1200
    assert "gorgeous" in svg_texts(by_name["udig-udig.svg"].read_bytes())
    assert card == by_name["udig-udig-model-card.md"].read_text(encoding="utf-8")
    assert "](udig-udig.png)" in card and card.startswith("### Model examination")
    query = re.search(r"\]\((\?s=[\w-]+)\)", card).group(1)
    assert query == demo.share_sentiment(**fields)
    state = links._decode_state(query.removeprefix("?s="))
    assert state["tab"] == "sentiment" and state["text"] == text and state["steps"] == DEMO_STEPS
    page = by_name["udig-udig-model-card.html"].read_text(encoding="utf-8")
    assert 'src="udig-udig.png"' in page and f'href="{query}"' in page


def test_on_a_space_the_card_links_to_the_space_itself(minilm, minilm_qa, monkeypatch):
    from udig.app.config import AppConfig

    monkeypatch.setenv("SPACE_HOST", "someone-udig.hf.space")
    assert AppConfig.from_env().public_url == "https://someone-udig.hf.space/"
    monkeypatch.setenv("SPACE_HOST", "evil.example/<script>")
    assert AppConfig.from_env().public_url is None  # not a host name: the link stays relative
    demo = make_demo(minilm, minilm_qa, public_url="https://someone-udig.hf.space/")
    _, card = demo.export(text="A gorgeous film.", model=DEMO_MODEL, steps=DEMO_STEPS)
    assert re.search(r"\]\(https://someone-udig\.hf\.space/\?s=[\w-]+\)", card)


# -- user text stays text under an autolinking renderer (issue 31) --------------------------------------


HOSTILE = (
    "See https://1522067521/x, https://evil%2Eexample/p, www.evil.com, someone@evil.com, "
    "[x](javascript:alert(1)) ![i](http://x/y.png) <a href=x> `tick` | pipe."
)


def hostile_explanation():
    """HOSTILE as an Explanation whose punctuation scores highest, with a link-like label and model name."""
    pieces = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", HOSTILE)]
    values = [0.9 if not text[0].isalnum() else 0.01 * (i % 7) for i, (text, _, _) in enumerate(pieces)]
    settings = {"n_points": 8, "model": "evil.com/m`[x](javascript:y)"}
    return make(HOSTILE, pieces, values, target_label="www.evil.com", settings=settings)


def links_and_images(parsed: RenderedPage) -> list[tuple[str, str]]:
    return [(tag, attrs.get("href") or attrs.get("src")) for tag, attrs in parsed.tags if tag in ("a", "img")]


def test_card_words_leave_punctuation_out():
    explanation = hostile_explanation()
    kept = exports.content_words(explanation)
    assert kept and all(re.search(r"\w", w.text) for w in kept)
    assert {w.text for w in render.words(explanation)} - {w.text for w in kept} == set("/:.%,@[]()!<>=`|")
    assert exports.is_content_word("😀") and not exports.is_content_word("…")


def test_card_words_leave_special_tokens_typed_into_the_text_out():
    text = "good [SEP] film [PAD] [MASK] [UNK]"
    pieces = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]  # as a tokenizer reads them
    explanation = make(text, pieces, [0.1] * len(pieces))  # [CLS]/[SEP] around it, baseline [MASK]
    assert [w.text for w in exports.content_words(explanation)] == ["good", "film", "[PAD]", "[UNK]"]
    assert [w.text for w in exports.content_words(explanation, ["[PAD]", "[UNK]"])] == ["good", "film"]


def test_markdown_card_shows_user_text_as_text_under_linkify():
    card = render.model_card(hostile_explanation(), image="udig-udig.png", link="https://x.hf.space/?s=abc")
    parsed = rendered(card, markdown=True)
    assert links_and_images(parsed) == [("img", "udig-udig.png"), ("a", "https://x.hf.space/?s=abc")]
    assert not [tag for tag, _ in parsed.tags if tag == "code"]
    visible = "".join(parsed.text)
    assert HOSTILE in visible and "www.evil.com" in visible and "evil.com/m`[x](javascript:y)" in visible


def test_html_card_shows_user_text_as_text_under_linkify():
    card = render.model_card(hostile_explanation(), fmt="html", image="udig-udig.png", link="https://x.hf.space/")
    for markdown in (True, False):  # pasted into a README, or opened as a page
        parsed = rendered(card, markdown=markdown)
        assert links_and_images(parsed) == [("img", "udig-udig.png"), ("a", "https://x.hf.space/")], markdown
        assert "evil.com/m`[x](javascript:y)" in "".join(parsed.text)


def test_card_top_words_leave_punctuation_out():
    for fmt in ("markdown", "html"):
        card = render.model_card(hostile_explanation(), fmt=fmt, top=5)
        words = re.findall(r"^\| (.+?) \| [+-]\d", card, re.M) or re.findall(r"<code>(.*?)</code> \(", card)
        assert len(words) == 5 and all(re.search(r"\w", html.unescape(w)) for w in words), (fmt, words)
