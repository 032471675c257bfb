"""``python -m udig.evaluate``: faithfulness of every attribution method over a dataset, with intervals.

For each (example, method) the attribution is computed, scored with :mod:`udig.metrics` and written as one
JSON line to ``OUT/records.jsonl`` at once (flushed), so an interrupted run resumes where it stopped:
keys already in the file are skipped, and a truncated last line is dropped. When every pair is done, the
records of the selected examples and methods are summarised into ``summary.json``, ``results.csv``,
``table.md`` and ``chart.png``: per method the mean of each metric with a seeded bootstrap 95 % interval,
and paired differences with their own intervals: UDIG versus IG and DIG, a sequential method versus IG and
its joint-path twin. Comprehensiveness and sufficiency come at ``--topk`` and as AOPC over 1-50 %.

Methods are the entries of :data:`udig.methods.REGISTRY`, written ``[seq-]name[-strategy][:rule][@baseline]``:
``ig``, ``sig``, ``dig-greedy``, ``dig-maxcount``, ``udig-greedy``, ``udig-maxcount``, each DIG/UDIG one with a
candidate rule (``udig-maxcount:words``; ``:all`` when omitted), any path method with a baseline token other
than its paper's (``udig-maxcount:words@pad``: UDIG integrates from [MASK], IG and DIG from [PAD], while
log-odds inserts [PAD]), plus the two sanity baselines ``random`` (seeded Gaussian scores) and ``grad-input``
(gradient x input at the input point, Shrikumar et al. 2016). Special tokens get attribution 0 in all of them.
``seq-`` in front of a DIG/UDIG name integrates its word paths sequentially (``seq-udig-maxcount:words``:
Sequential UDIG, each word along its own path with the others at the input; ``sig`` is IG's sequential form).

    python -m udig.evaluate --limit 20 --out eval-out              # a quick look
    python -m udig.evaluate --limit 500 --out docs/evaluation      # the committed table
    python -m udig.evaluate --limit 500 --ray auto --actors 16 --out docs/evaluation   # on a Ray cluster

``--workers N`` computes records in N processes of this machine; ``--ray`` in Ray actors (:mod:`udig.cluster`).
Either way this process alone writes the records file, so the two mix in one folder.

Library functions raise :class:`EvaluationError` (or ValueError for a bad value); only :func:`main` turns
them into an exit status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .explainer import Explainer
from .explanation import Explanation, QAExplanation
from .methods import REGISTRY
from .metrics import AOPC_KEYS, DEFAULT_TOPK, DIAGNOSTICS, FAITHFULNESS_KEYS, METRIC_INFO, faithfulness, path_quality
from .paths import STRATEGIES
from .report import markdown_table, write_outputs
from .settings import BASELINES, EXPLAINER_PARAMETERS, OBJECTIVES, PARAMETERS, Settings
from .tasks import Task, task_of
from .vocab import CANDIDATE_RULES

HUB_DATASETS = ("sst2", "imdb", "rotten_tomatoes", "squad")
OFFLINE_DATASET = "rt-offline"
BOOTSTRAP_RESAMPLES = 2000
RECORDS = "records.jsonl"
RUN_FILE = "run.json"
RESULT_KEYS = (
    "model_fingerprint",
    "dataset",
    "steps",
    "factor",
    "nbrs",
    "graph_k",
    "topk",
    "seed",
)  # must match to resume


class EvaluationError(Exception):
    """A run that cannot go on; the message says why and what to do instead."""


# -- methods and data ---------------------------------------------------------------------------------


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


SEQUENTIAL = "seq-"  # the prefix of a method integrated one word at a time (Sequential DIG/UDIG)


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
    """``"ig,udig-maxcount:words,random"`` -> specs, each written ``[seq-]name[-strategy][:candidates][@baseline][/rule][+objective]``.

    ``dig-greedy`` means ``dig-greedy:all``, ``udig-greedy@mask`` means ``udig-greedy:all`` (a paper's own
    baseline is never written), and a path method without ``/rule`` integrates by ``rule``; the papers' left
    Riemann sum is never written either, so the records of the published settings keep their names.
    ``+largest`` explains the largest logit at each path point, as the published DIG/UDIG code does.
    """
    spellings = method_names()
    specs: list[MethodSpec] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        written, plus, objective = raw.partition("+")
        body, slash, integration = written.partition("/")
        head, at, baseline = body.partition("@")
        base, _, candidates = head.partition(":")
        if base not in spellings:
            raise ValueError(
                f"unknown method {raw!r}; choose from {', '.join(spellings)} (DIG/UDIG with :all or :words)"
            )
        name, strategy, sequential = spellings[base]
        method = REGISTRY[name]
        if at and ("baseline" not in method.uses or baseline not in BASELINES):
            takers = [spelling for spelling, (n, _, _) in spellings.items() if "baseline" in REGISTRY[n].uses]
            raise ValueError(f"{raw!r}: only {', '.join(takers)} take a baseline, one of {', '.join(BASELINES)}")
        if slash and "rule" not in method.uses:
            raise ValueError(f"{base} has no path to integrate; write {body!r}, not {raw!r}")
        if "candidates" not in method.uses:
            if candidates:
                raise ValueError(f"{base} has no candidate rule; write {base!r}, not {raw!r}")
            spec = MethodSpec(base, name, strategy)
        else:
            candidates = candidates or "all"
            if candidates not in CANDIDATE_RULES:
                raise ValueError(
                    f"unknown candidate rule {candidates!r} in {raw!r}; choose one of {', '.join(CANDIDATE_RULES)}"
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
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError("no methods given")
    return specs


DEFAULT_METHODS = (
    "ig",
    *(f"{m}-{s}:{rule}" for m in ("dig", "udig") for s in STRATEGIES for rule in CANDIDATE_RULES),
    *(f"udig-{s}:{rule}@pad" for s in STRATEGIES for rule in CANDIDATE_RULES),  # UDIG from IG's and DIG's baseline
    "random",
    "grad-input",
)


@dataclass(frozen=True)
class EvalConfig:
    """One run's validated settings (the CLI's arguments, frozen); attribution values follow :mod:`udig.settings`."""

    model: str | None = None
    dataset: str = OFFLINE_DATASET
    methods: tuple[MethodSpec, ...] = tuple(parse_methods(",".join(DEFAULT_METHODS)))
    limit: int | None = None
    steps: int = PARAMETERS["steps"].default
    factor: int = PARAMETERS["factor"].default
    nbrs: int = PARAMETERS["nbrs"].default
    graph_k: int = EXPLAINER_PARAMETERS["graph_k"].default
    topk: float = DEFAULT_TOPK
    seed: int = PARAMETERS["seed"].default
    workers: int = 1
    threads: int | None = None
    ray: str | None = None  # "local", or a cluster's address ("auto", "ray://host:10001"); None: this process/--workers
    actors: int | None = None  # Ray actors (default 1 with --ray)
    device: str = "cpu"
    gpus_per_actor: float | None = None  # with --ray --device cuda; default 1
    out: str = "eval-out"
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalConfig:
        """Check every value once (ValueError naming the bad one), with the same rules as the Explainer."""
        for name in ("steps", "factor", "nbrs", "seed"):
            PARAMETERS[name].check(getattr(args, name))
        EXPLAINER_PARAMETERS["graph_k"].check(args.graph_k)
        for name in ("limit", "workers", "threads", "actors"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, got {value}")
        if args.ray is None and (args.actors is not None or args.gpus_per_actor is not None):
            raise ValueError("--actors and --gpus-per-actor are Ray's: add --ray local or --ray ADDRESS")
        if args.ray is not None and args.workers != 1:
            raise ValueError("--workers runs processes on this machine; with --ray, say --actors N instead")
        if args.gpus_per_actor is not None and (args.device != "cuda" or not 0 < args.gpus_per_actor <= 1):
            raise ValueError(
                f"--gpus-per-actor takes a share of one GPU, 0 to 1, with --device cuda; got {args.gpus_per_actor}"
            )
        if not 0 <= args.topk <= 100:
            raise ValueError(f"--topk must be a percentage from 0 to 100, got {args.topk}")
        topk = int(args.topk) if float(args.topk).is_integer() else args.topk
        fields = {name: getattr(args, name) for name in cls.__dataclass_fields__ if name not in ("methods", "topk")}
        return cls(**fields, methods=tuple(parse_methods(args.methods, args.rule)), topk=topk)

    def settings(self, spec: MethodSpec) -> Settings:
        """The attribution settings of one method in this run."""
        return Settings.make(
            method=spec.method,
            strategy=spec.strategy,
            candidates=spec.candidates,
            baseline=spec.baseline,
            rule=spec.rule,
            objective=spec.objective,
            steps=self.steps,
            factor=self.factor,
            nbrs=self.nbrs,
            seed=self.seed,
            sequential=spec.sequential,
        )

    def identity(self, model_name: str, fingerprint: str) -> dict[str, Any]:
        """What ``run.json`` records; the RESULT_KEYS of two runs must match for their records to mix."""
        return {
            "model": model_name,
            "model_fingerprint": fingerprint,
            "dataset": self.dataset,
            "steps": self.steps,
            "factor": self.factor,
            "nbrs": self.nbrs,
            "graph_k": self.graph_k,
            "topk": self.topk,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Item:
    """One example: ``text`` for classification, ``question`` + ``context`` for QA."""

    id: str
    text: str | None = None
    question: str | None = None
    context: str | None = None
    label: int | None = None

    def inputs(self) -> dict[str, str]:
        """The example's inputs by name, for :meth:`udig.tasks.Task.check_inputs` and the Explainer."""
        return {name: value for name in ("text", "question", "context") if (value := getattr(self, name)) is not None}


