"""``python -m udig.evaluate``: faithfulness of every attribution method over a dataset, with intervals.

For each (example, method) the attribution is computed, scored with :mod:`udig.metrics` and written as one
JSON line to ``OUT/records.jsonl`` at once (flushed), so an interrupted run resumes where it stopped:
keys already in the file are skipped, and a truncated last line is dropped. When every pair is done, the
records of the selected examples and methods are summarised into ``summary.json``, ``results.csv``,
``table.md`` and ``chart.png``: per method the mean of each metric with a seeded bootstrap 95 % interval,
and paired UDIG-versus-IG/DIG differences with their own intervals.

Methods: ``ig``, ``dig-greedy``, ``dig-maxcount``, ``udig-greedy``, ``udig-maxcount``, each DIG/UDIG one
with a candidate rule (``udig-maxcount:words``; ``:all`` when omitted), any path method with a baseline token
other than its paper's (``udig-maxcount:words@pad``: UDIG integrates from [MASK], IG and DIG from [PAD],
while log-odds inserts [PAD]), plus two sanity baselines that are
not path methods: ``random`` (seeded Gaussian scores) and ``grad-input`` (gradient x input at the input
point, Shrikumar et al. 2016). Special tokens get attribution 0 in all of them.

    python -m udig.evaluate --limit 20 --out eval-out              # a quick look
    python -m udig.evaluate --limit 500 --out docs/evaluation      # the committed table
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from .explainer import BASELINES, DEFAULT_BASELINE, Explainer
from .explanation import Explanation, QAExplanation
from .metrics import DEFAULT_TOPK, faithfulness, path_quality
from .tasks import Target, best_span, encode_question, encode_text, max_tokens, task_of

PATH_METHODS = ("ig", "dig-greedy", "dig-maxcount", "udig-greedy", "udig-maxcount")
BASELINE_METHODS = ("random", "grad-input")
RULES = ("all", "words")
DEFAULT_METHODS = (
    "ig",
    *(f"{m}:{rule}" for m in PATH_METHODS[1:] for rule in RULES),
    *(f"{m}:{rule}@pad" for m in PATH_METHODS[3:] for rule in RULES),  # UDIG from IG's and DIG's baseline
    *BASELINE_METHODS,
)
HUB_DATASETS = ("sst2", "imdb", "rotten_tomatoes", "squad")
OFFLINE_DATASET = "rt-offline"
METRICS = ("log_odds", "comprehensiveness", "sufficiency")
BETTER = {"log_odds": "lower", "comprehensiveness": "higher", "sufficiency": "lower"}
LABELS = {"log_odds": "Log-odds ↓", "comprehensiveness": "Comprehensiveness ↑", "sufficiency": "Sufficiency ↓"}
DIAGNOSTICS = ("delta", "relative_delta", "wae", "wae_words", "real_word_share")
BOOTSTRAP_RESAMPLES = 2000
RECORDS = "records.jsonl"
RUN_FILE = "run.json"
RESULT_KEYS = ("model_fingerprint", "dataset", "steps", "factor", "nbrs", "graph_k", "topk", "seed")  # must match to resume


# -- methods and data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One evaluated method: ``name`` is the canonical key, e.g. ``udig-maxcount:words`` or ``ig@mask``."""

    name: str
    method: str  # ig, dig, udig, random, grad-input
    strategy: str | None = None
    candidates: str | None = None
    baseline: str | None = None  # None: the paper's


def parse_methods(text: str) -> list[MethodSpec]:
    """``"ig,udig-maxcount:words,random"`` -> specs; ``dig-greedy`` means ``dig-greedy:all``, and
    ``udig-greedy@mask`` means ``udig-greedy:all`` (a paper's own baseline is never written)."""
    specs: list[MethodSpec] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        head, at, baseline = raw.partition("@")
        base, _, rule = head.partition(":")
        if at and (base not in PATH_METHODS or baseline not in BASELINES):
            raise ValueError(f"{raw!r}: only {', '.join(PATH_METHODS)} take a baseline, one of {', '.join(BASELINES)}")
        if base in BASELINE_METHODS or base == "ig":
            if rule:
                raise ValueError(f"{base} has no candidate rule; write {base!r}, not {raw!r}")
            spec = MethodSpec(base, base)
        elif base in PATH_METHODS:
            rule = rule or "all"
            if rule not in RULES:
                raise ValueError(f"unknown candidate rule {rule!r} in {raw!r}; choose one of {', '.join(RULES)}")
            method, strategy = base.split("-")
            spec = MethodSpec(f"{base}:{rule}", method, strategy, rule)
        else:
            known = ", ".join((*PATH_METHODS, *BASELINE_METHODS))
            raise ValueError(f"unknown method {raw!r}; choose from {known} (DIG/UDIG with :all or :words)")
        if at and baseline != DEFAULT_BASELINE[spec.method]:
            spec = MethodSpec(f"{spec.name}@{baseline}", spec.method, spec.strategy, spec.candidates, baseline)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError("no methods given")
    return specs


