"""The public entry point: ``Explainer(model, tokenizer).explain(...)``.

Validation and normalisation happen here, once (:class:`~udig.settings.Settings` for the parameters, the
task adapter for the inputs); below this boundary every function takes one canonical form (one sequence,
``(L, d)`` embeddings, explicit targets). The flow is
text -> task adapter -> method (path -> integrator) -> :class:`Explanation` -> task adapter -> result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from .explanation import Explanation, QAExplanation
from .integrate import target_met
from .methods import Attribution, Problem, get_method
from .settings import BASELINES, EXPLAINER_PARAMETERS, PARAMETERS, Settings
from .tasks import Encoding, Prediction, Task, max_tokens, model_output, select_targets, task_of, vocabulary_id
from .vocab import VocabIndex, vocab_index_for

TOKENS_PER_BATCH = 4096  # path points x tokens per forward/backward when internal_batch_size is None (peak memory)
INPUT_ROW_TOKENS = 32  # inputs up to this long are decided on in the first gradient pass (see _Decision)


@dataclass(frozen=True)
class Size:
    """What one explanation takes, known from the tokenizer before the model runs (:meth:`Explainer.size`)."""

    tokens: int  # the encoded input, special tokens included, after truncation
    words: int  # tokens that move along the path: every one but the special tokens
    points: int  # path points through the model in all: the path's, once per word when sequential; 0 without a path
    passes: int  # forward and backward passes (Settings.cost)


class Explainer:
    """Attributes a sequence-classification or extractive-QA model's decision to its input tokens.

    Parameters are stored as given and checked here; nothing heavy happens until ``explain``. The
    vocabulary index (KNN graph included) is built on first use and shared by every Explainer of the
    same model.

    candidates: "all" (the papers: any vocabulary row may be an anchor) or "words" (real, trained
        words only; see :mod:`udig.vocab`), for calls that do not say: ``explain(candidates=...)`` and a
        ``Settings`` given as ``settings=`` carry their own.
    graph_k: neighbours per word in DIG's KNN graph (the DIG paper's 500 by default).
    internal_batch_size: path points per forward/backward pass; None sizes it from the input length.
    max_length: token limit, capped at the model's own (None: the model's own). Longer inputs are truncated and
        flagged.
    cache_dir: where the vocabulary graph is cached; None uses huggingface_hub's assets cache (HF_HOME).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        candidates: str = PARAMETERS["candidates"].default,
        graph_k: int = EXPLAINER_PARAMETERS["graph_k"].default,
        internal_batch_size: int | None = None,
        max_length: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        PARAMETERS["candidates"].check(candidates)
        for name, value in (
            ("graph_k", graph_k),
            ("internal_batch_size", internal_batch_size),
            ("max_length", max_length),
        ):
            if value is not None or name == "graph_k":
                EXPLAINER_PARAMETERS[name].check(value)
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
        target: int | str | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> Explanation | QAExplanation:
        """Explain one input: ``text`` for classification, ``question`` + ``context`` for QA.

        settings: a :class:`~udig.settings.Settings`, used as it is. options: the same parameters by name
        (``method="dig", steps=50``), made into one by :meth:`Settings.make <udig.settings.Settings.make>`; give
        one or the other. :data:`udig.settings.PARAMETERS` states every parameter's default, allowed values and
        meaning; ``candidates`` left out is this Explainer's. target: class index or label (classification);
        None explains the predicted class.

        A completeness target (``max_delta``) refines the path where its integral is least exact until
        |Δ| <= max_delta |F(x) - F(x')| (or max_delta x 1e-3 when that change is below 1e-3) or the path has
        ``max_points`` points; ``delta_target_met`` says which. A sequential method (``sequential``, and SIG
        always) moves each word along its own path while the others stay at the input (:mod:`udig.sequential`):
        one path per word, and Δ is the sum of the words' own completeness errors.
        """
        started = time.perf_counter()
        settings = self._settings(settings, options)
        inputs = self.task.check_inputs({"text": text, "question": question, "context": context})
        n_classes = getattr(self.model.config, "num_labels", len(self.labels))
        target = self.task.resolve_target(target, settings.objective, self.labels, n_classes)
        warnings: list[str] = []
        reference_id = None if settings.baseline is None else self._reference_id(settings.baseline, warnings)
        encoding = self._encode(inputs)
        if encoding.truncated:
            warnings.append(f"input truncated to {len(encoding)} tokens, the model's limit")
        self.model.eval()
        embeddings = self.model.get_input_embeddings().weight  # (V, d)
        word_embeddings = embeddings[encoding.input_ids.to(embeddings.device)].detach()  # (L, d)
        decision = _Decision(self.model, self.task, encoding, word_embeddings, target, settings.objective, self.labels)
        problem = Problem(
            encoding=encoding,
            inputs=word_embeddings,
            embeddings=embeddings,
            reference_ids=None
            if reference_id is None
            else torch.where(encoding.special_mask, encoding.input_ids, reference_id),
            value=decision.values,
            input_values=decision.input_values,
            batch_size=self.internal_batch_size or max(1, TOKENS_PER_BATCH // len(encoding)),
            vocab=lambda: self.vocab_,
            graph_k=self.graph_k,
        )
        timings = {"encode": time.perf_counter() - started}
        attribution = get_method(settings.method).attribute(problem, settings)
        input_values, prediction = decision.input_values(), decision.prediction
        timings.update(attribution.timings, total=time.perf_counter() - started)
        explanations = self._explanations(
            settings, encoding, prediction, input_values, attribution, reference_id, warnings, timings
        )
        return self.task.assemble(explanations, encoding, prediction, inputs)

    def size(
        self,
        text: str | None = None,
        *,
        question: str | None = None,
        context: str | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> Size:
        """What :meth:`explain` with the same arguments will take, from the tokenizer alone (no model call): a
        demo sizes its cost line and its GPU time from it. Inputs are checked and encoded as :meth:`explain` does."""
        settings = self._settings(settings, options)
        encoding = self._encode(self.task.check_inputs({"text": text, "question": question, "context": context}))
        words = int((~encoding.special_mask).sum())
        points = (settings.n_points or 0) * (words if settings.sequential else 1)
        return Size(tokens=len(encoding), words=words, points=points, passes=settings.cost(words))

    def explain_many(
        self,
        inputs: Iterable[str | Mapping[str, str]],
        *,
        settings: Settings | None = None,
        progress: bool = True,
        return_errors: bool = False,
        **options: Any,
    ) -> Iterator[Explanation | QAExplanation | ValueError]:
        """Explain many inputs with one setting, yielding each result in order as soon as it is done.

        inputs: texts, or for QA ``{"question": ..., "context": ...}`` mappings. settings, options: as in
        :meth:`explain`, checked once before the first input. progress: a ``tqdm`` bar counts the
        explanations. return_errors: an input that cannot be explained (an empty text, say) yields its
        ValueError in its place instead of ending the run, so a long job keeps going and stays aligned with
        its inputs.

        Each input gets its own forward/backward passes, as in :meth:`explain` (whose results these
        equal): packing the paths of several short texts into one padded pass measured no faster on
        CPU (benchmarks/cluster_results.md).
        """
        from tqdm import tqdm

        settings = self._settings(settings, options)
        for given in tqdm(inputs, desc="explain", unit="text", disable=not progress, dynamic_ncols=True):
            named = dict(given) if isinstance(given, Mapping) else {"text": given}
            try:
                yield self.explain(**named, settings=settings)
            except ValueError as error:
                if not return_errors:
                    raise
                yield error

    def prepare(self, settings: Settings) -> None:
        """Build what explanations with ``settings`` will share (DIG's KNN graph) ahead of time: the first
        request of a server, or before a time-limited GPU window, should not pay for it."""
        get_method(settings.method).prepare(self.vocab_, settings, self.graph_k)

    # -- the steps ---------------------------------------------------------------------------------

    def _settings(self, settings: Settings | None, options: dict[str, Any]) -> Settings:
        """``settings`` as given, or ``options`` made into one (this Explainer's candidates unless they say)."""
        if settings is None:
            if options.get("candidates") is None:
                options["candidates"] = self.candidates
            return Settings.make(options)
        if not isinstance(settings, Settings):
            raise TypeError(f"settings must be a udig Settings (Settings.make(...)), got {type(settings).__name__}")
        if options:
            names = ", ".join(f"{name}=" for name in options)
            raise ValueError(
                f"give settings= or keywords, not both (got settings= and {names}); "
                "settings.replace(...) makes a checked copy with some values changed"
            )
        return settings

    def _encode(self, inputs: dict[str, str]) -> Encoding:
        """The task's one sequence of the checked ``inputs``, cut to the token limit."""
        limit = max_tokens(self.model, self.tokenizer)  # a longer max_length would overrun the position table
        return self.task.encode(self.tokenizer, inputs, min(self.max_length or limit, limit))

    def _reference_id(self, baseline: str, warnings: list[str]) -> int:
        """The baseline token's id; a model without the named token falls back to PAD, then UNK. A zero row on a
        model that puts word embeddings straight into LayerNorm (:func:`_normalises_words_alone`) is no baseline:
        the norm's gradient there is ~1/sqrt(eps), so the path's first point dominates the sum (on a DeBERTa-v3
        layout, Δ was 500x F(x) - F(x') at 30 steps); MASK is taken instead, with a warning."""
        tok = self.tokenizer
        if baseline in BASELINES:
            for name in dict.fromkeys((baseline, "pad", "mask", "unk")):
                token_id = getattr(tok, f"{name}_token_id", None)
                if token_id is not None and not self._singular_row(int(token_id)):
                    if name != baseline:
                        why = (
                            f"the tokenizer has no {baseline.upper()} token"
                            if getattr(tok, f"{baseline}_token_id", None) is None
                            else f"the {baseline.upper()} embedding is all zeros, where this model's norm is singular"
                        )
                        warnings.append(f"{why}; the baseline uses {name.upper()}")
                    return int(token_id)
            raise ValueError("the tokenizer has no MASK, PAD or UNK token to build a baseline from; name a token")
        token_id = vocabulary_id(tok, baseline)
        if token_id is None:
            raise ValueError(
                f"baseline token {baseline!r} is not in the vocabulary; use one of {BASELINES} or a vocabulary token"
            )
        return token_id

    def _singular_row(self, token_id: int) -> bool:
        """Whether this token's embedding is all zeros on a model that normalises word embeddings alone."""
        row = self.model.get_input_embeddings().weight[token_id]
        return _normalises_words_alone(self.model.config) and not bool(row.any())

    def _explanations(
        self,
        settings: Settings,
        encoding: Encoding,
        prediction: Prediction,
        input_values: Tensor,
        attribution: Attribution,
        reference_id: int | None,
        warnings: list[str],
        timings: dict[str, float],
    ) -> list[Explanation]:
        """One Explanation per target; Δ = Σ attributions − (F(x) − F(x′)), NaN without a path."""
        anchors, real_share = self._anchors(attribution.chains, encoding, reference_id)
        tokens = self.tokenizer.convert_ids_to_tokens(encoding.input_ids.tolist())
        info = {**self._info(settings), "n_evaluations": attribution.n_evaluations}  # as counted, not as planned
        if attribution.path is not None:
            info["n_points"] = len(attribution.path)  # a completeness target may have refined the path
        path = None if attribution.path is None else attribution.path.detach().cpu()
        explanations = []
        for i, target in enumerate(prediction.targets):
            attributions = attribution.attributions[i]
            f_input, f_baseline = float(input_values[i]), float(attribution.f_baseline[i])
            delta = float(attributions.sum()) - (f_input - f_baseline)
            change = f_input - f_baseline
            explanations.append(
                Explanation(
                    task=self.task.name,
                    method=settings.method,
                    strategy=settings.strategy,
                    text=encoding.text,
                    tokens=list(tokens),
                    input_ids=encoding.input_ids.tolist(),
                    offsets=encoding.offsets,
                    special_mask=encoding.special_mask.tolist(),
                    attributions=attributions.tolist(),
                    target=target.index,
                    target_label=prediction.labels[i],
                    output=target.output,
                    probs=prediction.probs[i],
                    f_input=f_input,
                    f_baseline=f_baseline,
                    delta=delta,
                    relative_delta=abs(delta) / abs(change) if math.isfinite(delta) and change != 0 else None,
                    delta_target_met=None
                    if settings.max_delta is None
                    else target_met(torch.tensor([delta]), torch.tensor([change]), settings.max_delta),
                    anchors=anchors,
                    anchor_tokens=[None if a is None else self.tokenizer.convert_ids_to_tokens(a) for a in anchors],
                    real_word_share=real_share,
                    baseline_token="" if reference_id is None else self.tokenizer.convert_ids_to_tokens(reference_id),
                    settings=dict(info),
                    timings=dict(timings),
                    truncated=encoding.truncated,
                    warnings=list(warnings),
                    segments=dict(encoding.segments),
                    path=path,
                )
            )
        return explanations

    def _anchors(
        self, chains: Tensor | None, encoding: Encoding, reference_id: int | None
    ) -> tuple[list, float | None]:
        """Per-token anchor ids (None for specials, IG and path-free methods) and the share of anchors that are
        real words."""
        if chains is None:
            return [None] * len(encoding), None
        per_token: list[list[int] | None] = [None] * len(encoding)
        for row, position in zip(chains.tolist(), (~encoding.special_mask).nonzero().squeeze(1).tolist()):
            per_token[position] = row
        chosen = chains[:, 1:]
        real_anchor = chosen != reference_id
        if not bool(real_anchor.any()):
            return per_token, None
        share = float(self.vocab_.word_mask_[chosen[real_anchor]].float().mean())
        return per_token, share

    def _info(self, settings: Settings) -> dict:
        model_name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return {**settings.info(), "graph_k": self.graph_k, "model": model_name}


class _Decision:
    """The model's decision on the input (the targets to explain, and their values there), taken once.

    On a short input a forward pass of the input alone costs far more than its share of a batch: small
    matrix products run well below the machine's speed. So an input of at most :data:`INPUT_ROW_TOKENS`
    tokens rides as one more row in the first call of :meth:`values` (the first gradient pass), which decides
    from it; a longer one, or anything that asks for the decision before any gradient pass (a completeness
    target, sequential paths, the random baseline), gets a forward pass of its own: past that length the extra
    row's backward, which a lone forward does not take, costs more than it saves (measured in
    benchmarks/README.md).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        encoding: Encoding,
        inputs: Tensor,
        target: int | None,
        objective: str,
        labels: dict[int, str],
    ) -> None:
        self.model, self.task, self.encoding, self.inputs = model, task, encoding, inputs
        self.target, self.objective, self.labels = target, objective, labels
        self.prediction: Prediction | None = None
        self._input_values: Tensor | None = None  # (n_targets,)

    def values(self, points: Tensor) -> Tensor:
        """F at ``points (B, L, d)``: ``(B, n_targets)``; the first call on a short input also takes the decision."""
        if self.prediction is None:
            if len(self.encoding) <= INPUT_ROW_TOKENS:  # the input as one more row, decided on before the backward
                with_input = torch.cat([points, self.inputs[None].to(points)])
                return self._decide(model_output(self.model, self.encoding, with_input))[:-1]
            self.input_values()
        return select_targets(model_output(self.model, self.encoding, points), self.prediction.targets)

    def input_values(self) -> Tensor:
        """F at the input, ``(n_targets,)``."""
        if self.prediction is None:
            with torch.no_grad():
                self._decide(model_output(self.model, self.encoding, self.inputs[None]))
        return self._input_values

    def _decide(self, output) -> Tensor:
        """The prediction from ``output``'s last row (the input); returns the targets' values at every row."""
        last = SimpleNamespace(**{name: value[-1:].detach() for name, value in output.items()})
        self.prediction = self.task.predict(last, self.encoding, self.target, self.labels, self.objective)
        values = select_targets(output, self.prediction.targets)
        self._input_values = values[-1].detach()
        return values


def _normalises_words_alone(config: Any) -> bool:
    """DeBERTa-v3's layout (model type deberta-v2 without absolute positions or token types) adds nothing to the
    word embeddings before its LayerNorm; BERT-like models add position embeddings, so a zero row is harmless there."""
    return (
        getattr(config, "model_type", None) == "deberta-v2"
        and not getattr(config, "position_biased_input", True)
        and not getattr(config, "type_vocab_size", 0)
    )
