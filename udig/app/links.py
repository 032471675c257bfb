"""Links that reopen a tab with its inputs and run it: ``?s=<state>`` (compressed JSON), or plain ``?tab=...&text=...``.

A link is untrusted input: :func:`restore` checks every field with the demo's own rules (the same
:class:`~udig.settings.Bounds` and text limits the handlers use, the model's vocabulary for a baseline
token or a path word), drops what fails with a notice, and never raises. :func:`share` checks and cuts
a link's fields the same way, so an API caller cannot make a link the UI could not.
"""

from __future__ import annotations

import base64
import json
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

from .. import render
from ..provenance import RELATIVE_TOLERANCE, known
from ..settings import BASELINES, PARAMETERS, quoted
from ..tasks import vocabulary_id
from ..version import __version__
from . import views
from .config import PAPER_DEFAULT, AppConfig, model_at_hand, valid_text

logger = logging.getLogger(__name__)

TAB_TASKS = {"sentiment": "classification", "qa": "qa", "compare": "classification", "path": "classification"}
Layout = Sequence[tuple[str, str]]  # (tab, field) of every restorable component, in the page's order
Tokenizer = Callable[[str], Any]  # an offered model's name -> its tokenizer
RUN = "run"  # the value a tab's hidden run trigger gets when a link asks for that tab

_STATE_LIMIT = 64 * 1024  # bytes of decompressed state: a larger link is refused
MAX_NOTICES = 8  # notices shown for one link; more are counted in the last
MADE_FIELDS = {"udig": 40, "revision": 200, "check": None}  # what made a link (udig.provenance): most characters
OLD_LINK = (
    "🔗 Opened from a shared link that does not say what made it (made before links carried the udig version, "
    "the model revision and a check of the result, or written by hand): the result below is this server's own."
)


def share(config: AppConfig, tab: str, made: Mapping[str, Any] | None = None, **fields: Any) -> str:
    """A URL query (``?s=...``) that reopens ``tab`` with these inputs and runs it; empty fields are left out.
    ``made``: what made the result (:data:`MADE_FIELDS`: the udig version, the model revision, a check).

    Each field is checked and cut as :func:`restore` would (ValueError/TypeError for a value it would drop).
    """
    state = {name: checked(config, tab, name, value, []) for name, value in fields.items() if value not in (None, "")}
    provenance = {name: value for name, value in (made or {}).items() if name in MADE_FIELDS and value is not None}
    return "?s=" + _encode_state({"tab": tab, **state, **provenance})


def made_by(query: dict[str, str]) -> dict[str, Any]:
    """What a link's state says made it (:data:`MADE_FIELDS`; values of the wrong type or length left out):
    empty for a link that says nothing (made before links carried it, hand-written, unreadable). Never raises."""
    try:
        state = _decode_state(query["s"]) if query.get("s") else {}
    except ValueError:
        return {}
    made = {}
    for name, limit in MADE_FIELDS.items():
        value = state.get(name)
        if limit is None and value is not None:
            made[name] = value
        elif isinstance(value, str) and 0 < len(value) <= limit:
            made[name] = value
    return made


def made_lines(
    made: Mapping[str, Any],
    revision: str | None = None,
    differences: Sequence[str] | None = None,
    version: str = __version__,
) -> list[str]:
    """What the page says about a link's provenance (Markdown lines, user values escaped): what made it, and a
    warning when this server's udig ``version`` or the model's ``revision`` here differs, or when the recomputed
    result differs from the link's check (``differences``, from :func:`udig.provenance.check_differences`).
    ``revision`` and ``differences`` are None until the link's run is done."""
    if not made:
        return [OLD_LINK]
    sent_version, sent_revision = made.get("udig"), made.get("revision")
    lines = [
        f"🔗 Opened from a shared link, made with udig {views.literal(sent_version or 'of an unknown version')} "
        f"on model revision {views.literal(sent_revision or 'unknown')}."
    ]
    if sent_version and sent_version != version:
        lines.append(
            f"⚠️ **This server runs udig {views.literal(version)}, not {views.literal(sent_version)}**: its "
            "numbers may differ from the ones the sender saw."
        )
    if revision is not None:
        if not known(revision):
            lines.append("The model's revision is not known here, so it cannot be compared with the link's.")
        elif not known(sent_revision):
            lines.append(
                f"The link does not know its model's revision, so it cannot be compared with this one "
                f"({views.literal(revision)})."
            )
        elif revision != sent_revision:
            lines.append(
                f"⚠️ **The model here is at revision {views.literal(revision)}**, not the link's: its numbers may "
                "differ from the ones the sender saw."
            )
    if differences is None:
        return lines
    if "check" not in made:
        lines.append("The link carries no check of its result, so the result recomputed here cannot be compared.")
    elif differences:
        lines.append(
            "⚠️ **The result recomputed here does not match the link's check**: "
            + views.literal("; ".join(differences[:4]) + ("; and more" if len(differences) > 4 else ""))
            + "."
        )
    else:
        lines.append(
            "✅ The result recomputed here matches the link's check (the same label, and its top words' "
            f"attributions within {RELATIVE_TOLERANCE:.0%})."
        )
    return lines


