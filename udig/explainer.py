"""The public entry point: ``Explainer(model, tokenizer).explain(...)``.

Validation and normalisation happen here, once; below this boundary every function takes one canonical
form (one sequence, ``(L, d)`` embeddings, explicit targets). The flow is
text -> task adapter -> path -> integrator -> :class:`Explanation`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import Tensor

from . import paths
from .explanation import Explanation, QAExplanation
from .integrate import integrate_path
from .tasks import (
    Encoding,
    Target,
    best_span,
    encode_question,
    encode_text,
    max_tokens,
    select_targets,
    target_values,
    task_of,
)
from .vocab import CANDIDATE_RULES, VocabIndex, vocab_index_for

CandidateSourceBuilder = Callable[[VocabIndex, Tensor, Tensor, "Settings"], paths.CandidateSource]


def _dig_candidates(vocab: VocabIndex, word_ids: Tensor, refs: Tensor, settings: "Settings") -> paths.CandidateSource:
    """DIG: the KNN-graph neighbours of the previous anchor."""
    graph = vocab.graph(settings.graph_k, settings.candidates)  # (V, K)
    return lambda t, current: graph[current].long()


def _udig_candidates(vocab: VocabIndex, word_ids: Tensor, refs: Tensor, settings: "Settings") -> paths.CandidateSource:
    """UDIG: the nearest words to the t-th evenly spaced reference point on the IG line."""
    table = vocab.embeddings
    alphas = paths.udig_reference_alphas(settings.steps)
    nearest = vocab.nearest_on_segments(table[refs], table[word_ids], alphas, settings.nbrs, settings.candidates)
    return lambda t, current: nearest[:, t]  # (T, nbrs)


# The discretized methods differ only in where each anchor's candidates come from.
ANCHOR_SOURCES: dict[str, CandidateSourceBuilder] = {"dig": _dig_candidates, "udig": _udig_candidates}
METHODS = ("ig", *ANCHOR_SOURCES)
BASELINES = ("mask", "pad", "unk")
DEFAULT_BASELINE = {"ig": "pad", "dig": "pad", "udig": "mask"}  # the DIG and UDIG papers' choices
TOKENS_PER_BATCH = 8192  # path points x tokens per forward/backward when internal_batch_size is None


@dataclass(frozen=True)
class Settings:
    """One explain() call's validated parameters; ``info`` is enough to rerun it."""

    method: str
    strategy: str | None
    steps: int
    factor: int
    nbrs: int
    baseline: str
    candidates: str
    graph_k: int

    @property
    def n_points(self) -> int:
        if self.method == "ig":
            return self.steps + 1
        return 2**self.factor * (self.steps + 1) + 1


