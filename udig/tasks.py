"""Task adapters: what is attributed. Classification and extractive QA differ in inputs and targets, not in maths.

A :class:`Task` owns everything that differs between tasks: which inputs it takes, how they become one
canonical :class:`Encoding` (a single sequence with offsets into one text), which model outputs are the
targets F, how per-target explanations are assembled into a result, and how the faithfulness metrics perturb
an input. The Explainer, the metrics and the evaluation call the adapter and never branch on a task name; a
new task (sentence pairs, token classification) is one subclass registered in :data:`TASKS`.

The model is always called with word embeddings as ``inputs_embeds``, so position and token-type embeddings
are added once, by the model itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .explanation import Explanation, QAExplanation

MAX_ANSWER_TOKENS = 30


def max_tokens(model: torch.nn.Module, tokenizer) -> int:
    """The longest input the model takes: its position table, bounded by the tokenizer's own limit."""
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # RoBERTa's positions start after the padding index
    limit = getattr(tokenizer, "model_max_length", positions) or positions
    return int(min(positions, limit))


@dataclass
class Encoding:
    """One tokenised input: ids and model extras ``(L,)``, offsets into ``text``, special-token mask."""

    text: str
    input_ids: Tensor  # (L,)
    extras: dict[str, Tensor]  # attention_mask, token_type_ids, ... each (L,)
    offsets: list[tuple[int, int]]
    special_mask: Tensor  # (L,) bool
    truncated: bool
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    context_mask: Tensor | None = None  # QA: tokens an answer may start or end on

    def __len__(self) -> int:
        return len(self.input_ids)


def _tokenize(tokenizer, first: str, second: str | None, limit: int) -> tuple[dict, bool]:
    """Tokenise with offsets and special-token mask, truncating (the context, for pairs) to ``limit``."""
    kwargs = dict(return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt")
    full = tokenizer(first, second, truncation=False, **kwargs)
    truncated = full["input_ids"].shape[1] > limit
    if not truncated:
        return full, False
    if second is None:
        return tokenizer(first, truncation=True, max_length=limit, **kwargs), True
    question_tokens = full.sequence_ids(0).count(0)
    if (
        question_tokens + tokenizer.num_special_tokens_to_add(pair=True) >= limit
    ):  # the tokenizer would raise a bare Exception
        raise ValueError(
            f"the question is {question_tokens} tokens long and fills the model's whole input "
            f"({limit} tokens with the context); shorten it to leave room for the context"
        )
    return tokenizer(first, second, truncation="only_second", max_length=limit, **kwargs), True


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A token's span without the whitespace at its ends: SentencePiece-style tokenizers (DeBERTa-v2's)
    give ``▁film`` the space before the word, and a highlight or an answer must not start with it."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _encoding(enc, text: str, truncated: bool, tokenizer, offsets=None) -> Encoding:
    extras = {name: enc[name][0] for name in tokenizer.model_input_names if name != "input_ids" and name in enc}
    if offsets is None:
        offsets = [tuple(span) for span in enc["offset_mapping"][0].tolist()]
    special = enc["special_tokens_mask"][0].bool()
    return Encoding(
        text=text,
        input_ids=enc["input_ids"][0],
        extras=extras,
        offsets=[_trimmed(text, int(a), int(b)) for a, b in offsets],
        special_mask=special,
        truncated=truncated,
    )


@dataclass(frozen=True)
class Target:
    """One scalar of the model's output: ``getattr(output, name)[:, index]``, or with ``largest`` the output's
    largest entry at each point (the published DIG/UDIG code's ``pred.max(1)``; ``index`` is the input's)."""

    output: str  # "logits", "start_logits" or "end_logits"
    index: int
    largest: bool = False


def model_output(model: torch.nn.Module, encoding: Encoding, embeds: Tensor):
    """The model's output for a batch of word embeddings ``(B, L, d)`` of the encoded input."""
    batch = embeds.shape[0]
    extras = {name: value.expand(batch, -1).to(embeds.device) for name, value in encoding.extras.items()}
    return model(inputs_embeds=embeds, **extras)


def select_targets(output, targets: list[Target]) -> Tensor:
    """The targets' values in a model output: ``(B, n_targets)``."""
    values = [getattr(output, t.output) for t in targets]
    return torch.stack([v.max(1).values if t.largest else v[:, t.index] for v, t in zip(values, targets)], dim=1)


