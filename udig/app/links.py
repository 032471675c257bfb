"""Links that reopen a tab with its inputs and run it: ``?s=<state>`` (compressed JSON), or plain ``?tab=...&text=...``.

A link is untrusted input: :func:`restore` checks every field against the demo's own rules (the same
:class:`~udig.settings.Bounds` the handlers use), drops what fails with a notice, and never raises.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Callable, Sequence

import gradio as gr

from ..settings import PARAMETERS
from . import views
from .config import PAPER_DEFAULT, AppConfig

TAB_TASKS = {"sentiment": "classification", "qa": "qa", "compare": "classification", "path": "classification"}
Layout = Sequence[tuple[str, str]]  # (tab, field) of every restorable component, in the page's order

_STATE_LIMIT = 64 * 1024  # bytes of decompressed state: a larger link is refused
_MAX_WORD_CHARS = 60


def share(tab: str, **fields: Any) -> str:
    """A URL query (``?s=...``) that reopens ``tab`` with these inputs and runs it; empty fields are left out."""
    return "?s=" + _encode_state({"tab": tab, **{k: v for k, v in fields.items() if v not in (None, "")}})


def _encode_state(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def _decode_state(token: str) -> dict[str, Any]:
    token = token.strip()
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, _STATE_LIMIT)
        if inflater.unconsumed_tail:
            raise ValueError("too long")
        state = json.loads(raw)
    except (ValueError, zlib.error, UnicodeDecodeError) as error:
        raise ValueError(str(error) or "corrupt") from None
    if not isinstance(state, dict):
        raise ValueError("not a state object")
    return state


def restore(config: AppConfig, layout: Layout, query: dict[str, str]) -> tuple[str | None, dict[tuple[str, str], Any], list[str]]:
    """Read a link's query: (tab to open and run, {(tab, field): value}, notices). Nothing here raises."""
    notices: list[str] = []
    state: dict[str, Any] = {}
    if query.get("s"):
        try:
            state = _decode_state(query["s"])
        except ValueError as error:
            notices.append(f"The shared link could not be read ({error}); showing the defaults.")
    state.update({k: v for k, v in query.items() if k not in ("s", "__theme")})
    tab = str(state.pop("tab", "") or "").strip() or None
    if tab is not None and tab not in {t for t, _ in layout}:
        notices.append(f"Unknown tab {tab!r} in the link.")
        tab = None
    if tab is None:
        return None, {}, notices
    values: dict[tuple[str, str], Any] = {}
    for name, value in state.items():
        if (tab, name) not in layout:
            continue
        try:
            values[(tab, name)] = _restored(config, tab, name, value)
        except (ValueError, TypeError) as error:
            notices.append(f"Ignored {name} from the link: {error}.")
    return tab, values, notices


def _restored(config: AppConfig, tab: str, name: str, value: Any) -> Any:
    """One field of a link as its component shows it; ValueError for a value the demo would refuse."""
    limits = config.limits
    if name in ("text", "question", "context"):
        if not isinstance(value, str):
            raise ValueError("not text")
        return value[: limits.max_question_chars if name == "question" else limits.max_chars]
    if name == "model":
        return config.model_name(value, TAB_TASKS[tab])
    if name == "word":
        return str(value)[:_MAX_WORD_CHARS]
    if name == "baseline" and value == PAPER_DEFAULT:
        return value
    if name in PARAMETERS:
        return PARAMETERS[name].check(value, limits.bounds(), lenient=True)
    raise ValueError("unknown field")


def load_values(config: AppConfig, layout: Layout, query: dict[str, str]) -> list[Any]:
    """Values for ``[tabs, tab-to-run, notice, *layout components]`` on page load (``gr.skip()``: unchanged)."""
    tab, values, notices = restore(config, layout, query)
    notice = views.notices_markdown(notices)
    return [
        gr.Tabs(selected=tab) if tab else gr.skip(),
        tab or "",
        gr.Markdown(notice, visible=bool(notice)),
        *[values.get(key, gr.skip()) for key in layout],
    ]


def autorun(tab: str, fn: Callable, n_outputs: int) -> Callable:
    """A handler that runs ``fn`` only when the page was opened from a link to ``tab``."""

    def run(run_tab: str, *args):
        if run_tab != tab:
            return tuple(gr.skip() for _ in range(n_outputs))
        return fn(*args)

    run.__name__ = f"autorun_{tab}"
    return run


COPY_LINK_JS = """(query) => {
  if (!query) { return query; }
  const url = new URL(query, window.location.href).toString();
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""