def load_items(dataset: str, seed: int) -> list[Item]:
    """Every example of the dataset in a seeded random order (``--limit n`` takes the first n)."""
    if dataset in (OFFLINE_DATASET, "default"):
        from .data import load_split

        items = [Item(id=str(e.id), text=e.text, label=e.label) for e in load_split("test")]
    elif dataset in HUB_DATASETS:
        items = _hub_items(dataset)
    elif Path(dataset).is_file():
        items = _file_items(Path(dataset))
    else:
        raise ValueError(
            f"unknown dataset {dataset!r}: use {OFFLINE_DATASET} (offline), one of {', '.join(HUB_DATASETS)} "
            "(needs the `datasets` package and the Hugging Face Hub), or a .jsonl file"
        )
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order]


def _file_items(path: Path) -> list[Item]:
    """A JSON-lines file of ``{"text", "label"?, "id"?}`` or ``{"question", "context", "id"?}`` objects."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        label = row.get("label")
        items.append(
            Item(
                id=str(row.get("id", number)),
                text=row.get("text"),
                question=row.get("question"),
                context=row.get("context"),
                label=None if label is None else int(label),
            )
        )
    return items


def _hub_items(name: str) -> list[Item]:
    """The papers' test sets through the `datasets` library (SST-2 test, IMDb test, RT test, SQuAD dev)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise EvaluationError(
            f"--dataset {name} needs the `datasets` package (pip install datasets) and access to the Hugging "
            f"Face Hub; offline, use --dataset {OFFLINE_DATASET} (udig's Rotten Tomatoes test sentences)"
        ) from None
    try:
        if name == "sst2":
            rows = load_dataset("glue", "sst2", split="test")
            return [Item(id=str(r["idx"]), text=r["sentence"]) for r in rows]  # test labels are hidden
        if name == "imdb":
            rows = load_dataset("imdb", split="test")
            return [Item(id=str(i), text=r["text"], label=r["label"]) for i, r in enumerate(rows)]
        if name == "rotten_tomatoes":
            rows = load_dataset("rotten_tomatoes", split="test")
            return [Item(id=str(i), text=r["text"], label=r["label"]) for i, r in enumerate(rows)]
        rows = load_dataset("squad", split="validation")
        return [Item(id=r["id"], question=r["question"], context=r["context"]) for r in rows]
    except Exception as error:  # noqa: BLE001 - datasets raises many kinds for "no network"
        raise EvaluationError(
            f"could not load {name!r} from the Hugging Face Hub ({type(error).__name__}: {error}); "
            f"offline, use --dataset {OFFLINE_DATASET}"
        ) from None


