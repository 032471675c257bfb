"""Files: the explanation as JSON and CSV, with the versions of everything that shaped it; card-safe text.

:func:`card_text` is how user text (examples, words, labels) enters a model card, Markdown or HTML: as text in
every renderer, autolinkers included (see docs/cards.md). :func:`content_words` is what a card's word tables list.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import unicodedata
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any

from ..explanation import Explanation
from ..version import __version__
from .words import Word, max_abs, scaled, words


def versions() -> dict[str, str]:
    """Versions of everything that shapes a result, for exports."""
    import torch
    import transformers

    return {
        "udig": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(
    explanation: Explanation,
    *,
    metrics: dict[str, float | None] | None = None,
    inputs: dict[str, Any] | None = None,
) -> str:
    """Inputs, tokens, offsets, attributions and scores, words, settings, metrics and versions as JSON."""
    document = {
        "format": "udig-explanation/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": inputs or {"text": explanation.text},
        "explanation": explanation.to_dict(),
        "words": [
            {
                "index": w.index,
                "text": w.text,
                "start": w.start,
                "end": w.end,
                "tokens": list(w.tokens),
                "attribution": w.attribution,
            }
            for w in words(explanation)
        ],
        "metrics": metrics or {},
        "versions": versions(),
    }
    return json.dumps(_jsonable(document), indent=1, ensure_ascii=False)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (OWASP CSV injection); numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(explanation: Explanation) -> str:
    """One row per token: position, token, character span, word, special flag, attribution, scores."""
    word_of = {}
    for word in words(explanation):
        for i in word.tokens:
            word_of[i] = (word.index, word.text)
    scale = max_abs(explanation.attributions)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "position",
            "token",
            "start",
            "end",
            "word_index",
            "word",
            "special",
            "attribution",
            "score_l2",
            "score_maxabs",
        ]
    )
    for i, (token, (start, end), special, attribution, score) in enumerate(
        zip(
            explanation.tokens,
            explanation.offsets,
            explanation.special_mask,
            explanation.attributions,
            explanation.scores,
        )
    ):
        index, text = word_of.get(i, ("", ""))
        writer.writerow(
            [
                i,
                _cell(token),
                start,
                end,
                index,
                _cell(text),
                int(bool(special)),
                f"{attribution:.6g}",
                f"{score:.6g}",
                f"{scaled(attribution, scale):.4f}",
            ]
        )
    return out.getvalue()


_CARD_PLAIN = frozenset(",!?")  # ASCII punctuation left as typed: no Markdown, HTML or link syntax uses it alone


def card_text(text: Any) -> str:
    """``text`` for a Markdown or HTML card, shown as typed and never as markup, a link, an image or a mailto.

    Every ASCII punctuation character but ``, ! ?`` becomes a numeric character reference (``.`` -> ``&#46;``):
    Markdown and HTML syntax then has nothing to start on, and an autolinker (GFM's extension, markdown-it's
    linkify) never sees a scheme's ``:``, a domain's ``.`` or an address's ``@`` in one run of text, while
    every renderer shows the same characters. Markdown's backslash escapes leave ``https://1522067521/x`` linked,
    and an invisible joiner does too (markdown-it links ``a<ZWJ>.com``). Line breaks and tabs become spaces: a
    card line is one line.
    """
    return "".join(map(_card_char, str(text)))


def _card_char(c: str) -> str:
    if c.isspace():
        return " "
    if c.isascii() and not c.isalnum() and c not in _CARD_PLAIN:
        return f"&#{ord(c)};"
    return c


def is_content_word(text: str) -> bool:
    """Whether a word says something: it has a letter, a digit or an emoji, so punctuation is no card's top word."""
    return any(c.isalnum() or unicodedata.category(c) == "So" for c in text)


def content_words(explanation: Explanation, special_tokens: Collection[str] = ()) -> list[Word]:
    """The explanation's words without punctuation and without special tokens typed into the text.

    :func:`words` already skips the special tokens the tokenizer added; a ``[SEP]`` typed by a user is an
    ordinary token there. Those dropped here are the explanation's own special tokens and its baseline token,
    plus ``special_tokens`` (a tokenizer's ``all_special_tokens``, where the caller has the tokenizer)."""
    specials = {t for t, special in zip(explanation.tokens, explanation.special_mask) if special}
    specials |= {explanation.baseline_token, *special_tokens}
    return [
        w
        for w in words(explanation)
        if is_content_word(w.text) and not all(explanation.tokens[i] in specials for i in w.tokens)
    ]