@dataclass(frozen=True)
class Item:
    """One example: ``text`` for classification, ``question`` + ``context`` for QA."""

    id: str
    text: str | None = None
    question: str | None = None
    context: str | None = None
    label: int | None = None


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
        raise SystemExit(
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
        raise SystemExit(
            f"could not load {name!r} from the Hugging Face Hub ({type(error).__name__}: {error}); "
            f"offline, use --dataset {OFFLINE_DATASET}"
        ) from None


# -- the two sanity baselines ---------------------------------------------------------------------------


def baseline_explanation(kind: str, model, tokenizer, item: Item, seed: int) -> Explanation | QAExplanation:
    """``random`` or ``grad-input`` scores in an :class:`Explanation` (no path: delta and WAE are None).

    random: standard normal scores from a generator seeded by (seed, example id), so reruns agree.
    grad-input: ``sum_j dF/dx_ij * x_ij`` at the input, F the same target the path methods explain.
    """
    if kind not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {BASELINE_METHODS}")
    started = time.perf_counter()
    task = task_of(model)
    limit = max_tokens(model, tokenizer)
    if task == "classification":
        encoding = encode_text(tokenizer, item.text, limit)
    else:
        encoding = encode_question(tokenizer, item.question, item.context, limit)
    embeddings = model.get_input_embeddings().weight
    inputs = embeddings[encoding.input_ids.to(embeddings.device)].detach().requires_grad_(True)  # (L, d)
    extras = {name: value[None].to(inputs.device) for name, value in encoding.extras.items()}
    with torch.enable_grad():
        output = model(inputs_embeds=inputs[None], **extras)
    if task == "classification":
        probs = [output.logits[0].detach().float().softmax(-1)]
        targets = [Target("logits", int(probs[0].argmax()))]
        answer = None
    else:
        start_logits, end_logits = output.start_logits[0].detach().float(), output.end_logits[0].detach().float()
        answer = best_span(start_logits, end_logits, encoding.context_mask.to(start_logits.device))
        targets = [Target("start_logits", answer[0]), Target("end_logits", answer[1])]
        probs = [start_logits.softmax(-1), end_logits.softmax(-1)]
    special = encoding.special_mask
    rng = np.random.default_rng([seed, zlib.crc32(item.id.encode())])
    explanations = []
    for i, target in enumerate(targets):
        value = getattr(output, target.output)[0, target.index]
        if kind == "random":
            scores = torch.from_numpy(rng.standard_normal(len(encoding)))
        else:
            (grad,) = torch.autograd.grad(value, inputs, retain_graph=i < len(targets) - 1)
            scores = (grad * inputs.detach()).sum(-1).double().cpu()  # (L,)
        scores = scores.masked_fill(special, 0.0)
        label = model.config.id2label.get(target.index, str(target.index)) if task == "classification" else (
            f"{target.output.removesuffix('_logits')} position {target.index}"
        )
        explanations.append(
            Explanation(
                task=task,
                method=kind,
                strategy=None,
                text=encoding.text,
                tokens=tokenizer.convert_ids_to_tokens(encoding.input_ids.tolist()),
                input_ids=encoding.input_ids.tolist(),
                offsets=encoding.offsets,
                special_mask=special.tolist(),
                attributions=scores.tolist(),
                target=target.index,
                target_label=label,
                output=target.output,
                probs=probs[i].tolist(),
                f_input=float(value.detach()),
                f_baseline=math.nan,
                delta=math.nan,
                anchors=[None] * len(encoding),
                anchor_tokens=[None] * len(encoding),
                real_word_share=None,
                baseline_token="",
                settings={"method": kind, "seed": seed},
                timings={"total": time.perf_counter() - started},
                truncated=encoding.truncated,
                segments=dict(encoding.segments),
            )
        )
    if task == "classification":
        return explanations[0]
    shift = encoding.segments["context"][0]
    span = (encoding.offsets[answer[0]][0] - shift, encoding.offsets[answer[1]][1] - shift)
    return QAExplanation(item.question, item.context, item.context[span[0] : span[1]], span, *explanations)


# -- one record -------------------------------------------------------------------------------------------


def score_explanation(explanation: Explanation, model, tokenizer, vocab, topk: float, cache: dict | None = None) -> dict[str, Any]:
    """Faithfulness and path diagnostics of one Explanation as a flat dict of JSON values."""
    faith = faithfulness(explanation, model, tokenizer, topk=topk)
    quality = path_quality(explanation, vocab, cache)
    return {
        **{name: getattr(faith, name) for name in METRICS},
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
    """One record; for QA the start and end scores are kept and their mean is the record's score.

    cache: optional WAE cache (see :func:`udig.metrics.word_approximation_error`).
    """
    if isinstance(explanation, Explanation):
        return score_explanation(explanation, model, tokenizer, vocab, topk, cache)
    parts = {
        side: score_explanation(getattr(explanation, side), model, tokenizer, vocab, topk, cache)
        for side in ("start", "end")
    }
    record: dict[str, Any] = {}
    for name in (*METRICS, *DIAGNOSTICS):
        values = [parts[side][name] for side in parts if parts[side][name] is not None]
        record[name] = float(np.mean(values)) if values else None
    record.update(k=parts["start"]["k"], length=parts["start"]["length"], answer=explanation.answer, **parts)
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
            key = record["key"]
        except (ValueError, KeyError, TypeError):
            if last:
                break  # cut below
            raise SystemExit(f"{path}, line {number + 1}, is not a record; move the file away or fix the line") from None
        records[key] = record
        good_end += len(line) + (0 if last else 1)
    if good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    elif data and not data.endswith(b"\n"):
        with open(path, "ab") as handle:  # a complete last record that lost its newline
            handle.write(b"\n")
    return records


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
            raise SystemExit(f"{out} holds records of a different run ({details}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(config, indent=1) + "\n")


# -- the run ------------------------------------------------------------------------------------------


class Evaluator:
    """Everything one process needs to turn an (example, method) pair into a record.

    One Explainer per candidate rule, so each rule's DIG graph is built (or read from the disk cache)
    once. Worker processes each build their own; nothing is shared between them but the disk cache.
    """

    def __init__(self, model, tokenizer, args: argparse.Namespace) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.task = task_of(model)
        self.args = args
        self.explainers = {rule: Explainer(model, tokenizer, candidates=rule, graph_k=args.graph_k) for rule in RULES}
        self.vocab = self.explainers["all"].vocab_
        self.wae_cache: dict = {}  # a token's path depends only on its word: most repeat over a dataset

    def prepare(self, methods: list[MethodSpec]) -> None:
        """Build the shared index state up front (DIG graphs land in the disk cache for the workers)."""
        self.vocab.word_mask_
        for rule in {spec.candidates for spec in methods if spec.method == "dig"}:
            self.vocab.graph(self.args.graph_k, rule)

    def record(self, item: Item, spec: MethodSpec) -> dict[str, Any]:
        args = self.args
        record = {"key": f"{item.id}|{spec.name}", "example": item.id, "method": spec.name, "label": item.label}
        started = time.perf_counter()
        try:
            if spec.method in BASELINE_METHODS:
                explanation = baseline_explanation(spec.method, self.model, self.tokenizer, item, args.seed)
            else:
                inputs = {"text": item.text} if self.task == "classification" else {"question": item.question, "context": item.context}
                explanation = self.explainers[spec.candidates or "all"].explain(
                    **inputs, method=spec.method, strategy=spec.strategy or "greedy",
                    steps=args.steps, factor=args.factor, nbrs=args.nbrs, baseline=spec.baseline,
                )
            scored = time.perf_counter()
            record.update(score_record(explanation, self.model, self.tokenizer, self.vocab, args.topk, self.wae_cache))
            record.update(seconds=scored - started, metric_seconds=time.perf_counter() - scored)
        except ValueError as error:  # this input cannot be explained or scored: record it, go on
            record.update(error=f"{type(error).__name__}: {error}", seconds=time.perf_counter() - started)
        return record


_worker: dict[str, Evaluator] = {}


def _start_worker(arguments: dict, threads: int) -> None:
    from .models import load_model

    torch.set_num_threads(threads)
    args = argparse.Namespace(**arguments)
    _worker["evaluator"] = Evaluator(*load_model(args.model), args)


def _work(item: Item, spec: MethodSpec) -> dict[str, Any]:
    return _worker["evaluator"].record(item, spec)


def _records(evaluator: Evaluator, todo: list[tuple[Item, MethodSpec]], args: argparse.Namespace) -> Iterable[dict]:
    """The missing records, computed here or by ``args.workers`` processes, in completion order."""
    if args.workers == 1:
        for item, spec in todo:
            yield evaluator.record(item, spec)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    # Workers share the cores: an OpenMP thread spinning while it waits in each made a run 3.5x slower
    # (1.45 vs 0.41 s per record, 2 workers on 2 cores). Spawned workers read this when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_start_worker,
                             initargs=(vars(args), args.threads or 1)) as pool:
        futures = [pool.submit(_work, item, spec) for item, spec in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def run(args: argparse.Namespace) -> dict:
    """Compute the missing records, then summarise and write every output file; returns the summary."""
    from tqdm import tqdm

    from .models import DEFAULT_MODEL, load_model

    methods = parse_methods(args.methods)
    model, tokenizer = load_model(args.model)
    task = task_of(model)
    items = load_items(args.dataset, args.seed)
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise SystemExit("no examples to evaluate")
    wanted = "qa" if items[0].question is not None else "classification"
    if wanted != task:
        raise SystemExit(f"the dataset is for {wanted} but the model is a {task} model")
    config = {
        "model": args.model or DEFAULT_MODEL,
        "model_fingerprint": model_fingerprint(model),
        "dataset": args.dataset,
        "steps": args.steps,
        "factor": args.factor,
        "nbrs": args.nbrs,
        "graph_k": args.graph_k,
        "topk": args.topk,
        "seed": args.seed,
    }
    out = Path(args.out)
    _check_run(out, config)
    records_path = out / RECORDS
    records = read_records(records_path)

    if args.threads:
        torch.set_num_threads(args.threads)
    evaluator = Evaluator(model, tokenizer, args)
    todo = [(item, spec) for item in items for spec in methods if f"{item.id}|{spec.name}" not in records]
    if todo:
        evaluator.prepare(methods)
    total = len(items) * len(methods)
    progress = tqdm(total=total, initial=total - len(todo), unit="expl", desc="evaluate", disable=args.quiet,
                    dynamic_ncols=True)
    with open(records_path, "a", encoding="utf-8") as sink, progress:
        for record in _records(evaluator, todo, args):
            sink.write(json.dumps(record, allow_nan=False) + "\n")
            sink.flush()  # an interrupted run keeps every finished record
            records[record["key"]] = record
            progress.set_postfix_str(record["method"], refresh=False)
            progress.update()
    summary = summarize(records, items, methods, config, seed=args.seed)
    write_outputs(out, summary)
    return summary


# -- summary --------------------------------------------------------------------------------------------------


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean."""
    if len(values) == 0:
        return math.nan, math.nan
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarize(records: dict[str, dict], items: list[Item], methods: list[MethodSpec], config: dict, *, seed: int = 0) -> dict:
    """Per-method means with bootstrap intervals, paired UDIG comparisons, accuracy and run time."""
    per_method: dict[str, dict] = {}
    rows_by_method: dict[str, dict[str, dict]] = {}
    for spec in methods:
        rows = {item.id: records.get(f"{item.id}|{spec.name}") for item in items}
        missing = [i for i, r in rows.items() if r is None]
        errors = [i for i, r in rows.items() if r is not None and "error" in r]
        good = {i: r for i, r in rows.items() if r is not None and "error" not in r}
        rows_by_method[spec.name] = good
        entry: dict[str, Any] = {"n": len(good), "missing": len(missing), "errors": len(errors)}
        for offset, name in enumerate(METRICS):
            values = np.array([r[name] for r in good.values()], dtype=float)
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
        if spec.method != "udig":
            continue
        rivals = ["ig", f"dig-{spec.strategy}:{spec.candidates}"]  # the papers' question
        if spec.baseline:
            rivals.append(f"udig-{spec.strategy}:{spec.candidates}")  # does the baseline token matter?
        else:
            if spec.candidates == "words":
                rivals.append(f"udig-{spec.strategy}:all")  # does the real-word candidate rule help?
            if spec.strategy == "maxcount":
                rivals.append(f"udig-greedy:{spec.candidates}")  # which strategy?
        for rival in (r for r in rivals if r in names):
            for offset, metric in enumerate(METRICS):
                common = sorted(set(rows_by_method[spec.name]) & set(rows_by_method[rival]))
                diff = np.array(
                    [rows_by_method[spec.name][i][metric] - rows_by_method[rival][i][metric] for i in common], dtype=float
                )
                rng = np.random.default_rng([seed, 100 + offset])
                low, high = bootstrap_interval(diff, rng)
                comparisons.append({
                    "method": spec.name, "versus": rival, "metric": metric, "n": len(common),
                    "difference": _mean(diff), "low": low, "high": high, "verdict": _verdict(metric, low, high),
                })

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


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _verdict(metric: str, low: float, high: float) -> str:
    """"better", "worse" or "tie" from a difference interval (UDIG minus rival)."""
    if math.isnan(low) or low <= 0 <= high:
        return "tie"
    lower_is_better = BETTER[metric] == "lower"
    return "better" if (high < 0) == lower_is_better else "worse"


# -- output files -------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}".replace("-", "−")


def _interval(entry: dict) -> str:
    return f"{_fmt(entry['mean'])} [{_fmt(entry['low'])}, {_fmt(entry['high'])}]"


def markdown_table(summary: dict) -> str:
    """The per-method table and the paired comparisons, as Markdown."""
    head = [
        "| Method | n | Log-odds ↓ | Comprehensiveness ↑ | Sufficiency ↓ | mean \\|Δ\\| "
        "| \\|Δ\\|/\\|F(x)−F(x′)\\| mean (median) "
        "| WAE (all rows) | WAE (real words) | real-word anchors | s / example |",
        "|---|--:|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    lines = []
    for name in summary["methods_order"]:
        m = summary["methods"][name]
        share = m["real_word_share"]
        lines.append(
            f"| {name} | {m['n']} | {_interval(m['log_odds'])} | {_interval(m['comprehensiveness'])} "
            f"| {_interval(m['sufficiency'])} | {_fmt(m['delta'], 4)} "
            f"| {_fmt(m['relative_delta'])} ({_fmt(m['relative_delta_median'])}) "
            f"| {_fmt(m['wae'])} | {_fmt(m['wae_words'])} | {'–' if share is None else f'{share:.1%}'} "
            f"| {_fmt(m['seconds'], 2)} |"
        )
    text = "\n".join(head + lines) + "\n"
    if summary["comparisons"]:
        text += (
            "\nPaired differences (UDIG minus rival, same sentences; 95 % bootstrap interval; "
            "better/worse for UDIG only when the interval excludes 0):\n\n"
            "| UDIG | versus | Log-odds ↓ | Comprehensiveness ↑ | Sufficiency ↓ |\n|---|---|---|---|---|\n"
        )
        grouped: dict[tuple[str, str], dict[str, dict]] = {}
        for c in summary["comparisons"]:
            grouped.setdefault((c["method"], c["versus"]), {})[c["metric"]] = c
        for (method, versus), cells in grouped.items():
            row = [
                f"{_fmt(c['difference'])} [{_fmt(c['low'])}, {_fmt(c['high'])}] {c['verdict']}"
                for c in (cells[name] for name in METRICS)
            ]
            text += f"| {method} | {versus} | " + " | ".join(row) + " |\n"
    return text


def write_csv(path: Path, summary: dict) -> None:
    columns = ["method", "n", "errors"]
    for name in METRICS:
        columns += [name, f"{name}_low", f"{name}_high"]
    columns += [*DIAGNOSTICS, "relative_delta_median", "seconds", "metric_seconds"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name in summary["methods_order"]:
            m = summary["methods"][name]
            row = [name, m["n"], m["errors"]]
            for metric in METRICS:
                row += [m[metric]["mean"], m[metric]["low"], m[metric]["high"]]
            row += [m[d] for d in (*DIAGNOSTICS, "relative_delta_median", "seconds", "metric_seconds")]
            writer.writerow(["" if v is None else v for v in row])


def write_chart(path: Path, summary: dict) -> None:
    """Bars of the three metrics per method with their bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary["methods_order"]
    family = {"ig": "#7f7f7f", "dig": "#4c72b0", "udig": "#dd8452", "random": "#c7c7c7", "grad-input": "#a6a6a6"}
    colours = [family.get(n.split("-")[0] if n.startswith(("dig", "udig")) else n, "#999999") for n in names]
    hatches = ["//" if n.endswith(":words") else "" for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.42 * len(names) + 1.6), sharey=True)
    positions = np.arange(len(names))
    for ax, metric in zip(axes, METRICS):
        entries = [summary["methods"][n][metric] for n in names]
        means = np.array([e["mean"] if e["mean"] is not None else np.nan for e in entries])
        errors = np.array([[m - e["low"], e["high"] - m] for m, e in zip(means, entries)]).T
        bars = ax.barh(positions, means, xerr=errors, color=colours, capsize=3, edgecolor="black", linewidth=0.4)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(LABELS[metric])
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, names)
    axes[0].invert_yaxis()
    config = summary["config"]
    fig.suptitle(
        f"{config['model']} on {config['dataset']}: {summary['n_examples']} examples, top-{config['topk']} %, "
        f"steps {config['steps']}, factor {config['factor']} (95 % bootstrap intervals; hatched: real-word candidates)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_csv(out / "results.csv", summary)
    (out / "table.md").write_text(markdown_table(summary))
    write_chart(out / "chart.png", summary)


# -- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m udig.evaluate",
        description="Faithfulness (log-odds, comprehensiveness, sufficiency) of IG, DIG and UDIG over a dataset.",
    )
    parser.add_argument("--model", default=None, help="Hub id or local folder; default: udig's offline sentiment model")
    parser.add_argument("--dataset", default=OFFLINE_DATASET,
                        help=f"{OFFLINE_DATASET} (default, offline), {', '.join(HUB_DATASETS)} (Hub), or a .jsonl file")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated; e.g. ig,udig-maxcount:words,dig-greedy:all,random,grad-input; "
                             "@mask/@pad/@unk after a path method sets its baseline token")
    parser.add_argument("--limit", type=int, default=None, help="first N examples of the seeded order (default: all)")
    parser.add_argument("--steps", type=int, default=30, help="IG steps / DIG-UDIG anchors m (default 30)")
    parser.add_argument("--factor", type=int, default=0, help="DIG/UDIG upscaling factor (default 0: m + 2 points)")
    parser.add_argument("--nbrs", type=int, default=50, help="UDIG candidates per reference point (default 50)")
    parser.add_argument("--graph-k", type=int, default=500, help="DIG's KNN graph neighbours (default 500)")
    parser.add_argument("--topk", type=float, default=DEFAULT_TOPK, help="percent of tokens perturbed (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="example order, random baseline and bootstrap (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes computing records in parallel (default 1); each loads its own model")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: torch's own with 1 worker, 1 with several)")
    parser.add_argument("--out", default="eval-out", help="output folder; rerun with the same one to resume")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    for name in ("limit", "steps", "nbrs", "graph_k", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 <= args.factor <= 6:
        raise SystemExit(f"--factor must be from 0 to 6, got {args.factor}")
    if not 0 <= args.topk <= 100:
        raise SystemExit(f"--topk must be a percentage from 0 to 100, got {args.topk}")
    if float(args.topk).is_integer():
        args.topk = int(args.topk)
    try:
        parse_methods(args.methods)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    summary = run(args)
    if not args.quiet:
        print(markdown_table(summary))
        print(f"written to {args.out}/ (summary.json, results.csv, table.md, chart.png, {RECORDS})")
    return 0


if __name__ == "__main__":
    from udig.evaluate import main as _main  # the importable module, so worker processes can find _work

    sys.exit(_main())