# -- one record -------------------------------------------------------------------------------------------


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


# -- resumable records ----------------------------------------------------------------------------------------


def read_records(path: Path) -> dict[str, dict]:
    """Records by key; a truncated last line (an interrupted write) is cut off the file and forgotten."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    records: dict[str, dict] = {}
    good_end = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        last = number == len(lines) - 1
        if not line.strip():
            if not last:
                good_end += len(line) + 1
            continue
        try:
            record = json.loads(line)
            key = _record_key(record)
        except ValueError:
            if last:
                break  # cut below
            raise EvaluationError(
                f"{path}, line {number + 1}, is not a record; move the file away or fix the line"
            ) from None
        records[key] = record
        good_end += len(line) + (0 if last else 1)
    if good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    elif data and not data.endswith(b"\n"):
        with open(path, "ab") as handle:  # a complete last record that lost its newline
            handle.write(b"\n")
    return records


def _record_key(record: Any) -> str:
    """The key of a line :func:`summarize` can use; ValueError for well-formed JSON that is not such a record."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in ("key", "example", "method")):
        raise ValueError("not a record")
    failed = "error" in record
    scores = tuple(key for key in FAITHFULNESS_KEYS if key not in AOPC_KEYS)  # records written before AOPC lack those
    required = ("seconds",) if failed else (*scores, "seconds", "metric_seconds", "length")
    optional = () if failed else (*DIAGNOSTICS, *AOPC_KEYS)
    if not all(number(record.get(f)) for f in required) or not all(
        record.get(f) is None or number(record[f]) for f in optional
    ):
        raise ValueError("not a record")
    return record["key"]


