"""Task adapters: what F is. Classification and extractive QA differ in inputs and targets, not in maths.

An adapter turns user input into one canonical :class:`Encoding` (a single sequence with offsets into
one text) and says which model output is attributed. The model is always called with word embeddings
as ``inputs_embeds``, so position and token-type embeddings are added once, by the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

TASKS = ("classification", "qa")
MAX_ANSWER_TOKENS = 30


def task_from_architectures(names) -> str | None:
    """``"qa"`` or ``"classification"`` from class names such as a config's ``architectures``; else None."""
    for name in names or []:
        if name.endswith("ForQuestionAnswering"):
            return "qa"
        if name.endswith("ForSequenceClassification"):
            return "classification"
    return None


def task_of(model: torch.nn.Module) -> str:
    """``"qa"`` for a *ForQuestionAnswering head, ``"classification"`` for *ForSequenceClassification.

    The model's class decides; a wrapper is recognised by its config's ``architectures``.
    """
    config = getattr(model, "config", None)
    task = task_from_architectures([type(model).__name__, *(getattr(config, "architectures", None) or [])])
    if task is None:
        raise TypeError(
            f"{type(model).__name__} is not supported: pass a transformers *ForSequenceClassification or "
            "*ForQuestionAnswering model"
        )
    return task


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
    strategy = "only_second" if second is not None else True
    return tokenizer(first, second, truncation=strategy, max_length=limit, **kwargs), True


def encode_text(tokenizer, text: str, limit: int) -> Encoding:
    """A single text for classification."""
    enc, truncated = _tokenize(tokenizer, text, None, limit)
    return _encoding(enc, text, truncated, tokenizer)


def encode_question(tokenizer, question: str, context: str, limit: int) -> Encoding:
    """``[CLS] question [SEP] context [SEP]``, offsets mapped into ``question + "\\n" + context``."""
    enc, truncated = _tokenize(tokenizer, question, context, limit)
    text = f"{question}\n{context}"
    shift = len(question) + 1
    sequence_ids = enc.sequence_ids(0)
    offsets = [tuple(span) for span in enc["offset_mapping"][0].tolist()]
    enc_offsets = [
        (start + shift, end + shift) if seq == 1 else (start, end)
        for (start, end), seq in zip(offsets, sequence_ids)
    ]
    encoding = _encoding(enc, text, truncated, tokenizer, offsets=enc_offsets)
    encoding.segments = {"question": (0, len(question)), "context": (shift, len(text))}
    encoding.context_mask = torch.tensor([seq == 1 for seq in sequence_ids])
    return encoding


def _encoding(enc, text: str, truncated: bool, tokenizer, offsets=None) -> Encoding:
    extras = {
        name: enc[name][0]
        for name in tokenizer.model_input_names
        if name != "input_ids" and name in enc
    }
    if offsets is None:
        offsets = [tuple(span) for span in enc["offset_mapping"][0].tolist()]
    special = enc["special_tokens_mask"][0].bool()
    return Encoding(
        text=text,
        input_ids=enc["input_ids"][0],
        extras=extras,
        offsets=[(int(a), int(b)) for a, b in offsets],
        special_mask=special,
        truncated=truncated,
    )


@dataclass(frozen=True)
class Target:
    """One scalar of the model's output: ``getattr(output, name)[:, index]``."""

    output: str  # "logits", "start_logits" or "end_logits"
    index: int


def target_values(model: torch.nn.Module, encoding: Encoding, embeds: Tensor, targets: list[Target]) -> Tensor:
    """F for a batch of word embeddings ``(B, L, d)``: ``(B, n_targets)`` target values."""
    batch = embeds.shape[0]
    extras = {name: value.expand(batch, -1).to(embeds.device) for name, value in encoding.extras.items()}
    return select_targets(model(inputs_embeds=embeds, **extras), targets)


def select_targets(output, targets: list[Target]) -> Tensor:
    """The targets' values in a model output: ``(B, n_targets)``."""
    return torch.stack([getattr(output, t.output)[:, t.index] for t in targets], dim=1)


def best_span(start_logits: Tensor, end_logits: Tensor, allowed: Tensor, max_len: int = MAX_ANSWER_TOKENS) -> tuple[int, int]:
    """The valid span with the highest start + end logit: start <= end, both allowed, bounded length."""
    scores = start_logits[:, None] + end_logits[None, :]  # (L, L)
    length = torch.arange(len(start_logits))
    gap = length[None, :] - length[:, None]
    valid = (gap >= 0) & (gap < max_len) & allowed[:, None] & allowed[None, :]
    if not valid.any():
        raise ValueError("the context has no tokens left to answer from")
    flat = scores.masked_fill(~valid, float("-inf")).argmax()
    return int(flat // len(start_logits)), int(flat % len(start_logits))
