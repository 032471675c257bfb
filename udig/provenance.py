"""What made a result: the udig version, the model's revision, and a short check of the result itself.

Shared by the model-card command (:mod:`udig.card` stamps its section with them) and the demo's share links
(:mod:`udig.app.links` carries them, and the demo compares them with its own when a link is opened).

The check (:func:`result_check`) is not a hash: results differ in their last bits between processors (AMD vs
Intel, another BLAS), and a hash of floats would call every such result different. It carries what a reader
compares by eye, the predicted label (or QA answer) and the :data:`CHECK_WORDS` words of largest attribution at
:data:`SIGNIFICANT_DIGITS` significant digits, each with its position, and :func:`check_differences` compares
it with a recomputed result within a tolerance (see :data:`RELATIVE_TOLERANCE`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .explanation import Explanation
from .render.words import words as text_words

__all__ = [
    "CHECK_WORDS",
    "ModelRef",
    "SIGNIFICANT_DIGITS",
    "check_differences",
    "model_ref",
    "model_revision",
    "recomputed_check",
    "result_check",
]

CHECK_WORDS = 3  # words of largest |attribution| per explanation in a check
SIGNIFICANT_DIGITS = 2  # a check's attributions, rounded: short in a link, and all a reader compares by eye
# A check's value is the sender's attribution rounded to 2 significant digits, compared with the recomputed value
# unrounded: the rounding alone is off by at most half a unit of the second digit, 5 % of the value (0.105 ->
# 0.11: 4.8 %). Float noise between processors (float32 sums in another order, another BLAS) is of the order of
# 1e-6 relative, far below. So a difference above 6 % of the value is a different result, not noise; rounding
# both sides and comparing them exactly would not do (0.1249999 and 0.1250001 round apart).
RELATIVE_TOLERANCE = 0.06
# A word whose attribution is tiny beside the check's largest one is compared on that largest one's scale: its
# own relative error may be large while the explanation is the same (1 % of the largest |value|).
ABSOLUTE_SHARE = 0.01


# -- the model and its revision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """How a model is named (in a card, in a link) and where its revision comes from."""

    load_name: str | None  # what load_model takes (None: the default)
    display: str  # the name shown in the card and the images (never a local path)
    hub_id: str | None  # the name the demo can load, when there is one
    folder: Path | None  # a local folder's weights give its revision


def model_ref(name: str | None, push_repo: str | None = None) -> ModelRef:
    """What ``name`` (None: udig's default model, a local folder or a Hub id) is called in the card: a pushed
    card names its repository, a local folder never shows its path."""
    from .models import DEFAULT_MODEL, default_model_dir

    if name is None or name.strip() in ("", DEFAULT_MODEL, "default"):
        return ModelRef(None, push_repo or DEFAULT_MODEL, push_repo or DEFAULT_MODEL, default_model_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelRef(str(path), push_repo or path.resolve().name, push_repo, path.resolve())
    return ModelRef(name, push_repo or name, push_repo or name, None)


def model_revision(ref: ModelRef, ask_hub: bool = True) -> str:
    """The Hub commit of a Hub model (from the local cache, else asked of the Hub when allowed and ``ask_hub``),
    or a short sha256 of a local folder's weight files."""
    if ref.folder is not None:
        weights = _weight_files(ref.folder)
        if not weights:
            return "unknown (no weight files in the folder)"
        digest = hashlib.sha256()
        for path in weights:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return f"weights sha256 {digest.hexdigest()[:12]} ({', '.join(p.name for p in weights)})"
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(ref.load_name, "config.json")
    except Exception:  # noqa: BLE001 - a name that is no Hub id has no cached commit
        cached = None
    if isinstance(cached, str):
        return f"Hub commit {Path(cached).parent.name}"
    from .hub import hub_offline

    if ask_hub and not hub_offline():
        try:
            from huggingface_hub import HfApi

            return f"Hub commit {HfApi().model_info(ref.load_name).sha}"
        except Exception as error:  # noqa: BLE001
            return f"unknown ({type(error).__name__})"
    return "unknown (offline, not in the local cache)" if ask_hub else "unknown (not in the local cache)"


def _weight_files(folder: Path) -> list[Path]:
    from .models import METADATA_FILE

    meta = folder / METADATA_FILE
    if meta.is_file():
        return [folder / json.loads(meta.read_text(encoding="utf-8"))["weights_file"]]
    return sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())


