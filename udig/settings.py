"""Every attribution parameter in one place: its default, its allowed values and what it means.

The Explainer, the demo and ``python -m udig.evaluate`` all build a frozen :class:`Settings` through
:meth:`Settings.make`, which checks each value against :data:`PARAMETERS` once; ``Explainer.explain(settings=...)``
then takes the object as it is. A caller with tighter rules (the public demo) passes :class:`Bounds` that narrow
the ranges and choices; it never restates them. A new parameter is one :class:`Parameter` entry, one
:class:`Settings` field and its use in a method (which reads it through :class:`udig.methods.MethodSettings`:
this module builds on the method registry, never the reverse), plus one control in the demo's ``app.py``.

Values from a user interface (slider floats such as ``30.0``, link strings such as ``"30"`` or ``"UDIG"``)
are accepted with ``lenient=True``; library calls are strict, so ``steps=2.5`` or ``steps=True`` is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .integrate import RULES
from .methods import METHODS, get_method
from .paths import STRATEGIES
from .vocab import CANDIDATE_SETS

BASELINES = ("mask", "pad", "unk")
OBJECTIVES = ("target", "largest")
MAX_BASELINE_CHARS = 64  # a vocabulary token is short; anything longer is not one


@dataclass(frozen=True)
class Parameter:
    """One setting's rule: a whole number in ``[low, high]``, one of ``choices``, or a baseline token."""

    name: str
    default: Any
    help: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] | None = None
    token: bool = False  # a baseline: one of BASELINES or any vocabulary token (checked against the tokenizer)
    real: bool = False  # a number in (low, high], not a whole number
    flag: bool = False  # True or False (from a user interface also "true"/"false", "1"/"0", "yes"/"no", "on"/"off")

    def check(self, value: Any, bounds: Bounds | None = None, *, lenient: bool = False) -> Any:
        """The canonical value, or ValueError naming the parameter, the allowed values and the bad one."""
        if self.token:
            return _token(self.name, value)
        if self.flag:
            return _flag(self.name, value, lenient)
        if self.choices is not None:
            return _choice(
                self.name, value, bounds.choices.get(self.name, self.choices) if bounds else self.choices, lenient
            )
        low, high = self.low, self.high
        if bounds and self.name in bounds.ranges:
            low, high = bounds.ranges[self.name]
        return (_real if self.real else _whole)(self.name, value, low, high, lenient)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("method", "udig", "attribution method", choices=METHODS),
        Parameter("strategy", "maxcount", "DIG/UDIG anchor strategy", choices=STRATEGIES),
        Parameter("steps", 30, "IG's Riemann steps, or the number of anchors m for DIG/UDIG", low=1),
        Parameter("factor", 0, "DIG/UDIG upscaling: 2^factor (m + 1) + 1 points", low=0, high=6),
        Parameter("nbrs", 50, "UDIG's candidate words per reference point", low=1),
        Parameter("baseline", None, "mask, pad, unk or a vocabulary token; None: the method's paper's", token=True),
        Parameter(
            "candidates", "all", "anchor candidates: every row (the papers) or real words", choices=CANDIDATE_SETS
        ),
        Parameter("seed", 0, "the random baseline's seed", low=0),
        Parameter(
            "rule",
            "riemann_left",
            "where each path segment's gradient is taken (captum's names; Gauss-Legendre on straight lines only)",
            choices=tuple(RULES),
        ),
        Parameter(
            "max_delta",
            None,
            "completeness target: the path is refined where least exact until |Δ| <= max_delta |F(x) - F(x')| "
            "or it has max_points points; None: the path as given",
            low=0,
            high=1,
            real=True,
        ),
        Parameter(
            "objective",
            "target",
            "F along the path: the input's target logit (udig), or the largest logit at each "
            "point (the published DIG/UDIG code's pred.max(1); classification)",
            choices=OBJECTIVES,
        ),
        Parameter("max_points", 256, "the most path points a completeness target may refine the path to", low=2),
        Parameter(
            "sequential",
            False,
            "DIG/UDIG: each word along its own path, the others held at the input (one path per word; SIG always is)",
            flag=True,
        ),
    )
}
EXPLAINER_PARAMETERS: dict[str, Parameter] = {  # per model, not per explanation: set once on the Explainer
    p.name: p
    for p in (
        Parameter("graph_k", 500, "neighbours per word in DIG's KNN graph (500 in the DIG paper)", low=1),
        Parameter("internal_batch_size", None, "path points per forward/backward pass; None: from the length", low=1),
        Parameter("max_length", None, "token limit; None: the model's own", low=3),
    )
}


@dataclass(frozen=True)
class Bounds:
    """Tighter rules of one caller: ``ranges`` narrows whole numbers, ``choices`` narrows choices, and
    ``max_points`` caps the path points (the runtime) of one explanation."""

    ranges: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_points: int | None = None

    def range(self, name: str) -> tuple[int | None, int | None]:
        """The effective ``(low, high)`` of a whole-number parameter (for sliders and help texts)."""
        parameter = PARAMETERS[name]
        return self.ranges.get(name, (parameter.low, parameter.high))


