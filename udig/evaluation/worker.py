"""Turning (example, method) pairs into records: in this process, or in ``--workers N`` processes.

An :class:`Evaluator` holds what one process needs (model, tokenizer, one Explainer per candidate set, the
vocabulary index); each record is the attribution scored with :mod:`udig.metrics`. Ray actors
(:mod:`udig.evaluation.cluster`) build the same Evaluator through :func:`load_evaluator`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..explainer import Explainer
from ..explanation import Explanation, QAExplanation
from ..metrics import DIAGNOSTICS, FAITHFULNESS_KEYS, faithfulness, path_quality
from ..models import load_model
from ..vocab import CANDIDATE_SETS
from .config import EvalConfig
from .items import Item
from .spec import MethodSpec


def score_explanation(
    explanation: Explanation, model, tokenizer, vocab, topk: float, cache: dict | None = None
) -> dict[str, Any]:
    """Faithfulness and path diagnostics of one Explanation as a flat dict of JSON values."""
    faith = faithfulness(explanation, model, tokenizer, topk=topk)
    quality = path_quality(explanation, vocab, cache)
    return {
        **{name: getattr(faith, name) for name in FAITHFULNESS_KEYS},
        **quality.to_dict(),
        "k": faith.k,
        "length": faith.length,
        "pred": faith.label,
        "prob": faith.prob,
        "top": [explanation.tokens[i] for i in faith.top],
    }


def score_record(
    explanation: Explanation | QAExplanation, model, tokenizer, vocab, topk: float, cache: dict | None = None
) -> dict[str, Any]:
    """One record; a result of several parts (QA's start and end) keeps each part's scores, and their
    mean is the record's score.

    cache: optional WAE cache (see :func:`udig.metrics.word_approximation_error`).
    """
    parts = {
        role: score_explanation(part, model, tokenizer, vocab, topk, cache) for role, part in explanation.parts.items()
    }
    if len(parts) == 1:
        return next(iter(parts.values()))
    record: dict[str, Any] = {}
    for name in (*FAITHFULNESS_KEYS, *DIAGNOSTICS):
        values = [part[name] for part in parts.values() if part[name] is not None]
        record[name] = float(np.mean(values)) if values else None
    first = next(iter(parts.values()))
    record.update(k=first["k"], length=first["length"], answer=getattr(explanation, "answer", None), **parts)
    return record


class Evaluator:
    """Everything one process needs to turn an (example, method) pair into a record.

    One Explainer per candidate set, so each set's DIG graph is built (or read from the disk cache)
    once. Worker processes each build their own; nothing is shared between them but the disk cache.
    """

    def __init__(self, model, tokenizer, config: EvalConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.explainers = {
            candidates: Explainer(model, tokenizer, candidates=candidates, graph_k=config.graph_k)
            for candidates in CANDIDATE_SETS
        }
        self.vocab = self.explainers["all"].vocab_
        self.wae_cache: dict = {}  # a token's path depends only on its word: most repeat over a dataset

    def prepare(self) -> None:
        """Build the shared index state up front (DIG graphs land in the disk cache for the workers)."""
        self.vocab.word_mask_  # noqa: B018 - the property builds the real-word mask once, here
        for spec in self.config.methods:
            settings = self.config.settings(spec)
            self.explainers[settings.candidates].prepare(settings)

    def records(self, spec: MethodSpec, items: list[Item]) -> Iterator[dict[str, Any]]:
        """The records of one method over several examples, in order, each yielded as soon as it is scored.

        An example that cannot be explained or scored (a ValueError) gets a record with an ``error`` field.
        """
        settings = self.config.settings(spec)
        explanations = self.explainers[settings.candidates].explain_many(
            [item.inputs() for item in items], progress=False, return_errors=True, settings=settings
        )
        for item in items:
            record = {"key": f"{item.id}|{spec.name}", "example": item.id, "method": spec.name, "label": item.label}
            started = time.perf_counter()
            explanation = next(explanations)
            try:
                if isinstance(explanation, ValueError):
                    raise explanation
                scored = time.perf_counter()
                record.update(
                    score_record(explanation, self.model, self.tokenizer, self.vocab, self.config.topk, self.wae_cache)
                )
                record.update(seconds=scored - started, metric_seconds=time.perf_counter() - scored)
            except ValueError as error:  # this input cannot be explained or scored: record it, go on
                record.update(error=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - started)
            yield record

    def record(self, item: Item, spec: MethodSpec) -> dict[str, Any]:
        """One pair's record (this process and ``--workers`` take the pairs one by one)."""
        return next(self.records(spec, [item]))


def load_evaluator(config: EvalConfig) -> Evaluator:
    """A worker's or actor's Evaluator: its own model, ``config.threads`` torch threads (default 1, as
    workers share the machine)."""
    torch.set_num_threads(config.threads or 1)
    model, tokenizer = load_model(config.model)
    return Evaluator(model.to(config.device), tokenizer, config)


_worker: dict[str, Evaluator] = {}  # the one Evaluator of a worker process


def _start_worker(config: EvalConfig) -> None:
    _worker["evaluator"] = load_evaluator(config)


def _work(item: Item, spec: MethodSpec) -> dict[str, Any]:
    return _worker["evaluator"].record(item, spec)


def process_records(config: EvalConfig, todo: list[tuple[Item, MethodSpec]]) -> Iterator[dict[str, Any]]:
    """The records of ``todo`` computed by ``config.workers`` spawned processes, in completion order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    # Workers share the cores: a thread spinning while it waits slows the others (benchmarks/cluster_results.md).
    # Spawned workers read this when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_start_worker, initargs=(config,)) as pool:
        futures = [pool.submit(_work, item, spec) for item, spec in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