def known(revision: Any) -> bool:
    """Whether ``revision`` names one (a commit or a digest), not an "unknown (...)"."""
    return isinstance(revision, str) and bool(revision) and not revision.startswith("unknown")


# -- a check of the result --------------------------------------------------------------------------------


def rounded(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` at ``digits`` significant digits (0.012345 -> 0.012)."""
    return float(f"{value:.{digits - 1}e}") if math.isfinite(value) and value else 0.0


def result_check(label: str, parts: Mapping[str, Explanation]) -> dict[str, Any]:
    """A short description of a result, to compare with a recomputed one: the ``label`` (the predicted class, or
    a QA answer) and, per part (``""`` for one explanation; methods; QA's start and end), the
    :data:`CHECK_WORDS` words of largest |attribution| as ``[position, word, attribution]``."""
    top: dict[str, list[list[Any]]] = {}
    for part, explanation in parts.items():
        ranked = sorted(text_words(explanation), key=lambda w: -abs(w.attribution))[:CHECK_WORDS]
        top[part] = [[w.index, w.text, rounded(w.attribution)] for w in sorted(ranked, key=lambda w: w.index)]
    return {"label": label, "words": top}


def recomputed_check(label: str, parts: Mapping[str, Explanation]) -> dict[str, Any]:
    """:func:`result_check` of a recomputed result, with every word's unrounded attribution (``"all"``), so that
    a link's word is compared even when it is no longer among the top ones here."""
    check = result_check(label, parts)
    check["all"] = {
        part: {w.index: (w.text, w.attribution) for w in text_words(explanation)} for part, explanation in parts.items()
    }
    return check


def check_differences(sent: Any, here: Mapping[str, Any]) -> list[str]:
    """How the recomputed result ``here`` (a :func:`recomputed_check`) differs from the check a link carried
    (``sent``: untrusted, any JSON): one phrase per difference; none when they agree within the tolerance."""
    if not (isinstance(sent, Mapping) and isinstance(sent.get("words"), Mapping)):
        return ["the link's check of its result cannot be read"]
    found = []
    if sent.get("label") != here["label"]:
        found.append(f"the result is {_quoted(here['label'])} here, {_quoted(sent.get('label'))} in the link")
    common = [part for part in here["all"] if part in sent["words"]]  # Compare: a method left out on one side
    if not common:
        found.append("the link's check has no words of this result")
    for part in common:
        where = f" ({part})" if part else ""
        expected = _entries(sent["words"][part])
        if not expected:
            found.append(f"the link's check has no words{where}")
            continue
        scale = max(abs(value) for *_, value in expected)
        for index, word, value in expected:
            recomputed = here["all"][part].get(index)
            if recomputed is None or recomputed[0] != word:
                found.append(f"word {index + 1}{where} is not {_quoted(word)} here")
            elif not agrees(value, recomputed[1], scale):
                found.append(
                    f"{_quoted(word)}{where} has attribution {rounded(recomputed[1])} here, {value} in the link"
                )
    return found


def agrees(sent: Any, value: float, scale: float = 0.0) -> bool:
    """Whether a link's rounded value ``sent`` and the recomputed ``value`` are the same attribution (see
    :data:`RELATIVE_TOLERANCE`, :data:`ABSOLUTE_SHARE`)."""
    if isinstance(sent, bool) or not isinstance(sent, (int, float)) or not math.isfinite(sent):
        return False
    return abs(sent - value) <= RELATIVE_TOLERANCE * max(abs(sent), abs(value)) + ABSOLUTE_SHARE * scale


def _entries(words: Any) -> list[tuple[int, str, float]]:
    """A link's ``[position, word, value]`` entries that are well formed (the others are left out)."""
    good: list[tuple[int, str, float]] = []
    for entry in words[:CHECK_WORDS] if isinstance(words, list) else []:
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], int)
            and not isinstance(entry[0], bool)
            and 0 <= entry[0] < 100_000
            and isinstance(entry[1], str)
            and isinstance(entry[2], (int, float))
            and not isinstance(entry[2], bool)
            and math.isfinite(entry[2])
        ):
            good.append((entry[0], entry[1], float(entry[2])))
    return good


def _quoted(value: Any, limit: int = 40) -> str:
    text = " ".join(str(value).split())
    return repr(text if len(text) <= limit else text[:limit] + "…")
