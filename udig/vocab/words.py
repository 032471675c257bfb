"""Which vocabulary rows may be anchors: the candidate sets, and the real words a reader recognises.

The "words" set keeps rows that are trained and that a reader recognises as words. Under-trained rows
are found from the matrix itself, after Land & Bartolo 2024 ("Fishing for Magikarp"): rows known to be
unused (``[unusedN]``) define a direction; every row's cosine similarity to it (after centring) splits into
two clusters, and Otsu's threshold separates them. That cut leaves a tail of barely-trained rows just
outside the cluster (a Hebrew letter, "1726", "##ם" in an English vocabulary), and the middle of a path
to [MASK] runs right past them; so a word must also read as one: a whole word of letters in the
vocabulary's main script (see :func:`lexical_words`), and one a reader knows: frequent enough in the
vocabulary's language, by ``wordfreq``'s tables (see :func:`frequent_words`).

Rows are judged by their surface form (:func:`vocabulary_of`), which the tokenizer itself writes for every family:
WordPiece's ``##ing`` stays a continuation, byte-level BPE's ``Ġfilm`` and Unigram's ``▁film`` read as "film", and
the pieces that continue a word in those two families (``ing``, written without ``Ġ`` or ``▁``) read as ``##ing``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

CANDIDATE_SETS = ("all", "words")
DEFAULT_LANGUAGE = "en"
# Zipf 3.0 = once per million words, chosen on MiniLM: every rare word found on its paths is below it
# (freyja 2.02, acheron 2.08, abbess 2.50, sofie 2.54, balthazar 2.58) and 20,152 of its 21,748 real
# words stay (DIG's graph needs 501). At 3.5 only 14,124 stay, common words (politely, geese) go too,
# and DIG's paths jump straight to function words (the, of, and). README: "Real-word anchors".
MIN_ZIPF = 3.0
# wordfreq counts a lone letter wherever text has one (initials, "plan b"): every English letter scores
# Zipf 4.5-5.9, so frequency cannot tell a letter from a one-letter word; these are the words.
ONE_LETTER_WORDS: dict[str, frozenset[str]] = {"en": frozenset({"a", "i"})}
UNUSED_TOKEN = re.compile(r"^(\[unused\d+\]|<unused\d+>|madeupword\d+)$")
CONTINUATION = "##"  # how a surface form marks a piece that continues a word (WordPiece's own mark)


def vocabulary_of(tokenizer, size: int) -> tuple[list[str], list[str]]:
    """The first ``size`` rows' tokens (ids past the tokenizer's vocabulary get ``""``) and how each reads as
    text, written by the tokenizer itself: the surface form is the same rule for every tokenizer family.

    A piece that continues a word reads as ``##`` + its text in every family. Byte-level BPE and Unigram write
    a continuation without a mark (``ing`` beside ``Ġfilm``, ``▁film``), so alone it would read as the word "ing";
    the tokenizer's decoder tells the two apart: a word-start piece written twice reads as two words
    ("film film"), a continuation as one ("inging"), a WordPiece ``##ing`` keeps its mark ("##inging").
    """
    tokens = [token or "" for token in tokenizer.convert_ids_to_tokens(list(range(size)))]
    return tokens, [_surface(tokenizer, token) for token in tokens]


def _surface(tokenizer, token: str) -> str:
    if not token:
        return ""
    alone = tokenizer.convert_tokens_to_string([token]).strip()
    if not alone or alone.startswith(CONTINUATION):
        return alone
    twice = tokenizer.convert_tokens_to_string([token, token]).strip()
    return alone if twice == f"{alone} {alone}" else CONTINUATION + alone


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """The cut that maximises the between-class variance of a 1-D sample (Otsu 1979)."""
    low, high = float(values.min()), float(values.max())
    hist = torch.histc(values.double(), bins=bins, min=low, max=high)
    centres = torch.linspace(low, high, bins + 1, dtype=torch.float64)[:-1] + (high - low) / (2 * bins)
    weight_low = hist.cumsum(0)
    weight_high = hist.sum() - weight_low
    mass_low = (hist * centres).cumsum(0)
    mean_low = mass_low / weight_low.clamp(min=1)
    mean_high = (mass_low[-1] - mass_low) / weight_high.clamp(min=1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    cut = int(between.argmax())
    return float(centres[cut] + (high - low) / (2 * bins))


def undertrained_rows(embeddings: Tensor, unused_ids: Tensor) -> Tensor:
    """Rows that sit with the known-unused ones: a boolean mask ``(V,)``; all False without unused rows."""
    if len(unused_ids) == 0:
        return torch.zeros(len(embeddings), dtype=torch.bool)
    centred = embeddings - embeddings.mean(0)
    direction = centred[unused_ids].mean(0)
    similarity = centred @ direction / (centred.norm(dim=1) * direction.norm()).clamp(min=1e-12)
    mask = similarity >= otsu_threshold(similarity)
    mask[unused_ids] = True
    return mask


def _script(character: str) -> str:
    """The Unicode script a letter belongs to, as the first word of its name (LATIN, CJK, HEBREW, ...)."""
    return unicodedata.name(character, "?").split(" ")[0]


def lexical_words(surfaces: list[str]) -> Tensor:
    """Rows whose surface form is a whole word of letters in the vocabulary's main script: ``(V,)`` bool.

    Sub-word continuations (WordPiece's ``##ing``), numbers, punctuation and letters of scripts the
    vocabulary barely covers are not words a reader recognises on a path. The main script is the one
    most letters of whole-word entries belong to, so the rule follows the vocabulary, not a hand list.
    """
    alphabetic = [surface.isalpha() for surface in surfaces]
    letters = Counter(_script(ch) for surface, ok in zip(surfaces, alphabetic) if ok for ch in surface)
    if not letters:
        return torch.zeros(len(surfaces), dtype=torch.bool)
    main = letters.most_common(1)[0][0]
    return torch.tensor([ok and all(_script(ch) == main for ch in s) for s, ok in zip(surfaces, alphabetic)])


def frequent_words(surfaces: list[str], language: str, min_zipf: float = MIN_ZIPF) -> Tensor | None:
    """Rows whose surface form a reader of ``language`` knows: ``(V,)`` bool, None without a word list.

    A word is known when its Zipf frequency (log10 of uses per billion words, in ``wordfreq``'s blend
    of subtitles, books, news, Wikipedia and the web) is at least ``min_zipf``: rare names and
    archaisms are whole words of letters, yet read as noise on a path. wordfreq folds some characters
    (``ß`` scores as "ss") and counts lone letters, so a single character is a word only when it is in
    the language's :data:`ONE_LETTER_WORDS` (none for unlisted languages). None when wordfreq has no
    table for ``language`` or cannot tokenize it here (Chinese, Japanese and Korean need jieba or MeCab).
    The lookups and wordfreq's table load once per index (:class:`udig.vocab.VocabIndex` keeps the mask);
    their cost is in ``benchmarks/engine_results.md``.
    """
    import wordfreq  # its tables load on first use, not when udig is imported

    if language not in wordfreq.available_languages():
        return None
    one_letter = ONE_LETTER_WORDS.get(language, frozenset())
    try:
        return torch.tensor(
            [s in one_letter if len(s) == 1 else wordfreq.zipf_frequency(s, language) >= min_zipf for s in surfaces]
        )
    except ImportError:  # an optional tokenizer of wordfreq's
        return None


def real_words(
    embeddings: Tensor,
    tokens: list[str],
    surfaces: list[str],
    special_ids: list[int],
    language: str | None,
    min_zipf: float,
) -> Tensor:
    """Rows that are real, trained words ``(V,)``: not special, not under-trained, whole words of letters, and
    (unless ``language`` is None) known to a reader of ``language``."""
    unused = torch.tensor([i for i, t in enumerate(tokens) if UNUSED_TOKEN.match(t)], dtype=torch.long)
    mask = ~undertrained_rows(embeddings, unused) & lexical_words(surfaces)
    mask[special_ids] = False
    if language is not None:
        mask &= _known_words(mask, surfaces, language, min_zipf)
    return mask


def _known_words(words: Tensor, surfaces: list[str], language: str, min_zipf: float) -> Tensor:
    """:func:`frequent_words` over the rows in ``words``; every row, with a warning, without a word list."""
    ids = words.nonzero().squeeze(1).tolist()
    known = frequent_words([surfaces[i] for i in ids], language, min_zipf)
    if known is None:
        logger.warning(
            "wordfreq has no usable word list for language %r: real words are not filtered by frequency", language
        )
        return torch.ones_like(words)
    out = torch.zeros_like(words)
    out[ids] = known
    return out
