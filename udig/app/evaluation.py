"""What the 500-sentence evaluation found, as the demo shows it beside one explanation's scores.

The evaluation's full summary (``docs/evaluation/summary.json``) is not part of the package, nor of a Space's
upload; :func:`finding` derives the little the page needs from it (each method's faithfulness means and
intervals) and the package ships that as ``assets/evaluation.json`` (a test keeps the two equal). After a new
evaluation, rewrite it with::

    python -c "import json; from udig.app.evaluation import finding; print(json.dumps(finding(json.load(
        open('docs/evaluation/summary.json'))), indent=1))" > assets/evaluation.json
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from ..methods import REGISTRY
from ..metrics import METRIC_INFO
from ..models import assets_dir
from ..settings import PARAMETERS, Settings

FINDING_FILE = "evaluation.json"  # in udig's assets
FINDING_SCORES = ("log_odds", "comprehensiveness", "sufficiency")  # the scores the evaluation gives intervals for
REFERENCES = ("random", "grad-input")  # the sanity baselines: no path, at most one gradient


def finding(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an evaluation summary the demo shows: the setting it ran under and, per method, the mean and
    95 % bootstrap interval of each of :data:`FINDING_SCORES`."""
    config = summary["config"]
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "n_examples": summary["n_examples"],
        "settings": {name: config[name] for name in ("steps", "factor", "nbrs", "topk")},
        "methods": {
            name: {score: dict(summary["methods"][name][score]) for score in FINDING_SCORES}
            for name in summary["methods_order"]
        },
    }


@functools.cache
def shipped_finding() -> dict[str, Any]:
    """The finding shipped with the package (``assets/evaluation.json``)."""
    return json.loads((assets_dir() / FINDING_FILE).read_text(encoding="utf-8"))


def evaluated_name(settings: Settings) -> str:
    """The evaluation's name for a method run under ``settings`` (``udig-maxcount:words``), written as
    :mod:`udig.evaluation.spec` writes it: what a paper uses by default (its baseline token, the left Riemann
    sum) is left out. Built here, not parsed there, so the app does not import the evaluation's machinery."""
    method = REGISTRY[settings.method]
    name = ("seq-" if settings.sequential and "sequential" in method.uses else "") + settings.method
    if "strategy" in method.uses:
        name += f"-{settings.strategy}"
    if "candidates" in method.uses:
        name += f":{settings.candidates}"
    if "baseline" in method.uses and settings.baseline != method.paper_baseline:
        name += f"@{settings.baseline}"
    if "rule" in method.uses and settings.rule != PARAMETERS["rule"].default:
        name += f"/{settings.rule}"
    return name


def _interval(values: Mapping[str, float]) -> str:
    return f"{values['mean']:+.2f} [{values['low']:+.2f}, {values['high']:+.2f}]".replace("-", "−")


def finding_lines(model: str, settings: Settings, title: str, found: Mapping[str, Any] | None = None) -> list[str]:
    """A heading, then one line per method, for the method of ``settings`` (called ``title``) and each of
    :data:`REFERENCES`: its mean scores over the evaluation's sentences, with intervals. Empty unless ``model``
    is the evaluated one and the evaluation ran this method under these settings (strategy, candidates,
    baseline, rule)."""
    found = shipped_finding() if found is None else found
    name = evaluated_name(settings)
    if model != found["model"] or name not in found["methods"]:
        return []
    lines = [
        f"What {found['n_examples']} Rotten Tomatoes sentences found for this model ({found['settings']['steps']} "
        "steps; mean and 95 % interval):"
    ]
    for method in (name, *REFERENCES):
        scores = found["methods"].get(method)
        if scores is not None:
            lines.append(
                f"{title if method == name else REGISTRY[method].title}: "
                + " · ".join(f"{METRIC_INFO[key].short} {_interval(scores[key])}" for key in FINDING_SCORES)
            )
    return lines


def about_markdown(names: Mapping[str, str], found: Mapping[str, Any] | None = None) -> str:
    """The About tab's summary of the evaluation: one line per method of ``names`` (evaluation name -> the page's
    title), then the sanity baselines, each score with its 95 % interval."""
    found = shipped_finding() if found is None else found
    setting = found["settings"]
    lines = [
        f"- **{title}**: " + " · ".join(f"{METRIC_INFO[key].short} {_interval(scores[key])}" for key in FINDING_SCORES)
        for name, title in {**names, **{m: REGISTRY[m].title for m in REFERENCES}}.items()
        if (scores := found["methods"].get(name)) is not None
    ]
    return (
        f"### What the evaluation found\nOn {found['n_examples']} Rotten Tomatoes sentences, with this demo's "
        f"default model ({found['model']}), {setting['steps']} steps and the top {setting['topk']} % of tokens: "
        "the mean and its 95 % bootstrap interval (log-odds and sufficiency: lower is better; comprehensiveness: "
        "higher is better). Random and gradient × input are the sanity baselines: what a guess and a one-gradient "
        "explanation score.\n\n" + "\n".join(lines)
    )