class Explainer:
    """Attributes a sequence-classification or extractive-QA model's decision to its input tokens.

    Parameters are stored as given and checked here; nothing heavy happens until ``explain``. The
    vocabulary index (KNN graph included) is built on first use and shared by every Explainer of the
    same model.

    candidates: "all" (the papers: any vocabulary row may be an anchor) or "words" (real, trained
        words only; see :mod:`udig.vocab`). ``explain(candidates=...)`` overrides it per call.
    graph_k: neighbours per word in DIG's KNN graph (500 in the DIG paper).
    internal_batch_size: path points per forward/backward pass; None sizes it from the input length.
    max_length: token limit; None uses the model's own. Longer inputs are truncated and flagged.
    cache_dir: where the vocabulary graph is cached; None uses huggingface_hub's assets cache (HF_HOME).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        candidates: str = "all",
        graph_k: int = 500,
        internal_batch_size: int | None = None,
        max_length: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        _check_choice("candidates", candidates, CANDIDATE_RULES)
        _check_positive("graph_k", graph_k)
        if internal_batch_size is not None:
            _check_positive("internal_batch_size", internal_batch_size)
        if max_length is not None and max_length < 3:
            raise ValueError(f"max_length must be at least 3 tokens, got {max_length}")
        self.task = task_of(model)
        self.model = model
        self.tokenizer = tokenizer
        self.candidates = candidates
        self.graph_k = graph_k
        self.internal_batch_size = internal_batch_size
        self.max_length = max_length
        self.cache_dir = cache_dir

    @property
    def vocab_(self) -> VocabIndex:
        return vocab_index_for(self.model, self.tokenizer, self.cache_dir)

    @property
    def labels(self) -> dict[int, str]:
        config_labels = getattr(self.model.config, "id2label", None) or {}
        return {int(i): str(name) for i, name in config_labels.items()}

    def explain(
        self,
        text: str | None = None,
        *,
        question: str | None = None,
        context: str | None = None,
        method: str = "udig",
        strategy: str = "maxcount",
        steps: int = 30,
        factor: int = 0,
        nbrs: int = 50,
        baseline: str | None = None,
        target: int | str | None = None,
        candidates: str | None = None,
    ) -> Explanation | QAExplanation:
        """Explain one input: ``text`` for classification, ``question`` + ``context`` for QA.

        method: "ig", "dig" or "udig"; strategy: "greedy" or "maxcount" (DIG and UDIG).
        steps: IG's Riemann steps, or the number of anchors m for DIG/UDIG.
        factor: DIG/UDIG upscaling, 2^factor (m + 1) + 1 points. nbrs: UDIG's candidates per point.
        baseline: "mask", "pad", "unk" or any vocabulary token; None takes the paper's (PAD for IG and
            DIG, MASK for UDIG). target: class index or label (classification); None = predicted class.
        """
        started = time.perf_counter()
        settings = self._settings(method, strategy, steps, factor, nbrs, baseline, candidates)
        warnings: list[str] = []
        reference_id = self._reference_id(settings.baseline, warnings)
        encoding = self._encode(text, question, context)
        if encoding.truncated:
            warnings.append(f"input truncated to {len(encoding)} tokens, the model's limit")
        self.model.eval()
        embeddings = self.model.get_input_embeddings().weight  # (V, d)
        inputs = embeddings[encoding.input_ids.to(embeddings.device)].detach()  # (L, d)
        targets, probs, answer, input_values = self._targets(encoding, inputs, target)
        timings = {"encode": time.perf_counter() - started}

        tick = time.perf_counter()
        reference_ids = torch.where(encoding.special_mask, encoding.input_ids, reference_id)  # (L,)
        path, chains = self._path(settings, encoding, inputs, reference_ids)
        timings["path"] = time.perf_counter() - tick

        tick = time.perf_counter()
        batch_size = self.internal_batch_size or max(1, TOKENS_PER_BATCH // len(encoding))
        integral = integrate_path(
            lambda points: target_values(self.model, encoding, points, targets), path, batch_size, input_values
        )
        timings["gradients"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started

        anchors, real_share = self._anchors(chains, encoding, reference_ids)
        explanations = [
            Explanation(
                task=self.task,
                method=settings.method,
                strategy=settings.strategy,
                text=encoding.text,
                tokens=self.tokenizer.convert_ids_to_tokens(encoding.input_ids.tolist()),
                input_ids=encoding.input_ids.tolist(),
                offsets=encoding.offsets,
                special_mask=encoding.special_mask.tolist(),
                attributions=integral.attributions[i].tolist(),
                target=t.index,
                target_label=self._target_label(t),
                output=t.output,
                probs=probs[i],
                f_input=float(integral.values[i, -1]),
                f_baseline=float(integral.values[i, 0]),
                delta=float(integral.delta[i]),
                anchors=anchors,
                anchor_tokens=[None if a is None else self.tokenizer.convert_ids_to_tokens(a) for a in anchors],
                real_word_share=real_share,
                baseline_token=self.tokenizer.convert_ids_to_tokens(reference_id),
                settings=self._info(settings),
                timings=dict(timings),
                truncated=encoding.truncated,
                warnings=list(warnings),
                segments=dict(encoding.segments),
                path=path.detach().cpu(),
            )
            for i, t in enumerate(targets)
        ]
        if self.task == "classification":
            return explanations[0]
        start, end = explanations
        question_len = encoding.segments["context"][0]
        span = (encoding.offsets[answer[0]][0] - question_len, encoding.offsets[answer[1]][1] - question_len)
        return QAExplanation(
            question=question, context=context, answer=context[span[0] : span[1]], answer_span=span, start=start, end=end
        )

    # -- validation and encoding (the boundary) ----------------------------------------------------

    def _settings(self, method, strategy, steps, factor, nbrs, baseline, candidates) -> Settings:
        _check_choice("method", method, METHODS)
        _check_choice("strategy", strategy, paths.STRATEGIES)
        _check_positive("steps", steps)
        _check_positive("nbrs", nbrs)
        if not isinstance(factor, int) or isinstance(factor, bool) or not 0 <= factor <= 6:
            raise ValueError(f"factor must be an integer from 0 to 6, got {factor!r}")
        candidates = self.candidates if candidates is None else candidates
        _check_choice("candidates", candidates, CANDIDATE_RULES)
        if baseline is None:
            baseline = DEFAULT_BASELINE[method]
        if not isinstance(baseline, str) or not baseline.strip():
            raise ValueError(f"baseline must be one of {BASELINES} or a vocabulary token, got {baseline!r}")
        return Settings(
            method=method,
            strategy=None if method == "ig" else strategy,
            steps=steps,
            factor=0 if method == "ig" else factor,
            nbrs=nbrs,
            baseline=baseline,
            candidates=candidates,
            graph_k=self.graph_k,
        )

    def _reference_id(self, baseline: str, warnings: list[str]) -> int:
        """The baseline token's id; a model without the named token falls back to PAD, then UNK."""
        tok = self.tokenizer
        if baseline in BASELINES:
            for name in (baseline, "pad", "unk"):
                token_id = getattr(tok, f"{name}_token_id", None)
                if token_id is not None:
                    if name != baseline:
                        warnings.append(f"the tokenizer has no {baseline.upper()} token; the baseline uses {name.upper()}")
                    return int(token_id)
            raise ValueError("the tokenizer has no MASK, PAD or UNK token to build a baseline from; name a token")
        token_id = tok.convert_tokens_to_ids(baseline)
        if token_id is None or (token_id == tok.unk_token_id and baseline != tok.unk_token):
            raise ValueError(f"baseline token {baseline!r} is not in the vocabulary; use one of {BASELINES} or a vocabulary token")
        return int(token_id)

    def _encode(self, text: str | None, question: str | None, context: str | None) -> Encoding:
        limit = self.max_length or max_tokens(self.model, self.tokenizer)
        if self.task == "classification":
            if question is not None or context is not None:
                raise ValueError("this is a classification model: pass text=..., not question/context")
            _check_text("text", text)
            return encode_text(self.tokenizer, text, limit)
        if text is not None:
            raise ValueError("this is a question-answering model: pass question=... and context=..., not text")
        _check_text("question", question)
        _check_text("context", context)
        encoding = encode_question(self.tokenizer, question, context, limit)
        if not bool(encoding.context_mask.any()):
            raise ValueError("the question fills the model's whole input; shorten it to leave room for the context")
        return encoding

    # -- the steps ---------------------------------------------------------------------------------

    def _targets(self, encoding: Encoding, inputs: Tensor, target) -> tuple[list[Target], list[list[float]], tuple, Tensor]:
        """The fixed targets along the path, the input's probabilities, QA's answer positions, and the
        targets' values on the input (the path's end, so the integrator need not run it again)."""
        with torch.no_grad():
            extras = {k: v[None].to(inputs.device) for k, v in encoding.extras.items()}
            output = self.model(inputs_embeds=inputs[None], **extras)
        if self.task == "classification":
            probs = output.logits[0].float().softmax(-1)
            index = int(probs.argmax()) if target is None else self._class_index(target, len(probs))
            targets = [Target("logits", index)]
            return targets, [probs.tolist()], (), select_targets(output, targets)[0]
        if target is not None:
            raise ValueError("QA explains the predicted answer span; target must be None")
        start_logits, end_logits = output.start_logits[0].float(), output.end_logits[0].float()
        allowed = encoding.context_mask.to(start_logits.device)
        answer = best_span(start_logits, end_logits, allowed)
        probs = [start_logits.softmax(-1).tolist(), end_logits.softmax(-1).tolist()]
        targets = [Target("start_logits", answer[0]), Target("end_logits", answer[1])]
        return targets, probs, answer, select_targets(output, targets)[0]

    def _class_index(self, target: int | str, n_classes: int) -> int:
        if isinstance(target, str):
            by_name = {name.lower(): i for i, name in self.labels.items()}
            if target.lower() not in by_name:
                raise ValueError(f"unknown target label {target!r}; the model's labels are {sorted(by_name)}")
            return by_name[target.lower()]
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < n_classes:
            raise ValueError(f"target must be a class index in [0, {n_classes}) or a label, got {target!r}")
        return target

    def _target_label(self, target: Target) -> str:
        if target.output == "logits":
            return self.labels.get(target.index, str(target.index))
        return f"{target.output.removesuffix('_logits')} position {target.index}"

    def _path(self, settings: Settings, encoding: Encoding, inputs: Tensor, reference_ids: Tensor) -> tuple[Tensor, Tensor | None]:
        """The path's points ``(N, L, d)`` (model dtype and device) and, for DIG/UDIG, the anchor chains."""
        if settings.method == "ig":
            embeddings = self.model.get_input_embeddings().weight
            baseline = embeddings[reference_ids.to(embeddings.device)].detach()
            return paths.linear_path(baseline, inputs, settings.steps), None
        vocab = self.vocab_
        table = vocab.embeddings  # (V, d) float32 on CPU
        moving = ~encoding.special_mask
        word_ids, refs = encoding.input_ids[moving], reference_ids[moving]  # (T,)
        m = settings.steps
        source = ANCHOR_SOURCES[settings.method](vocab, word_ids, refs, settings)
        chains = paths.chain_anchors(word_ids, refs, table, source, settings.strategy, m)  # (T, m + 1)
        points = paths.upscale(paths.anchor_points(chains, refs, table, m), settings.factor)  # (N, T, d)
        path = paths.sentence_path(points.to(inputs), inputs, moving.to(inputs.device))
        return path, chains

    def _anchors(self, chains: Tensor | None, encoding: Encoding, reference_ids: Tensor) -> tuple[list, float | None]:
        """Per-token anchor ids (None for specials and IG) and the share of anchors that are real words."""
        if chains is None:
            return [None] * len(encoding), None
        per_token: list[list[int] | None] = [None] * len(encoding)
        for row, position in zip(chains.tolist(), (~encoding.special_mask).nonzero().squeeze(1).tolist()):
            per_token[position] = row
        moving = ~encoding.special_mask
        chosen = chains[:, 1:]
        real_anchor = chosen != reference_ids[moving][:, None]
        if not bool(real_anchor.any()):
            return per_token, None
        share = float(self.vocab_.word_mask_[chosen[real_anchor]].float().mean())
        return per_token, share

    def _info(self, settings: Settings) -> dict:
        model_name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return {**asdict(settings), "n_points": settings.n_points, "model": model_name}


def _check_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_text(name: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is empty: enter some text to explain")