@dataclass(frozen=True)
class Settings:
    """One explanation's validated parameters. Build it with :meth:`make` (the fields have no defaults here:
    :data:`PARAMETERS` states each one once); ``info()`` is enough to rerun.

    Parameters the method does not use are set to neutral values (IG has no strategy and no factor), and
    ``baseline`` is resolved to the method's paper's choice when not given, so two requests that compute
    the same explanation have equal settings.
    """

    method: str
    strategy: str | None
    steps: int
    factor: int
    nbrs: int
    baseline: str | None
    candidates: str
    seed: int
    rule: str | None
    max_delta: float | None
    objective: str
    max_points: int
    sequential: bool

    @classmethod
    def make(
        cls,
        values: Mapping[str, Any] | None = None,
        *,
        bounds: Bounds | None = None,
        lenient: bool = False,
        **changes: Any,
    ) -> Settings:
        """Check ``values`` (and ``changes``) against :data:`PARAMETERS` and ``bounds``; unknown names are refused."""
        given = {**(values or {}), **changes}
        unknown = sorted(set(given) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown setting {quoted(unknown[0])}; the settings are {', '.join(PARAMETERS)}")
        checked = {
            name: parameter.default
            if given.get(name) is None
            else parameter.check(given[name], bounds, lenient=lenient)
            for name, parameter in PARAMETERS.items()
        }
        method = get_method(checked["method"])
        checked["baseline"] = checked["baseline"] or method.paper_baseline
        for name in (
            PARAMETERS.keys() - method.uses - {"method"}
        ):  # what the method ignores cannot tell two results apart
            checked[name] = None if name in ("strategy", "baseline", "rule") else PARAMETERS[name].default
        checked.update(method.fixed)  # what the method is (SIG is sequential), whatever was asked
        if checked["max_delta"] is None:
            checked["max_points"] = PARAMETERS["max_points"].default  # a cap without a target changes nothing
        for name, allowed in method.restricts.items():
            if checked[name] not in allowed:
                raise ValueError(f"{method.title} takes {name} {', '.join(allowed)}, not {quoted(checked[name])}")
        if checked["sequential"] and checked["max_delta"] is not None:
            raise ValueError(
                "a completeness target (max_delta) refines one joint path; sequential paths are integrated as given"
            )
        settings = cls(**checked)
        if bounds is not None and bounds.max_points is not None and (settings.n_points or 0) > bounds.max_points:
            raise ValueError(
                f"{settings.n_points} path points is more than this demo allows ({bounds.max_points}); "
                "lower the steps or the upscaling factor"
            )
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A checked copy with some values changed."""
        return Settings.make({**asdict(self), **changes})

    @property
    def n_points(self) -> int | None:
        """Points on the path (each but the last takes a forward and backward pass); None without a path."""
        return get_method(self.method).n_points(self)

    @property
    def n_evaluations(self) -> int:
        """Points that take a forward and a backward pass on one path: the cost, per word when sequential."""
        return get_method(self.method).n_evaluations(self)

    def cost(self, words: int) -> int:
        """Forward and backward passes for an input of ``words`` moving (non-special) tokens: a sequential
        method integrates one path per word."""
        return self.n_evaluations * (words if self.sequential else 1)

    def info(self) -> dict[str, Any]:
        """The settings and the path's size and cost, as JSON values."""
        return {**asdict(self), "n_points": self.n_points, "n_evaluations": self.n_evaluations}


def quoted(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters: a refused value is named,
    never echoed back whole (a 1 MB string sent to a public demo would come back as a 1 MB error)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _whole(name: str, value: Any, low: int | None, high: int | None, lenient: bool) -> int:
    """A whole number in ``[low, high]``; from a user interface also a whole float (``30.0``) or its text."""
    refused = ValueError(f"{name} must be a whole number, got {quoted(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str) if lenient else int):
        raise refused
    number = value if isinstance(value, int) else _whole_text(value)
    if number is None:
        number = _finite(value, refused)
    if number != int(number):
        raise refused
    number = int(number)
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            raise ValueError(f"{name} must be at least {low}, got {quoted(number)}")
        raise ValueError(f"{name} must be between {low} and {high}, got {quoted(number)}")
    return number


def _real(name: str, value: Any, low: float | None, high: float | None, lenient: bool) -> float:
    """A finite number in ``(low, high]``."""
    refused = ValueError(f"{name} must be a number, got {quoted(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str) if lenient else (int, float)):
        raise refused
    number = _finite(value, refused)
    if (low is not None and number <= low) or (high is not None and number > high):
        raise ValueError(f"{name} must be more than {low} and at most {high}, got {quoted(value)}")
    return number


def _whole_text(value: float | str) -> int | None:
    """A whole number written out (``"30"``, or 400 digits a float cannot hold); None for anything else."""
    try:
        return int(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _finite(value: float | int | str, refused: ValueError) -> float:
    """``value`` as a finite float, or ``refused``: text that is no number, NaN, infinities, and numbers beyond
    a float's range (a link may hold a JSON integer of 400 digits, which ``float`` cannot take)."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise refused from None
    if not math.isfinite(number):
        raise refused
    return number


def _flag(name: str, value: Any, lenient: bool) -> bool:
    if lenient and isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    if lenient and isinstance(value, int) and value in (0, 1):
        return bool(value)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {quoted(value)}")
    return value


_FLAGS = {**dict.fromkeys(("true", "1", "yes", "on"), True), **dict.fromkeys(("false", "0", "no", "off"), False)}


def _choice(name: str, value: Any, choices: tuple[str, ...], lenient: bool) -> str:
    if lenient and isinstance(value, str):
        value = value.strip().lower()
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {quoted(value)}; choose one of {', '.join(choices)}")
    return value


def _token(name: str, value: Any) -> str:
    """A named baseline (case-insensitive) or a token as typed; the tokenizer checks it exists."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be one of {', '.join(BASELINES)} or a vocabulary token, got {quoted(value)}")
    value = value.strip()
    if len(value) > MAX_BASELINE_CHARS:
        raise ValueError(f"{name} must be a vocabulary token, not {len(value)} characters of text")
    return value.lower() if value.lower() in BASELINES else value
