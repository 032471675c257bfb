"""The result of one attribution: plain data that renderers, metrics and exports share.

An :class:`Explanation` holds everything needed to show, score or re-run an attribution and nothing
Gradio-specific. Tensors that are only useful in-process (the path points) are kept out of
:meth:`Explanation.to_dict`, so the JSON export stays small and portable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Explanation:
    """Attribution of one scalar target (a class logit, or a QA start/end logit) to the input tokens.

    ``attributions`` are the signed per-token sums of gradient x step; ``scores`` the same divided by
    their L2 norm (the papers' display convention). ``delta`` is the completeness error
    ``sum(attributions) - (f_input - f_baseline)``. ``anchors[i]`` lists the vocabulary ids token i's
    path passes through, input word first and baseline word last (``None`` for special tokens and IG).
    """

    task: str  # "classification" or "qa"
    method: str  # a name in udig.methods.REGISTRY: "ig", "dig", "udig", "random", "grad-input"
    strategy: str | None  # "greedy" / "maxcount" for DIG and UDIG, None for the others
    text: str  # the text the offsets index into (the context-joined text for QA, see `segments`)
    tokens: list[str]
    input_ids: list[int]
    offsets: list[tuple[int, int]]  # character span of each token in `text`; (0, 0) for specials
    special_mask: list[bool]
    attributions: list[float]
    target: int  # class index, or token position for QA
    target_label: str
    output: str  # model output attributed: "logits", "start_logits" or "end_logits"
    probs: list[float]  # softmax of `output` on the input (over classes, or over positions for QA)
    f_input: float
    f_baseline: float
    delta: float
    anchors: list[list[int] | None]
    anchor_tokens: list[list[str] | None]
    real_word_share: float | None  # share of anchors that are real, trained words (None for IG)
    baseline_token: str
    settings: dict[str, Any]
    timings: dict[str, float]
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)  # QA: char range of question/context
    path: torch.Tensor | None = field(default=None, repr=False)  # (N, L, d) path points, in-process only
    relative_delta: float | None = None  # |Δ| / |F(x) - F(x')|; None without a path or when F(x) = F(x')
    delta_target_met: bool | None = None  # whether |Δ| met explain(max_delta=...); None when no target was set

    @property
    def scores(self) -> list[float]:
        """Attributions divided by their L2 norm (all zeros stay zeros)."""
        a = torch.tensor(self.attributions, dtype=torch.float64)
        norm = float(a.norm())
        return (a / norm).tolist() if norm > 0 else a.tolist()

    @property
    def parts(self) -> dict[str, Explanation]:
        """The explanations this result is made of, by role: just this one."""
        return {"": self}

    @property
    def prediction(self) -> float:
        """Probability of the attributed target on the input."""
        return self.probs[self.target]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the in-process path tensor, as JSON-ready Python values."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "path"}
        data["scores"] = self.scores
        data["offsets"] = [list(span) for span in self.offsets]
        data["segments"] = {k: list(v) for k, v in self.segments.items()}
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


@dataclass
class QAExplanation:
    """Extractive QA: the predicted answer span and one explanation each for its start and end logits."""

    question: str
    context: str
    answer: str
    answer_span: tuple[int, int]  # character span of the answer in `context`
    start: Explanation
    end: Explanation

    @property
    def attributions(self) -> list[float]:
        """Start plus end attributions: one combined view of what located the answer."""
        return [s + e for s, e in zip(self.start.attributions, self.end.attributions)]

    @property
    def delta(self) -> float:
        return self.start.delta + self.end.delta

    @property
    def parts(self) -> dict[str, Explanation]:
        """The start and end explanations, by role."""
        return {"start": self.start, "end": self.end}

    @property
    def delta_target_met(self) -> bool | None:
        """Whether both the start and the end explanation met the completeness target (None: no target)."""
        met = [part.delta_target_met for part in self.parts.values()]
        return None if None in met else all(met)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "context": self.context,
            "answer": self.answer,
            "answer_span": list(self.answer_span),
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
        }