def model_fingerprint(model) -> str:
    """A hash of every weight: a retrained model under the same name cannot silently mix into old results."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_run(out: Path, config: dict) -> None:
    """Refuse to mix records of runs whose results would differ (model, data, settings)."""
    run_file = out / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        clash = {k: (previous.get(k), config[k]) for k in RESULT_KEYS if previous.get(k) != config[k]}
        if clash:
            details = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in clash.items())
            raise EvaluationError(f"{out} holds records of a different run ({details}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(config, indent=1) + "\n")


# -- the run ------------------------------------------------------------------------------------------


class Evaluator:
    """Everything one process needs to turn an (example, method) pair into a record.

    One Explainer per candidate rule, so each rule's DIG graph is built (or read from the disk cache)
    once. Worker processes each build their own; nothing is shared between them but the disk cache.
    """

    def __init__(self, model, tokenizer, config: EvalConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.explainers = {
            rule: Explainer(model, tokenizer, candidates=rule, graph_k=config.graph_k) for rule in CANDIDATE_RULES
        }
        self.vocab = self.explainers["all"].vocab_
        self.wae_cache: dict = {}  # a token's path depends only on its word: most repeat over a dataset

    def prepare(self) -> None:
        """Build the shared index state up front (DIG graphs land in the disk cache for the workers)."""
        self.vocab.word_mask_
        for spec in self.config.methods:
            settings = self.config.settings(spec)
            self.explainers[settings.candidates].prepare(settings)

    def records(self, spec: MethodSpec, items: list[Item]) -> Iterator[dict[str, Any]]:
        """The records of one method over several examples, in order, each yielded as soon as it is scored."""
        settings = self.config.settings(spec)
        explanations = self.explainers[settings.candidates].explain_many(
            [item.inputs() for item in items], progress=False, return_errors=True, **asdict(settings)
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
    from .models import load_model

    torch.set_num_threads(config.threads or 1)
    model, tokenizer = load_model(config.model)
    return Evaluator(model.to(config.device), tokenizer, config)


_worker: dict[str, Evaluator] = {}


def _start_worker(config: EvalConfig) -> None:
    _worker["evaluator"] = load_evaluator(config)


def _work(item: Item, spec: MethodSpec) -> dict[str, Any]:
    return _worker["evaluator"].record(item, spec)


def _records(evaluator: Evaluator, todo: list[tuple[Item, MethodSpec]]) -> Iterable[dict]:
    """The missing records, computed here, by ``config.workers`` processes or by Ray actors, in completion order."""
    config = evaluator.config
    if config.ray is not None:
        from .cluster import cluster_records

        yield from cluster_records(config, todo)
        return
    if config.workers == 1:
        for item, spec in todo:
            yield evaluator.record(item, spec)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    # Workers share the cores: an OpenMP thread spinning while it waits in each made a run 3.5x slower
    # (1.45 vs 0.41 s per record, 2 workers on 2 cores). Spawned workers read this when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_start_worker, initargs=(config,)) as pool:
        futures = [pool.submit(_work, item, spec) for item, spec in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def check_task(task: Task, items: list[Item]) -> None:
    """Refuse a dataset whose examples are not the model's inputs (texts for a QA model, say)."""
    given = sorted(items[0].inputs())
    if given != sorted(task.fields):
        raise EvaluationError(
            f"the dataset gives {'/'.join(given)} but the model is a {task.description} model, "
            f"which takes {'/'.join(task.fields)}"
        )


