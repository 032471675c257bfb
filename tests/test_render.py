"""udig.render: word grouping through offsets, highlight values, escaping and exports (no model needed)."""

from __future__ import annotations

import csv
import io
import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import UNBELIEVABLE, injected, spans
from conftest import make_explanation as make

from udig import render


def test_subwords_are_summed_into_words(sample):
    words = render.words(sample)
    assert [w.text for w in words] == ["An", "unbelievable", ",", "isn't", "it", "?", "Well-made", "film", "."]
    by_text = {w.text: w for w in words}
    assert by_text["unbelievable"].attribution == pytest.approx(1.0)
    assert by_text["isn't"].attribution == pytest.approx(-0.3)
    assert by_text["Well-made"].attribution == pytest.approx(0.4)
    assert by_text["unbelievable"].tokens == (2, 3, 4)  # positions in the token list ([CLS] is 0)
    for w in words:  # every word is an exact slice of the text
        assert UNBELIEVABLE[w.start : w.end] == w.text


def test_highlight_covers_the_text_exactly_once_and_is_scaled(sample):
    value = render.highlight_value(sample)
    assert "".join(text for text, _ in value) == UNBELIEVABLE
    scores = [s for _, s in value if s is not None]
    assert max(abs(s) for s in scores) == pytest.approx(1.0)
    assert all(-1 <= s <= 1 for s in scores)
    assert dict(value)["unbelievable"] == pytest.approx(1.0)
    assert dict(value)["isn't"] == pytest.approx(-0.3)
    assert all(s is None for t, s in value if t.strip() == "")  # whitespace is never highlighted


def test_shared_scale_uses_the_largest_word_of_all(sample):
    half = make(
        sample.text,
        [(t, a, b) for t, (a, b) in zip(sample.tokens[1:-1], sample.offsets[1:-1])],
        [v / 2 for v in sample.attributions[1:-1]],
    )
    scale = render.shared_scale([sample, half])
    assert scale == pytest.approx(1.0)
    assert dict(render.highlight_value(half, scale=scale))["unbelievable"] == pytest.approx(0.5)
    assert dict(render.highlight_value(half))["unbelievable"] == pytest.approx(1.0)


def test_all_zero_attributions_do_not_divide_by_zero():
    e = make("a b", [("a", 0, 1), ("b", 2, 3)], [0.0, 0.0])
    assert render.highlight_value(e) == [("a", 0.0), (" ", None), ("b", 0.0)]
    assert render.shared_scale([e]) == 0.0


def test_truncated_tail_is_shown_unhighlighted():
    text = "good movie but long tail"
    e = make(text, [("good", 0, 4), ("movie", 5, 10)], [0.5, -0.5], truncated=True)
    value = render.highlight_value(e)
    assert "".join(t for t, _ in value) == text
    assert value[-1] == (" but long tail", None)


def test_real_tokenizer_offsets_group_words():
    from transformers import AutoTokenizer

    from udig.models import base_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir()))
    text = "Unbelievably dull, isn't it?"
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    n = len(enc["input_ids"])
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    pieces = [
        (t, a, b)
        for t, (a, b), special in zip(tokens, enc["offset_mapping"], enc["special_tokens_mask"])
        if not special
    ]
    assert len(pieces) == n - 2
    e = make(text, pieces, [1.0] * len(pieces))
    words = render.words(e)
    assert [w.text for w in words] == ["Unbelievably", "dull", ",", "isn't", "it", "?"]
    assert len(words[0].tokens) > 1  # a word made of several word pieces, shown once
    assert sum(len(w.tokens) for w in words) == n - 2


