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
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from .. import render
from ..settings import BASELINES, PARAMETERS, quoted
from ..tasks import vocabulary_id
from . import views
from .config import PAPER_DEFAULT, AppConfig, model_at_hand, valid_text

logger = logging.getLogger(__name__)

TAB_TASKS = {"sentiment": "classification", "qa": "qa", "compare": "classification", "path": "classification"}
Layout = Sequence[tuple[str, str]]  # (tab, field) of every restorable component, in the page's order
Tokenizer = Callable[[str], Any]  # an offered model's name -> its tokenizer
RUN = "run"  # the value a tab's hidden run trigger gets when a link asks for that tab

_STATE_LIMIT = 64 * 1024  # bytes of decompressed state: a larger link is refused
MAX_NOTICES = 8  # notices shown for one link; more are counted in the last


def share(config: AppConfig, tab: str, **fields: Any) -> str:
    """A URL query (``?s=...``) that reopens ``tab`` with these inputs and runs it; empty fields are left out.

    Each field is checked and cut as :func:`restore` would (ValueError/TypeError for a value it would drop).
    """
    state = {name: checked(config, tab, name, value, []) for name, value in fields.items() if value not in (None, "")}
    return "?s=" + _encode_state({"tab": tab, **state})


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
    """Values for ``[tabs, notice, *layout components, *run triggers]`` on page load (``gr.skip()``: unchanged).

    ``runs`` names the tab of each hidden run trigger: only the link's tab's trigger changes, so a plain
    visit starts no event, and a link queues exactly one run.
    """
    tab, values, notices = restore(config, layout, query, tokenizer)
    notice = views.notices_markdown(notices)
    return [
        gr.Tabs(selected=tab) if tab else gr.skip(),
        gr.Markdown(notice, visible=bool(notice)),
        *[values.get(key, gr.skip()) for key in layout],
        *[RUN if run == tab else gr.skip() for run in runs],
    ]


COPY_LINK_JS = """(query) => {
  if (!query) { return query; }
  const url = new URL(query, window.location.href).toString();
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""
