"""The examples of an evaluation: udig's offline test sets (Rotten Tomatoes, IMDb), the papers' Hub sets, or a file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load_split
from ..tasks import Task
from .errors import EvaluationError

HUB_DATASETS = ("sst2", "imdb-hub", "rotten_tomatoes", "squad")
OFFLINE_DATASET = "rt-offline"
# offline names -> udig.data datasets; "imdb" is udig's test split of the 25,000 reviews of the Hub's imdb train split
OFFLINE_DATASETS = {OFFLINE_DATASET: "rotten_tomatoes", "default": "rotten_tomatoes", "imdb": "imdb"}


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
    if dataset in OFFLINE_DATASETS:
        items = [Item(id=str(e.id), text=e.text, label=e.label) for e in load_split("test", OFFLINE_DATASETS[dataset])]
    elif dataset in HUB_DATASETS:
        items = _hub_items(dataset)
    elif Path(dataset).is_file():
        items = _file_items(Path(dataset))
    else:
        raise ValueError(
            f"unknown dataset {dataset!r}: use {OFFLINE_DATASET} or imdb (offline), one of {', '.join(HUB_DATASETS)} "
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
        if name == "imdb-hub":
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


def check_task(task: Task, items: list[Item]) -> None:
    """Refuse a dataset whose examples are not the model's inputs (texts for a QA model, say)."""
    given = sorted(items[0].inputs())
    if given != sorted(task.fields):
        raise EvaluationError(
            f"the dataset gives {'/'.join(given)} but the model is a {task.description} model, "
            f"which takes {'/'.join(task.fields)}"
        )