def _encode_state(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def _decode_state(token: str) -> dict[str, Any]:
    """A link's state; a ValueError in a visitor's words when it cannot be read (base64's, zlib's, JSON's and
    Unicode's own messages, such as "Error -3 while decompressing data", go to the log)."""
    token = token.strip()
    damaged = "it is damaged or was cut short when copied"
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, _STATE_LIMIT)
    except (ValueError, zlib.error) as error:
        logger.info("unreadable link state: %s", error)
        raise ValueError(damaged) from None
    if inflater.unconsumed_tail:
        raise ValueError("too long")
    try:
        state = json.loads(raw)
    except RecursionError:  # deeply nested JSON
        raise ValueError("nested too deeply") from None
    except ValueError as error:
        logger.info("unreadable link state: %s", error)
        raise ValueError(damaged) from None
    if not isinstance(state, dict):
        raise ValueError("not a state object")
    return state


def restore(
    config: AppConfig, layout: Layout, query: dict[str, str], tokenizer: Tokenizer | None = None
) -> tuple[str | None, dict[tuple[str, str], Any], list[str]]:
    """Read a link's query: (tab to open and run, {(tab, field): value}, notices). Nothing here raises.

    ``tokenizer`` lets the baseline token and the path's word be checked against the model's vocabulary.
    """
    notices: list[str] = []
    state: dict[str, Any] = {}
    if query.get("s"):
        try:
            state = _decode_state(query["s"])
        except ValueError as error:
            notices.append(f"The shared link could not be read ({error}); showing the defaults.")
    state.update({k: v for k, v in query.items() if k != "s"})
    for name in MADE_FIELDS:  # what made the link: read by made_by, not a field of the tab
        state.pop(name, None)
    tab = str(state.pop("tab", "") or "").strip() or None
    if tab is not None and tab not in {t for t, _ in layout}:
        notices.append(f"Unknown tab {quoted(tab)} in the link.")
        tab = None
    if tab is None:
        return None, {}, notices
    values: dict[tuple[str, str], Any] = {}
    for name, value in state.items():
        if str(name).startswith("__"):  # Gradio's and the Hub's own parameters (__theme, __sign)
            continue
        if (tab, name) not in layout:
            notices.append(f"Ignored {quoted(name)} from the link: this tab has no such field.")
            continue
        try:
            values[(tab, name)] = checked(config, tab, name, value, notices)
        except (ValueError, TypeError) as error:
            notices.append(f"Ignored {name} from the link: {error}.")
    if tokenizer is not None:
        _check_vocabulary(config, tab, values, notices, tokenizer)
    return tab, values, _capped(notices)


def _capped(notices: list[str]) -> list[str]:
    """At most :data:`MAX_NOTICES` notices, the last saying how many more there were: a link is short, but it
    may name thousands of fields."""
    if len(notices) <= MAX_NOTICES:
        return notices
    more = len(notices) - MAX_NOTICES + 1
    return [*notices[: MAX_NOTICES - 1], f"{more} more notices about this link are not shown."]