def _byte_level_bpe():
    """A byte-level BPE tokenizer (GPT-2's and RoBERTa's kind) trained on a few sentences: characters it has no
    piece for, such as an emoji, are split into one piece per byte, and every piece spans the whole character."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(
        ["a gorgeous film", "a moving film, gorgeous and witty", "the film was fine"], trainer
    )
    return tokenizer


def test_byte_level_pieces_of_one_character_are_one_word():
    text = "a gorgeous 🎬 film"
    encoding = _byte_level_bpe().encode(text)
    pieces = [(token, a, b) for token, (a, b) in zip(encoding.tokens, encoding.offsets)]
    emoji = text.index("🎬")
    shared = [p for p in pieces if p[1:] == (emoji, emoji + 1)]
    assert len(shared) == 4  # the emoji's four UTF-8 bytes, each a piece spanning the whole character
    e = make(text, pieces, [0.1] * len(pieces))
    words = render.words(e)
    assert [w.text for w in words] == ["a", "gorgeous", "🎬", "film"]
    marks = [i for i, (token, a, b) in enumerate(pieces) if a == b]  # the lone Ġ before the emoji: no characters
    assert len(marks) == 1 and pieces[marks[0]][0] == "Ġ"
    assert len(words[2].tokens) == 4 + 1 and words[2].attribution == pytest.approx(0.5)  # the bytes and the Ġ
    value = render.highlight_value(e)
    assert "".join(text for text, _ in value) == text  # the emoji is shown once, not once per byte


def test_qa_segment_keeps_only_that_part():
    question, context = "who?", "Bob did."
    text = f"{question}\n{context}"
    e = make(
        text,
        [("who", 0, 3), ("?", 3, 4), ("bob", 5, 8), ("did", 9, 12), (".", 12, 13)],
        [0.1, 0.0, 0.9, 0.2, 0.0],
        segments={"question": (0, 4), "context": (5, 13)},
    )
    assert [w.text for w in render.words(e, segment="context")] == ["Bob", "did", "."]
    value = render.highlight_value(e, segment="context")
    assert "".join(t for t, _ in value) == context
    with pytest.raises(ValueError, match="segment"):
        render.words(e, segment="answer")


def test_word_at_accepts_index_label_and_text(sample):
    words = render.words(sample)
    assert render.word_at(words, None).text == "unbelievable"  # largest |attribution|
    assert render.word_at(words, "").text == "unbelievable"
    assert render.word_at(words, 7).text == "film"
    assert render.word_at(words, "7: film").text == "film"
    assert render.word_at(words, "FILM").text == "film"
    with pytest.raises(ValueError, match="not in the input"):
        render.word_at(words, "banana")
    with pytest.raises(ValueError, match="out of range"):
        render.word_at(words, 99)
    for odd in ("²: film", "9" * 5000 + ": film", "x" * 100_000):  # a non-ASCII digit, a huge index, a huge word
        with pytest.raises(ValueError, match="not in the input") as refused:
            render.word_at(words, odd)
        assert len(str(refused.value)) < 200


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize(
    "producer",
    [
        lambda e: render.highlight_html(e),
        lambda e: render.standalone_html(e, metrics={"log_odds": -0.5}),
        lambda e: render.model_card(e, fmt="html"),
        lambda e: render.legend_html(e.target_label),
    ],
)
def test_html_outputs_escape_user_text(producer):
    html = producer(injected())
    parser = _Collector()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert "onerror" not in parser.attrs
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html or "&lt;b&gt;" in html


def test_text_between_words_is_escaped_in_html():
    """Text no token covers (a truncated tail, characters a tokenizer drops) reaches the HTML as text only."""
    text = 'good <img src=x onerror="alert(1)"> & <b>bold</b>\nfilm'
    e = make(text, [("good", 0, 4), ("film", text.index("film"), len(text))], [0.5, -0.5])
    html = render.highlight_html(e)
    parser = _Collector()
    parser.feed(html)
    assert parser.tags == ["span", "span", "br", "span", "span"]  # each word and its value, the newline: nothing else
    assert "".join(parser.text) == text.replace("\n", "").replace("good", "good (+1.00)").replace(
        "film", "film (-1.00)"
    )  # every character between the words shown as typed


def test_standalone_html_is_self_contained(sample):
    page = render.standalone_html(
        sample, metrics={"log_odds": -1.0, "comprehensiveness": 0.3, "sufficiency": 0.1, "completeness_error": 0.01}
    )
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page.split("<body>")[0]
    assert "Comprehensiveness" in page and "unbelievable" in page
    assert render.colour(1.0) in page and render.colour(-0.3) in page  # "unbelievable" red, "isn't" blue


def test_markdown_card_escapes_and_keeps_tables_intact(sample):
    card = render.model_card(injected(), metrics={"log_odds": -0.5, "completeness_error": 0.1}, fmt="markdown")
    assert "<script>" not in card and "&#60;script&#62;" in card  # character references: text in every renderer
    for line in card.splitlines():
        if line.startswith("| Completeness"):
            assert line.count(" | ") == 2  # the |Δ| in the name is escaped, the table keeps 3 columns
    with pytest.raises(ValueError):
        render.model_card(sample, fmt="pdf")


def test_json_export_has_inputs_tokens_offsets_scores_settings_versions(sample):
    document = json.loads(
        render.to_json(sample, metrics={"log_odds": float("nan")}, inputs={"text": sample.text, "method": "udig"})
    )
    assert document["format"] == "udig-explanation/1"
    assert document["inputs"]["method"] == "udig"
    e = document["explanation"]
    assert e["tokens"] == sample.tokens and e["offsets"] == [list(o) for o in sample.offsets]
    assert e["scores"] == pytest.approx(sample.scores) and e["settings"]["n_points"] == 32
    assert "path" not in e
    assert document["metrics"]["log_odds"] is None  # NaN becomes null: valid JSON
    assert {"udig", "torch", "transformers", "python"} <= set(document["versions"])
    assert [w["text"] for w in document["words"]][:2] == ["An", "unbelievable"]


def test_csv_export_one_row_per_token_and_no_formulas():
    text = "=cmd +1 -x @a ok"
    pieces = spans(text, ["=", "cmd", "+", "1", "-", "x", "@", "a", "ok"])
    e = make(text, pieces, [0.1] * len(pieces))
    rows = list(csv.reader(io.StringIO(render.to_csv(e))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["position", "token", "start", "end"] and len(body) == len(e.tokens)
    for row in body:
        assert not row[1].startswith(("=", "+", "-", "@")) and not row[5].startswith(("=", "+", "-", "@"))
    assert body[1][1] == "'="
    assert float(body[1][7]) == pytest.approx(0.1)


def test_metric_rows_and_winners():
    results = {
        "ig": {"log_odds": -0.5, "comprehensiveness": 0.2, "sufficiency": 0.3, "completeness_error": 0.001},
        "dig": {"log_odds": -0.9, "comprehensiveness": 0.2, "sufficiency": 0.1, "completeness_error": 0.05},
        "udig": {"log_odds": -0.7, "comprehensiveness": 0.1, "sufficiency": None, "completeness_error": -0.0005},
    }
    best = render.winners(results)
    assert best == {
        "log_odds": ["dig"],
        "comprehensiveness": ["ig", "dig"],
        "sufficiency": ["dig"],
        "completeness_error": ["udig"],
    }
    rows = render.metric_rows(results["udig"])
    assert [r[0] for r in rows][:2] == ["Log-odds", "Comprehensiveness"]
    assert rows[2][1] is None and all(r[2] in ("lower", "higher", "closer to 0") for r in rows)


def test_label_value_and_token_rows(sample):
    assert render.label_value(sample, {0: "negative", 1: "positive"}) == {"negative": 0.2, "positive": 0.8}
    rows = render.token_rows(sample)
    assert len(rows) == len(sample.tokens) and rows[0][1] == "[CLS]" and rows[0][3] == 0
    assert rows[2][2] == "unbelievable"  # the token's word
    assert max(abs(r[5]) for r in rows) == pytest.approx(1.0)


def test_colour_is_clamped_and_signed():
    assert render.colour(2.0) == render.colour(1.0) == "rgba(232, 85, 61, 1.000)"
    assert render.colour(-0.5) == "rgba(137, 185, 232, 1.000)"  # white + (0.2 + 0.8 * 0.5) * (blue - white)
    assert render.colour(math.nan) == render.colour(0.0) == "rgba(255, 255, 255, 0.000)"


# -- every value without colour (issue 32) ------------------------------------------------------------


class _Words(HTMLParser):
    """(word, hover title, text after the word) for every ``udig-word`` span of a highlight."""

    def __init__(self):
        super().__init__()
        self.words: list[list[str]] = []
        self.inside: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inside.append(attrs.get("class", ""))
        if attrs.get("class") == "udig-word":
            self.words.append(["", attrs["title"], ""])

    def handle_endtag(self, tag):
        self.inside.pop()

    def handle_data(self, data):
        if self.inside and self.inside[-1] == "udig-word":
            self.words[-1][0] += data
        elif self.inside and self.inside[-1] == "udig-value":
            self.words[-1][2] += data


def test_every_highlighted_word_carries_its_value_as_text(sample):
    parser = _Words()
    parser.feed(render.highlight_html(sample))
    values = {  # the sample's summed attributions, by hand; "unbelievable" (1.0) is the largest
        "An": "+0.10",
        "unbelievable": "+1.00",
        ",": "-0.05",
        "isn't": "-0.30",
        "it": "+0.02",
        "?": "+0.00",
        "Well-made": "+0.40",
        "film": "+0.40",
        ".": "+0.01",
    }
    assert [(word, title) for word, title, _ in parser.words] == list(values.items())  # on hover
    assert [(word, text) for word, _, text in parser.words] == [(w, f" ({v})") for w, v in values.items()]  # read


# Machado, Oliveira & Fernandes (2009), "A physiologically-based model for simulation of color vision
# deficiency", severity 1.0: matrices on linear RGB.
CVD = {
    "normal vision": np.eye(3),
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
    ),
    "tritanopia": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]
    ),
}
WHITE, DARK = (255, 255, 255), (11, 15, 25)  # a light page; Gradio's dark theme


def _shown(css: str, background: tuple[int, int, int]) -> np.ndarray:
    """A ``rgba(r, g, b, a)`` colour as seen on ``background``: sRGB 0-255."""
    r, g, b, a = (float(v) for v in css[css.index("(") + 1 : css.index(")")].split(","))
    return a * np.array([r, g, b]) + (1 - a) * np.array(background)


def _linear(srgb: np.ndarray) -> np.ndarray:
    c = srgb / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(linear: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of a linear-RGB colour."""
    xyz_of_rgb = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    t = xyz_of_rgb @ np.clip(linear, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seen(css: str, deficiency: str = "normal vision", background=WHITE) -> np.ndarray:
    return _lab(CVD[deficiency] @ _linear(_shown(css, background)))


def _chroma(lab: np.ndarray) -> float:
    """ΔE to the grey of the same lightness: how far from neutral a colour looks."""
    return float(np.hypot(lab[1], lab[2]))


@pytest.mark.parametrize("deficiency", CVD)
def test_the_scale_ends_stay_apart_and_coloured_under_colour_vision_deficiencies(deficiency):
    toward, away = _seen(render.colour(1.0), deficiency), _seen(render.colour(-1.0), deficiency)
    white = _seen("rgba(255, 255, 255, 1)", deficiency)
    assert np.linalg.norm(toward - away) >= 40  # CIE76 ΔE: + and - never mistaken for each other
    for end in (toward, away):
        assert _chroma(end) >= 25, end  # neither end looks grey (the old purple: 16 under tritanopia)
        assert np.linalg.norm(end - white) >= 30  # nor like a word without a value


def _luminance(srgb: np.ndarray) -> float:
    return float(np.array([0.2126, 0.7152, 0.0722]) @ _linear(srgb))


def test_dark_text_stays_readable_on_both_ends():
    text = _luminance(np.array([17.0, 17.0, 17.0]))  # the highlight's #111
    for score in (1.0, -1.0):
        assert (_luminance(_shown(render.colour(score), WHITE)) + 0.05) / (text + 0.05) >= 4.5  # WCAG AA


@pytest.mark.parametrize("background", [WHITE, DARK])
def test_faint_values_keep_their_hue_on_any_page(background):
    for score in (0.05, -0.05):
        faint, end = _seen(render.colour(score), background=background), _seen(render.colour(math.copysign(1, score)))
        assert _chroma(faint) >= 10, (score, faint)  # tinted, not grey (the old 5 % alpha: chroma 3 on white)
        hue = math.degrees(math.atan2(faint[2], faint[1]) - math.atan2(end[2], end[1]))
        assert abs((hue + 180) % 360 - 180) <= 20  # the hue of its own end