def run(config: EvalConfig) -> dict:
    """Compute the missing records, then summarise and write every output file; returns the summary."""
    from tqdm import tqdm

    from .models import DEFAULT_MODEL, load_model

    if config.ray is not None:
        from .cluster import import_ray

        import_ray()  # without Ray, say how to install it before loading anything
    model, tokenizer = load_model(config.model)
    items = load_items(config.dataset, config.seed)[: config.limit]
    if not items:
        raise EvaluationError("no examples to evaluate")
    check_task(task_of(model), items)
    identity = config.identity(config.model or DEFAULT_MODEL, model_fingerprint(model))
    out = Path(config.out)
    _check_run(out, identity)
    records_path = out / RECORDS
    records = read_records(records_path)

    if config.threads:
        torch.set_num_threads(config.threads)
    if config.device == "cuda" and config.ray is None:  # with --ray, the actors check their own
        if not torch.cuda.is_available():
            raise EvaluationError("--device cuda: torch finds no GPU here (a CPU build of torch, or no driver)")
        model = model.to("cuda")
    evaluator = Evaluator(model, tokenizer, config)
    methods = list(config.methods)
    todo = [(item, spec) for item in items for spec in methods if f"{item.id}|{spec.name}" not in records]
    if todo:
        evaluator.prepare()
    total = len(items) * len(methods)
    progress = tqdm(
        total=total, initial=total - len(todo), unit="expl", desc="evaluate", disable=config.quiet, dynamic_ncols=True
    )
    with open(records_path, "a", encoding="utf-8") as sink, progress:
        for record in _records(evaluator, todo):
            if record["key"] in records:
                continue  # a retried task (a Ray actor restarted) computed it again: the first one stays
            sink.write(json.dumps(record, allow_nan=False) + "\n")
            sink.flush()  # an interrupted run keeps every finished record
            records[record["key"]] = record
            progress.set_postfix_str(record["method"], refresh=False)
            progress.update()
    summary = summarize(records, items, methods, identity, seed=config.seed)
    write_outputs(out, summary)
    return summary


# -- summary --------------------------------------------------------------------------------------------------