def checked(config: AppConfig, tab: str, name: str, value: Any, notices: list[str]) -> Any:
    """One field of a link as its component shows it; ValueError or TypeError for a value the demo would refuse."""
    if isinstance(value, str):
        valid_text(name, value)
    if name in ("text", "question", "context", "word"):
        return config.limits.text(name, value, notices)
    if name == "model":
        return config.model_name(value, TAB_TASKS[tab])
    if name == "baseline" and value == PAPER_DEFAULT:
        return value
    if name in PARAMETERS:
        return PARAMETERS[name].check(value, config.limits.bounds(), lenient=True)
    raise ValueError("unknown field")


def _check_vocabulary(
    config: AppConfig, tab: str, values: dict[tuple[str, str], Any], notices: list[str], tokenizer: Tokenizer
) -> None:
    """Drop what only the model can judge: a baseline token not in its vocabulary, a path word not in the text."""
    baseline, word, text = (values.get((tab, name)) for name in ("baseline", "word", "text"))
    custom = isinstance(baseline, str) and baseline not in (PAPER_DEFAULT, *BASELINES)
    if not custom and not (word and text):
        return
    offered = config.models[TAB_TASKS[tab]]
    model = values.get((tab, "model")) or offered[0]
    if model not in offered or (model != offered[0] and not model_at_hand(model)):
        return  # no download, nor a visitor's own model, to read a link: the run loads it and says what fails
    try:
        vocabulary = tokenizer(model)
    except Exception as error:  # noqa: BLE001 - the run reports the model's problem
        logger.info("link not checked against %s: %s", model, error)
        return
    if custom and vocabulary_id(vocabulary, baseline) is None:
        del values[(tab, "baseline")]
        notices.append(f"Ignored baseline from the link: {baseline!r} is not a token of {model}.")
    if word and text:
        try:
            render.word_at(views.text_words(text, vocabulary, config.limits.max_tokens), word)
        except ValueError as error:
            del values[(tab, "word")]
            notices.append(f"Ignored word from the link: {error}.")


def load_values(
    config: AppConfig, layout: Layout, runs: Sequence[str], query: dict[str, str], tokenizer: Tokenizer | None = None
) -> list[Any]:
    """Values for ``[tabs, notice, *layout components, *run triggers, link]`` on page load (``gr.skip()``:
    unchanged).

    ``runs`` names the tab of each hidden run trigger: only the link's tab's trigger changes, so a plain
    visit starts no event, and a link queues exactly one run. ``link`` (:func:`link_value`) is what the link's
    run needs to say, once done, whether its result is the sender's (see :func:`made_lines`).
    """
    tab, values, notices = restore(config, layout, query, tokenizer)
    made = made_by(query) if tab else {}
    lines = [*(made_lines(made) if tab else []), views.notices_markdown(notices)]
    notice = "  \n".join(line for line in lines if line)
    return [
        gr.Tabs(selected=tab) if tab else gr.skip(),
        gr.Markdown(notice, visible=bool(notice)),
        *[values.get(key, gr.skip()) for key in layout],
        *[RUN if run == tab else gr.skip() for run in runs],
        link_value(made, notices) if tab else gr.skip(),
    ]


def link_value(made: Mapping[str, Any], notices: Sequence[str]) -> str:
    """The hidden value a link's run reads (:func:`read_link_value`): what made the link, and its notices."""
    return json.dumps({"made": dict(made), "notices": list(notices)}, ensure_ascii=False)


def read_link_value(value: Any) -> tuple[dict[str, Any], list[str]]:
    """:func:`link_value` read back; anything else (an API caller's value) is a link that says nothing."""
    try:
        data = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        data = {}
    made = data.get("made") if isinstance(data, dict) else None
    notices = data.get("notices") if isinstance(data, dict) else None
    made = {name: made[name] for name in MADE_FIELDS if name in made} if isinstance(made, dict) else {}
    return made, [str(n) for n in notices[:MAX_NOTICES]] if isinstance(notices, list) else []


COPY_LINK_JS = """(query) => {
  if (!query) { return query; }
  const url = new URL(query, window.location.href).toString();
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  try { window.history.replaceState(window.history.state, "", url); } catch (e) {}
  return url;
}"""
"""The Copy link button's step in the browser: the full address, copied, shown, and put in the address bar
(``history.replaceState``), so that a reload, the back button and a bookmark keep it."""
