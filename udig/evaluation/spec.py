"""Method names of an evaluation: ``[seq-]name[-strategy][:candidates][@baseline][/rule][+objective]`` <-> specs.

A name is the key of a method's records, so the same settings always get the same name: what a paper uses
by default (its baseline token, the left Riemann sum, the input's target) is never written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..methods import REGISTRY
from ..paths import STRATEGIES
from ..settings import BASELINES, OBJECTIVES, PARAMETERS
from ..vocab import CANDIDATE_SETS

SEQUENTIAL = "seq-"  # the prefix of a method integrated one word at a time (Sequential DIG/UDIG)


@dataclass(frozen=True)
class MethodSpec:
    """One evaluated method: ``name`` is the canonical key, e.g. ``udig-maxcount:words`` or ``ig@mask``."""

    name: str
    method: str  # a name in udig.methods.REGISTRY
    strategy: str | None = None
    candidates: str | None = None
    baseline: str | None = None  # None: the paper's
    rule: str | None = None  # None: the papers' left Riemann sum (or no path)
    sequential: bool = False  # "seq-" names: each word along its own path (SIG is sequential by itself)
    objective: str | None = None  # None: the input's target logit; "largest": the published code's max logit


def method_names() -> dict[str, tuple[str, str | None, bool]]:
    """Every spelling of a method without rule or baseline -> (registry name, strategy, sequential):
    ``ig``, ``dig-greedy``, ..., ``seq-udig-maxcount``, ``random``, ``grad-input``."""
    names: dict[str, tuple[str, str | None, bool]] = {}
    for name, method in REGISTRY.items():
        strategies = STRATEGIES if "strategy" in method.uses else (None,)
        plain = {name if s is None else f"{name}-{s}": (name, s, False) for s in strategies}
        names.update(plain)
        if "sequential" in method.uses:
            names.update({SEQUENTIAL + spelling: (name, s, True) for spelling, (name, s, _) in plain.items()})
    return names


def parse_methods(text: str, rule: str = PARAMETERS["rule"].default) -> list[MethodSpec]:
    """``"ig,udig-maxcount:words,random"`` -> specs, each written
    ``[seq-]name[-strategy][:candidates][@baseline][/rule][+objective]``.

    ``dig-greedy`` means ``dig-greedy:all``, ``udig-greedy@mask`` means ``udig-greedy:all`` (a paper's own
    baseline is never written), and a path method without ``/rule`` integrates by ``rule``; the papers' left
    Riemann sum is never written either, so the records of the published settings keep their names.
    ``+largest`` explains the largest logit at each path point, as the published DIG/UDIG code does.
    """
    spellings = method_names()
    specs: list[MethodSpec] = []
    for raw in (part.strip() for part in text.split(",")):
        if raw and (spec := _parse_one(raw, rule, spellings)) not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError("no methods given")
    return specs


def _parse_one(raw: str, rule: str, spellings: dict[str, tuple[str, str | None, bool]]) -> MethodSpec:
    """One written method -> its spec, checked against what the registry's method uses."""
    written, plus, objective = raw.partition("+")
    body, slash, integration = written.partition("/")
    head, at, baseline = body.partition("@")
    base, _, candidates = head.partition(":")
    if base not in spellings:
        raise ValueError(f"unknown method {raw!r}; choose from {', '.join(spellings)} (DIG/UDIG with :all or :words)")
    name, strategy, sequential = spellings[base]
    method = REGISTRY[name]
    if at and ("baseline" not in method.uses or baseline not in BASELINES):
        takers = [spelling for spelling, (n, _, _) in spellings.items() if "baseline" in REGISTRY[n].uses]
        raise ValueError(f"{raw!r}: only {', '.join(takers)} take a baseline, one of {', '.join(BASELINES)}")
    if slash and "rule" not in method.uses:
        raise ValueError(f"{base} has no path to integrate; write {body!r}, not {raw!r}")
    if "candidates" not in method.uses:
        if candidates:
            raise ValueError(f"{base} has no candidate set; write {base!r}, not {raw!r}")
        spec = MethodSpec(base, name, strategy)
    else:
        candidates = candidates or "all"
        if candidates not in CANDIDATE_SETS:
            raise ValueError(
                f"unknown candidate set {candidates!r} in {raw!r}; choose one of {', '.join(CANDIDATE_SETS)}"
            )
        spec = MethodSpec(f"{base}:{candidates}", name, strategy, candidates, sequential=sequential)
    if at and baseline != method.paper_baseline:
        spec = replace(spec, name=f"{spec.name}@{baseline}", baseline=baseline)
    if "rule" in method.uses:
        spec_rule = PARAMETERS["rule"].check(integration if slash else rule)
        allowed = method.restricts.get("rule", PARAMETERS["rule"].choices)
        if spec_rule not in allowed:
            raise ValueError(f"{raw!r}: {method.title} integrates by {', '.join(allowed)}, not {spec_rule!r}")
        if spec_rule != PARAMETERS["rule"].default:
            spec = replace(spec, name=f"{spec.name}/{spec_rule}", rule=spec_rule)
    if plus:
        if "objective" not in method.uses or objective not in OBJECTIVES[1:]:
            raise ValueError(f"{raw!r}: a path method may end in +{' or +'.join(OBJECTIVES[1:])}, nothing else")
        spec = replace(spec, name=f"{spec.name}+{objective}", objective=objective)
    return spec


DEFAULT_METHODS = (
    "ig",
    *(f"{m}-{s}:{c}" for m in ("dig", "udig") for s in STRATEGIES for c in CANDIDATE_SETS),
    *(f"udig-{s}:{c}@pad" for s in STRATEGIES for c in CANDIDATE_SETS),  # UDIG from IG's and DIG's baseline
    "random",
    "grad-input",
)