def bootstrap_interval(
    values: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean."""
    if len(values) == 0:
        return math.nan, math.nan
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_difference(
    rows: dict[str, dict], rival_rows: dict[str, dict], metric: str, rng: np.random.Generator
) -> dict[str, Any]:
    """Mean of ``metric`` differences (rows minus rival) over the examples both have, its bootstrap 95 %
    interval, and the verdict it supports: pairing removes the examples' own spread from the comparison."""
    common = sorted(set(rows) & set(rival_rows))
    diff = np.array([rows[i][metric] - rival_rows[i][metric] for i in common], dtype=float)
    low, high = bootstrap_interval(diff, rng)
    return {
        "n": len(common),
        "difference": _mean(diff),
        "low": low,
        "high": high,
        "verdict": _verdict(metric, low, high),
    }


def summarize(
    records: dict[str, dict], items: list[Item], methods: list[MethodSpec], config: dict, *, seed: int = 0
) -> dict:
    """Per-method means with bootstrap intervals, paired comparisons (:func:`_rivals`), accuracy and run time."""
    per_method: dict[str, dict] = {}
    rows_by_method: dict[str, dict[str, dict]] = {}
    keys = [
        k for k in FAITHFULNESS_KEYS if k not in AOPC_KEYS or any(k in r for r in records.values())
    ]  # older runs: no AOPC
    for spec in methods:
        rows = {item.id: records.get(f"{item.id}|{spec.name}") for item in items}
        missing = [i for i, r in rows.items() if r is None]
        errors = [i for i, r in rows.items() if r is not None and "error" in r]
        good = {i: r for i, r in rows.items() if r is not None and "error" not in r}
        rows_by_method[spec.name] = good
        entry: dict[str, Any] = {"n": len(good), "missing": len(missing), "errors": len(errors)}
        for offset, name in enumerate(keys):
            values = np.array([r[name] for r in good.values() if r.get(name) is not None], dtype=float)
            rng = np.random.default_rng([seed, offset])
            low, high = bootstrap_interval(values, rng)
            entry[name] = {"mean": _mean(values), "low": low, "high": high}
        for name in DIAGNOSTICS:
            values = np.array([r[name] for r in good.values() if r.get(name) is not None], dtype=float)
            entry[name] = _mean(values)
            if name == "relative_delta":
                entry["relative_delta_median"] = float(np.median(values)) if len(values) else None
        entry["seconds"] = _mean(np.array([r["seconds"] for r in good.values()], dtype=float))
        entry["metric_seconds"] = _mean(np.array([r["metric_seconds"] for r in good.values()], dtype=float))
        per_method[spec.name] = entry

    names = [spec.name for spec in methods]
    comparisons = []
    for spec in methods:
        for rival in (r for r in _rivals(spec) if r in names):
            for offset, metric in enumerate(keys):
                ours, theirs = (
                    {i: r for i, r in rows_by_method[m].items() if r.get(metric) is not None}
                    for m in (spec.name, rival)
                )
                difference = paired_difference(ours, theirs, metric, np.random.default_rng([seed, 100 + offset]))
                comparisons.append({"method": spec.name, "versus": rival, "metric": metric, **difference})

    first = next(iter(rows_by_method.values()), {})
    labelled = [(r["label"], r["pred"]) for r in first.values() if r.get("label") is not None and "pred" in r]
    pairs = [r for rows in rows_by_method.values() for r in rows.values()]
    return {
        "config": config,
        "n_examples": len(items),
        "methods_order": names,
        "accuracy": (sum(a == b for a, b in labelled) / len(labelled)) if labelled else None,
        "mean_tokens": _mean(np.array([r["length"] for r in first.values()], dtype=float)),
        "methods": per_method,
        "comparisons": comparisons,
        "runtime": {
            "attribution_seconds": float(sum(r["seconds"] for r in pairs)),
            "metric_seconds": float(sum(r["metric_seconds"] for r in pairs)),
        },
        "conventions": (
            "k = floor(L * topk / 100) with L counting special tokens; top-k = largest signed attributions. "
            "Log-odds: top-k replaced by [PAD] in place; comprehensiveness: top-k deleted; sufficiency: only "
            "top-k kept (no [CLS]/[SEP] added back), 0 when k = 0. p = softmax probability of the class "
            "predicted on the original input. QA: [MASK] replacement, softmax over positions. "
            f"Intervals: percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples, seeded."
        ),
    }


def _rivals(spec: MethodSpec) -> list[str]:
    """The methods a paired comparison sets ``spec`` against, each for the question it answers; UDIG's and the
    sequential methods' only."""
    if spec.sequential or spec.method == "sig":  # against IG, and against the same paths integrated jointly
        if spec.sequential:
            joint = spec.name[len(SEQUENTIAL) :]
        else:  # SIG's joint path is IG's line from SIG's baseline
            suffix = (f"/{spec.rule}" if spec.rule else "") + (f"+{spec.objective}" if spec.objective else "")
            joint = parse_methods(f"ig@{spec.baseline or REGISTRY['sig'].paper_baseline}{suffix}")[0].name
        return list(dict.fromkeys(["ig", joint]))
    if spec.method != "udig":
        return []
    rivals = ["ig", f"dig-{spec.strategy}:{spec.candidates}"]  # the papers' question
    if spec.objective:
        rivals.append(spec.name.rpartition("+")[0])  # the same method explaining the input's target: does F matter?
    elif spec.rule:
        rivals.append(spec.name.rpartition("/")[0])  # the same method with the papers' left sum: does the rule matter?
    elif spec.baseline:
        rivals.append(f"udig-{spec.strategy}:{spec.candidates}")  # does the baseline token matter?
    else:
        if spec.candidates == "words":
            rivals.append(f"udig-{spec.strategy}:all")  # does the real-word candidate rule help?
        if spec.strategy == "maxcount":
            rivals.append(f"udig-greedy:{spec.candidates}")  # which strategy?
    return rivals


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _verdict(metric: str, low: float, high: float) -> str:
    """ "better", "worse" or "tie" from a difference interval (method minus rival)."""
    if math.isnan(low) or low <= 0 <= high:
        return "tie"
    lower_is_better = METRIC_INFO[metric].better == "lower"
    return "better" if (high < 0) == lower_is_better else "worse"


# -- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m udig.evaluate",
        description="Faithfulness (log-odds, comprehensiveness, sufficiency) of IG, DIG and UDIG over a dataset.",
    )
    parser.add_argument("--model", default=None, help="Hub id or local folder; default: udig's offline sentiment model")
    parser.add_argument(
        "--dataset",
        default=OFFLINE_DATASET,
        help=f"{OFFLINE_DATASET} (default, offline), {', '.join(HUB_DATASETS)} (Hub), or a .jsonl file",
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated; e.g. ig,udig-maxcount:words,dig-greedy:all,random,grad-input; "
        "@mask/@pad/@unk after a path method sets its baseline token, /RULE its integration rule, "
        "+largest explains the largest logit at each path point (the published code's target); "
        "sig is Sequential IG, seq- before a DIG/UDIG name its sequential form (seq-udig-greedy:words)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N examples of the seeded order (default: all)")
    for parameter in (PARAMETERS["steps"], PARAMETERS["factor"], PARAMETERS["nbrs"], EXPLAINER_PARAMETERS["graph_k"]):
        parser.add_argument(
            f"--{parameter.name.replace('_', '-')}",
            type=int,
            default=parameter.default,
            help=f"{parameter.help} (default {parameter.default})",
        )
    parser.add_argument(
        "--rule",
        default=PARAMETERS["rule"].default,
        choices=PARAMETERS["rule"].choices,
        help="integration rule of every path method not named with /rule (default: the papers' riemann_left)",
    )
    parser.add_argument("--topk", type=float, default=DEFAULT_TOPK, help="percent of tokens perturbed (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="example order, random baseline and bootstrap (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes computing records in parallel (default 1); each loads its own model",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per process (default: torch's own with 1 worker, 1 with several or per Ray actor)",
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="local|ADDRESS",
        help="compute records with Ray actors: 'local' starts Ray on this machine; 'auto' (or "
        "$RAY_ADDRESS), HOST:PORT or ray://HOST:10001 joins a running cluster; needs "
        "pip install -r requirements-ray.txt",
    )
    parser.add_argument(
        "--actors",
        type=int,
        default=None,
        help="with --ray: actors, each holding a model (default 1); each takes --threads CPUs",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where models run (default cpu); with --ray, every actor's",
    )
    parser.add_argument(
        "--gpus-per-actor",
        type=float,
        default=None,
        help="with --ray --device cuda: a share of one GPU per actor (default 1; 0.25 packs four per GPU)",
    )
    parser.add_argument("--out", default="eval-out", help="output folder; rerun with the same one to resume")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """The command line: 0 when the run finished, 2 with a message on standard error when it cannot."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    try:
        config = EvalConfig.from_args(args)
        summary = run(config)
    except (EvaluationError, ValueError) as error:
        print(f"python -m udig.evaluate: {error}", file=sys.stderr)
        return 2
    if not config.quiet:
        print(markdown_table(summary))
        print(f"written to {config.out}/ (summary.json, results.csv, table.md, chart.png, {RECORDS})")
    return 0


if __name__ == "__main__":
    from udig.evaluate import main as _main  # the importable module, so worker processes can find _work

    sys.exit(_main())
