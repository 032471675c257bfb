"""Words, not word pieces: each word's span in the text and its summed attribution; scores and colours.

Scores are shown per word: the attributions of a word's sub-word tokens are summed, and the word is located
in the original text through the tokenizer's character offsets, so a highlight is always an exact slice of the
input. Tokens whose spans touch are one word when the characters on both sides of the seam are word characters
(letters, digits, ``'``, ``-``, ``_``): ``un ##believ ##able`` and ``isn ' t`` are one word each, ``gorgeous ,``
is two. Byte-level BPE splits a character it has no piece for (an emoji, a rare letter) into several byte
pieces whose spans overlap: they are one word too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..explanation import Explanation
from ..settings import quoted

_WORD_CHAR = re.compile(r"[\w'’\-]")


@dataclass(frozen=True)
class Word:
    """One word of the input: its character span, the tokens it is made of and their summed attribution."""

    index: int
    start: int
    end: int
    text: str
    tokens: tuple[int, ...]
    attribution: float


def _joins(text: str, left_end: int, right_start: int) -> bool:
    if left_end != right_start or left_end <= 0 or right_start >= len(text):
        return False
    return bool(_WORD_CHAR.match(text[left_end - 1]) and _WORD_CHAR.match(text[right_start]))


def words(
    explanation: Explanation,
    attributions: Sequence[float] | None = None,
    *,
    segment: str | None = None,
) -> list[Word]:
    """The input's words with their summed attributions, in text order.

    attributions: per-token values to sum (default: the explanation's own; QA passes start + end).
    segment: QA only, "question" or "context": keep the words of that part (spans stay in ``text``).
    """
    values = list(explanation.attributions if attributions is None else attributions)
    if len(values) != len(explanation.tokens):
        raise ValueError(f"{len(values)} attributions for {len(explanation.tokens)} tokens")
    low, high = 0, len(explanation.text)
    if segment is not None:
        if segment not in explanation.segments:
            raise ValueError(f"unknown segment {segment!r}; this explanation has {sorted(explanation.segments)}")
        low, high = explanation.segments[segment]
    spans = [
        (i, int(a), int(b))
        for i, ((a, b), special) in enumerate(zip(explanation.offsets, explanation.special_mask))
        if not special and b > a and low <= a and b <= high
    ]
    spans.sort(key=lambda s: (s[1], s[2]))
    groups: list[list[tuple[int, int, int]]] = []
    for span in spans:
        if groups and _joins(explanation.text, groups[-1][-1][2], span[1]):
            groups[-1].append(span)
        elif groups and span[1] < groups[-1][-1][2]:  # overlapping pieces (byte-level BPE): same word
            groups[-1].append(span)
        else:
            groups.append([span])
    for i, ((a, b), special) in enumerate(zip(explanation.offsets, explanation.special_mask)):
        if not special and a == b and low <= a <= high and groups:  # a lone Ġ or ▁: the mark of the next word
            owner = next((group for group in groups if group[0][1] >= a), groups[-1])
            owner.append((i, owner[0][1], owner[0][2]))
    result = []
    for n, group in enumerate(groups):
        start, end = group[0][1], max(s[2] for s in group)
        ids = tuple(s[0] for s in group)
        result.append(Word(n, start, end, explanation.text[start:end], ids, float(sum(values[i] for i in ids))))
    return result


def word_at(word_list: Sequence[Word], choice: str | int | None) -> Word:
    """Pick a word by index, by ``"index: word"`` (the app's dropdown), or by its text (first match).

    None or "" picks the word with the largest absolute attribution.
    """
    if not word_list:
        raise ValueError("the input has no words to show a path for")
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        return max(word_list, key=lambda w: abs(w.attribution))
    if isinstance(choice, int) and not isinstance(choice, bool):
        if 0 <= choice < len(word_list):
            return word_list[choice]
        raise ValueError(f"word index {choice} is out of range: the input has {len(word_list)} words")
    choice = str(choice).strip()
    head, sep, rest = choice.partition(":")
    if sep and re.fullmatch(r"[0-9]{1,9}", head.strip()):  # not str.isdigit: it takes '²' and any length
        index = int(head)
        if 0 <= index < len(word_list) and word_list[index].text == rest.strip():
            return word_list[index]
        choice = rest.strip() or choice
    for word in word_list:
        if word.text == choice:
            return word
    for word in word_list:
        if word.text.lower() == choice.lower():
            return word
    raise ValueError(f"the word {quoted(choice)} is not in the input; pick one of its words")


def max_abs(values: Iterable[float]) -> float:
    """The largest absolute value (0.0 for nothing or all zeros)."""
    return max((abs(v) for v in values if math.isfinite(v)), default=0.0)


def shared_scale(explanations: Sequence[Explanation], *, segment: str | None = None) -> float:
    """One colour scale for several explanations of the same input (compare view): the max |word score|."""
    return max((max_abs(w.attribution for w in words(e, segment=segment)) for e in explanations), default=0.0)


def scaled(value: float, scale: float) -> float:
    if scale <= 0 or not math.isfinite(value):
        return 0.0
    return max(-1.0, min(1.0, value / scale))


def _pieces(explanation: Explanation, word_list: list[Word], scale: float, segment: str | None):
    """(text, scaled score or None) covering the displayed text exactly once, in order."""
    low, high = (0, len(explanation.text)) if segment is None else explanation.segments[segment]
    cursor = low
    for word in word_list:
        if word.start > cursor:
            yield explanation.text[cursor : word.start], None
        yield word.text, scaled(word.attribution, scale)
        cursor = word.end
    if cursor < high:
        yield explanation.text[cursor:high], None


def highlight_value(
    explanation: Explanation,
    *,
    scale: float | None = None,
    segment: str | None = None,
    attributions: Sequence[float] | None = None,
) -> list[tuple[str, float | None]]:
    """A HighlightedText value: ``(text, score)`` per word, score max-abs scaled to [-1, 1], gaps ``None``.

    scale: divide by this instead of the explanation's own max |word score| (a shared scale).
    """
    word_list = words(explanation, attributions, segment=segment)
    if scale is None:
        scale = max_abs(w.attribution for w in word_list)
    return [
        (text, None if score is None else round(score, 4))
        for text, score in _pieces(explanation, word_list, scale, segment)
    ]


TOWARD_RGB, AWAY_RGB = (232, 85, 61), (59, 139, 217)  # red +, blue -: the ends of the scale
FAINTEST = 0.2  # how far from white the smallest non-zero value is: a faint word keeps its hue, never grey


def colour(score: float) -> str:
    """CSS colour for a scaled score in [-1, 1]: white mixed with red (+) or blue (-) by ``|score|``.

    Red and blue stay apart, and apart from grey, under protanopia, deuteranopia and tritanopia (a test
    simulates them), and dark text stays readable on both. Any non-zero value is at least ``FAINTEST`` of the
    way to its end, and every colour is opaque, so no page background can grey a faint word; 0 (and NaN) is
    transparent.
    """
    score = max(-1.0, min(1.0, float(score))) if math.isfinite(score) else 0.0
    if score == 0:
        return "rgba(255, 255, 255, 0.000)"
    strength = FAINTEST + (1 - FAINTEST) * abs(score)
    r, g, b = (round(255 + strength * (end - 255)) for end in (TOWARD_RGB if score > 0 else AWAY_RGB))
    return f"rgba({r}, {g}, {b}, 1.000)"
