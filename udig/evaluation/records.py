"""The resumable records file: one JSON line per (example, method), and the run identity beside it.

Each record is appended (and flushed) as soon as it is computed, so an interrupted run resumes where it
stopped: keys already in ``records.jsonl`` are skipped, and a truncated last line is dropped. ``run.json``
says which model, data and settings the records belong to; records of runs that would differ never mix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..metrics import AOPC_KEYS, DIAGNOSTICS, FAITHFULNESS_KEYS
from .errors import EvaluationError

RECORDS = "records.jsonl"
RUN_FILE = "run.json"
RESULT_KEYS = ("model_fingerprint", "dataset", "steps", "factor", "nbrs", "graph_k", "topk", "seed")  # to resume


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
    """The key of a line :func:`udig.evaluation.summary.summarize` can use; ValueError for well-formed JSON that
    is not such a record."""

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


def check_run(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix records of runs whose results would differ (model, data, settings); then claim ``out``
    for this run by writing its ``run.json``."""
    run_file = out / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        clash = {k: (previous.get(k), identity[k]) for k in RESULT_KEYS if previous.get(k) != identity[k]}
        if clash:
            details = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in clash.items())
            raise EvaluationError(f"{out} holds records of a different run ({details}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(identity, indent=1) + "\n")
