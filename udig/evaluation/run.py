"""One evaluation run: compute the missing records (here, in worker processes or on Ray), then summarise.

This process alone appends to the records file, whoever computed the records, so runs of the three kinds
mix in one folder and any of them resumes another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..models import DEFAULT_MODEL, load_model
from ..tasks import task_of
from .cluster import cluster_records, import_ray
from .config import EvalConfig
from .errors import EvaluationError
from .items import Item, check_task, load_items
from .records import RECORDS, check_run, model_fingerprint, read_records
from .report import write_outputs
from .spec import MethodSpec
from .summary import summarize
from .worker import Evaluator, process_records


def run(config: EvalConfig) -> dict:
    """Compute the missing records, then summarise and write every output file; returns the summary."""
    from tqdm import tqdm

    if config.ray is not None:
        import_ray()  # without Ray, say how to install it before loading anything
    model, tokenizer = load_model(config.model)
    items = load_items(config.dataset, config.seed)[: config.limit]
    if not items:
        raise EvaluationError("no examples to evaluate")
    check_task(task_of(model), items)
    identity = config.identity(config.model or DEFAULT_MODEL, model_fingerprint(model))
    out = Path(config.out)
    check_run(out, identity)
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
        for record in _missing_records(evaluator, todo):
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


def _missing_records(evaluator: Evaluator, todo: list[tuple[Item, MethodSpec]]) -> Iterator[dict[str, Any]]:
    """The missing records, computed here, by ``config.workers`` processes or by Ray actors, in completion order."""
    config = evaluator.config
    if config.ray is not None:
        yield from cluster_records(config, todo)
    elif config.workers == 1:
        for item, spec in todo:
            yield evaluator.record(item, spec)
    else:
        yield from process_records(config, todo)