def best_span(
    start_logits: Tensor, end_logits: Tensor, allowed: Tensor, max_len: int = MAX_ANSWER_TOKENS
) -> tuple[int, int]:
    """The valid span with the highest start + end logit: start <= end, both allowed, bounded length."""
    scores = start_logits[:, None] + end_logits[None, :]  # (L, L)
    length = torch.arange(len(start_logits))
    gap = length[None, :] - length[:, None]
    valid = (gap >= 0) & (gap < max_len) & allowed[:, None] & allowed[None, :]
    if not valid.any():
        raise ValueError("the context has no tokens left to answer from")
    flat = scores.masked_fill(~valid, float("-inf")).argmax()
    return int(flat // len(start_logits)), int(flat % len(start_logits))


@dataclass
class Prediction:
    """The model's decision on the input: the fixed targets along the path and what the result shows."""

    targets: list[Target]
    probs: list[list[float]]  # per target: softmax of its output (over classes, or over positions)
    labels: list[str]  # per target: a readable name
    answer: tuple[int, int] | None = None  # QA: the answer's start and end token


Variant = tuple[Tensor, "Tensor | None"]  # token ids (R,), token-type ids (R,) or None


class Task(ABC):
    """One kind of model head. Stateless: one shared instance per task in :data:`TASKS`."""

    name: ClassVar[str]  # "classification", "qa": stored in every Explanation
    description: ClassVar[str]  # how error messages name the model
    fields: ClassVar[tuple[str, ...]]  # the inputs it takes, e.g. ("text",)
    head_suffix: ClassVar[str]  # transformers class-name ending of its head
    auto_class_name: ClassVar[str]  # the transformers Auto class that loads it

    def auto_class(self):
        import transformers

        return getattr(transformers, self.auto_class_name)

    def check_inputs(self, inputs: dict[str, Any]) -> dict[str, str]:
        """The task's inputs as non-empty strings; clear errors for missing, foreign or empty ones."""
        foreign = [name for name, value in inputs.items() if value is not None and name not in self.fields]
        if foreign:
            wanted = " and ".join(f"{name}=..." for name in self.fields)
            raise ValueError(f"this is a {self.description} model: pass {wanted}, not {'/'.join(foreign)}")
        for name in self.fields:
            value = inputs.get(name)
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {type(value).__name__}")
            if not value.strip():
                raise ValueError(f"{name} is empty: enter some text to explain")
        return {name: inputs[name] for name in self.fields}

    @abstractmethod
    def encode(self, tokenizer, inputs: dict[str, str], limit: int) -> Encoding:
        """One canonical sequence of at most ``limit`` tokens."""

    def resolve_target(
        self, target: int | str | None, objective: str, labels: dict[int, str], n_classes: int
    ) -> int | None:
        """The requested target as an output index (None: the model's own decision), checked before any work."""
        if target is not None:
            raise ValueError(f"a {self.description} model explains its predicted answer span; target must be None")
        if objective == "largest":
            raise ValueError(
                f"objective='largest' (the published DIG/UDIG code's max logit) is for classification; "
                f"a {self.description} model explains its targets' own logits"
            )
        return None

    @abstractmethod
    def predict(
        self, output, encoding: Encoding, target: int | None, labels: dict[int, str], objective: str
    ) -> Prediction:
        """The targets to attribute, from the model's output on the input (one row); ``target`` as resolved."""

    @abstractmethod
    def assemble(
        self, explanations: list[Explanation], encoding: Encoding, prediction: Prediction, inputs: dict[str, str]
    ) -> Explanation | QAExplanation:
        """The result the user gets from one explanation per target."""

    @abstractmethod
    def perturbations(self, ids: Tensor, chosen: Tensor, types: Tensor | None, tokenizer) -> dict[str, Variant]:
        """Inputs the faithfulness metrics score: ``original``, ``log_odds``, ``comprehensiveness`` and
        ``sufficiency``, ``chosen (L,)`` marking the top-k tokens. Equal variants may be one object."""

    @abstractmethod
    def scored_label(self, explanation: Explanation, original_log_probs: Tensor) -> int:
        """ŷ, the output whose probability the metrics follow (refusing an explanation of anything else)."""

    def token_types(self, explanation: Explanation) -> Tensor:
        """Token-type ids as the tokenizer made them (the Explanation does not store them): all 0 here."""
        return torch.zeros(len(explanation.input_ids), dtype=torch.long)


class Classification(Task):
    """Sequence classification: F is the logit of one class, the predicted one unless the user picks."""

    name = "classification"
    description = "classification"
    fields = ("text",)
    head_suffix = "ForSequenceClassification"
    auto_class_name = "AutoModelForSequenceClassification"

    def encode(self, tokenizer, inputs: dict[str, str], limit: int) -> Encoding:
        enc, truncated = _tokenize(tokenizer, inputs["text"], None, limit)
        encoding = _encoding(enc, inputs["text"], truncated, tokenizer)
        if bool(encoding.special_mask.all()):
            raise ValueError("the text has no word the model can read (only invisible or control characters)")
        return encoding

    def resolve_target(
        self, target: int | str | None, objective: str, labels: dict[int, str], n_classes: int
    ) -> int | None:
        if target is None:
            return None
        if objective == "largest":
            raise ValueError(
                "objective='largest' follows the largest logit at each path point, not a chosen class; "
                "leave target unset"
            )
        return _class_index(target, n_classes, labels)

    def predict(
        self, output, encoding: Encoding, target: int | None, labels: dict[int, str], objective: str
    ) -> Prediction:
        """At the input the largest logit is the predicted class's; along the path (``objective="largest"``) it
        may be another class's."""
        probs = output.logits[0].float().softmax(-1)
        index = int(probs.argmax()) if target is None else target
        explained = Target("logits", index, largest=objective == "largest")
        return Prediction([explained], [probs.tolist()], [labels.get(index, str(index))])

    def assemble(self, explanations, encoding, prediction, inputs) -> Explanation:
        (explanation,) = explanations
        return explanation

    def perturbations(self, ids: Tensor, chosen: Tensor, types: Tensor | None, tokenizer) -> dict[str, Variant]:
        pad_id = special_token_id(tokenizer, ("pad", "unk", "mask"))
        part = (lambda keep: None) if types is None else (lambda keep: types[keep])
        return {
            "original": (ids, types),
            "log_odds": (torch.where(chosen, pad_id, ids), types),  # top-k replaced in place by [PAD]
            "comprehensiveness": (ids[~chosen], part(~chosen)),  # top-k deleted, the rest re-packed
            "sufficiency": (ids[chosen], part(chosen)),  # only the top-k kept, re-packed
        }

    def scored_label(self, explanation: Explanation, original_log_probs: Tensor) -> int:
        label = int(original_log_probs.argmax())
        if explanation.target != label:
            raise ValueError(
                f"the explanation attributes class {explanation.target} but the model predicts class {label}; "
                "faithfulness metrics score explanations of the predicted class"
            )
        return label


class QuestionAnswering(Task):
    """Extractive QA: F is the start logit of the answer's first token, and separately the end logit of its last."""

    name = "qa"
    description = "question-answering"
    fields = ("question", "context")
    head_suffix = "ForQuestionAnswering"
    auto_class_name = "AutoModelForQuestionAnswering"

    def encode(self, tokenizer, inputs: dict[str, str], limit: int) -> Encoding:
        """``[CLS] question [SEP] context [SEP]``, offsets mapped into ``question + "\\n" + context``."""
        question, context = inputs["question"], inputs["context"]
        enc, truncated = _tokenize(tokenizer, question, context, limit)
        text = f"{question}\n{context}"
        shift = len(question) + 1
        sequence_ids = enc.sequence_ids(0)
        offsets = [
            (start + shift, end + shift) if seq == 1 else (start, end)
            for (start, end), seq in zip(enc["offset_mapping"][0].tolist(), sequence_ids)
        ]
        encoding = _encoding(enc, text, truncated, tokenizer, offsets=offsets)
        encoding.segments = {"question": (0, len(question)), "context": (shift, len(text))}
        encoding.context_mask = torch.tensor([seq == 1 for seq in sequence_ids])
        for part, index in (("question", 0), ("context", 1)):
            if index not in sequence_ids:
                raise ValueError(f"the {part} has no word the model can read (only invisible or control characters)")
        return encoding

    def predict(
        self, output, encoding: Encoding, target: int | None, labels: dict[int, str], objective: str
    ) -> Prediction:
        start_logits, end_logits = output.start_logits[0].float(), output.end_logits[0].float()
        answer = best_span(start_logits, end_logits, encoding.context_mask.to(start_logits.device))
        return Prediction(
            targets=[Target("start_logits", answer[0]), Target("end_logits", answer[1])],
            probs=[start_logits.softmax(-1).tolist(), end_logits.softmax(-1).tolist()],
            labels=[f"start position {answer[0]}", f"end position {answer[1]}"],
            answer=answer,
        )

    def assemble(self, explanations, encoding, prediction, inputs) -> QAExplanation:
        start, end = explanations
        shift = encoding.segments["context"][0]
        first, last = prediction.answer
        span = (encoding.offsets[first][0] - shift, encoding.offsets[last][1] - shift)
        context = inputs["context"]
        return QAExplanation(inputs["question"], context, context[span[0] : span[1]], span, start, end)

    def perturbations(self, ids: Tensor, chosen: Tensor, types: Tensor | None, tokenizer) -> dict[str, Variant]:
        """Nothing is deleted, so positions stay comparable: tokens are replaced by [MASK]."""
        mask_id = special_token_id(tokenizer, ("mask", "unk", "pad"))
        removed = (torch.where(chosen, mask_id, ids), types)
        return {
            "original": (ids, types),
            "log_odds": removed,
            "comprehensiveness": removed,
            "sufficiency": (torch.where(chosen, ids, mask_id), types),  # every other token masked, specials too
        }

    def scored_label(self, explanation: Explanation, original_log_probs: Tensor) -> int:
        return explanation.target  # the predicted start (end) position

    def token_types(self, explanation: Explanation) -> Tensor:
        """0 up to the first context token, 1 from there (BERT's ``[CLS] q [SEP] c [SEP]``: 0 ... 0 1 ... 1)."""
        context_start = explanation.segments["context"][0]
        in_context = torch.tensor(
            [
                not special and start >= context_start
                for (start, _end), special in zip(explanation.offsets, explanation.special_mask)
            ]
        )
        return (in_context.long().cumsum(0) > 0).long()


TASKS: dict[str, Task] = {task.name: task for task in (Classification(), QuestionAnswering())}


def get_task(name: str) -> Task:
    """The adapter for a task name (as stored in an Explanation)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def task_from_architectures(names) -> Task | None:
    """The adapter whose head matches class names such as a config's ``architectures``; else None."""
    for name in names or []:
        for task in TASKS.values():
            if name.endswith(task.head_suffix):
                return task
    return None


def task_of(model: torch.nn.Module) -> Task:
    """The adapter for a model's head; a wrapper is recognised by its config's ``architectures``."""
    config = getattr(model, "config", None)
    task = task_from_architectures([type(model).__name__, *(getattr(config, "architectures", None) or [])])
    if task is None:
        heads = " or ".join(f"*{t.head_suffix}" for t in TASKS.values())
        raise TypeError(f"{type(model).__name__} is not supported: pass a transformers {heads} model")
    return task


def special_token_id(tokenizer, names: tuple[str, ...]) -> int:
    """The first of the named special tokens the tokenizer has (e.g. PAD, else UNK)."""
    for name in names:
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if token_id is not None:
            return int(token_id)
    raise ValueError(f"the tokenizer has none of the tokens {[n.upper() for n in names]} to perturb inputs with")


def vocabulary_id(tokenizer, token: str) -> int | None:
    """The id of ``token`` in the tokenizer's vocabulary; None when it is not there (it would map to UNK)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(token_id)


def _class_index(target: int | str, n_classes: int, labels: dict[int, str]) -> int:
    if isinstance(target, str):
        by_name = {name.lower(): i for i, name in labels.items()}
        if target.lower() not in by_name:
            raise ValueError(f"unknown target label {target!r}; the model's labels are {sorted(by_name)}")
        return by_name[target.lower()]
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_classes:
        raise ValueError(f"target must be a class index in [0, {n_classes}) or a label, got {target!r}")
    return target
