"""Faithfulness of every attribution method over a dataset, with intervals: ``python -m udig.evaluate``.

For each (example, method) the attribution is computed, scored with :mod:`udig.metrics` and written as one
JSON line to ``OUT/records.jsonl`` at once (flushed), so an interrupted run resumes where it stopped:
keys already in the file are skipped, and a truncated last line is dropped. When every pair is done, the
records of the selected examples and methods are summarised into ``summary.json``, ``results.csv``,
``table.md`` and ``chart.png``: per method the mean of each metric with a seeded bootstrap 95 % interval,
and paired differences with their own intervals: UDIG versus IG and DIG, a sequential method versus IG and
its joint-path twin. Comprehensiveness and sufficiency come at ``--topk`` and as AOPC over 1-50 %.

Methods are the entries of :data:`udig.methods.REGISTRY`, written ``[seq-]name[-strategy][:rule][@baseline]``:
``ig``, ``sig``, ``dig-greedy``, ``dig-maxcount``, ``udig-greedy``, ``udig-maxcount``, each DIG/UDIG one with a
candidate set (``udig-maxcount:words``; ``:all`` when omitted), any path method with a baseline token other
than its paper's (``udig-maxcount:words@pad``: UDIG integrates from [MASK], IG and DIG from [PAD], while
log-odds inserts [PAD]), plus the two sanity baselines ``random`` (seeded Gaussian scores) and ``grad-input``
(gradient x input at the input point, Shrikumar et al. 2016). Special tokens get attribution 0 in all of them.
``seq-`` in front of a DIG/UDIG name integrates its word paths sequentially (``seq-udig-maxcount:words``:
Sequential UDIG, each word along its own path with the others at the input; ``sig`` is IG's sequential form).

    python -m udig.evaluate --limit 20 --out eval-out              # a quick look
    python -m udig.evaluate --limit 500 --out docs/evaluation      # the committed table
    python -m udig.evaluate --limit 500 --ray auto --actors 16 --out docs/evaluation   # on a Ray cluster

``--workers N`` computes records in N processes of this machine; ``--ray`` in Ray actors. Either way this
process alone writes the records file, so the two mix in one folder.

One module per job; each imports only those above it in this list:

- :mod:`~udig.evaluation.errors`: :class:`EvaluationError`, a run that cannot go on
- :mod:`~udig.evaluation.spec`: method names <-> :class:`MethodSpec`
- :mod:`~udig.evaluation.items`: the examples (offline, Hub or file)
- :mod:`~udig.evaluation.config`: :class:`EvalConfig`, one run's checked settings
- :mod:`~udig.evaluation.records`: the resumable records file and the run's identity
- :mod:`~udig.evaluation.worker`: (example, method) -> record, here or in worker processes
- :mod:`~udig.evaluation.cluster`: the same on Ray actors
- :mod:`~udig.evaluation.summary`: means, intervals, paired comparisons
- :mod:`~udig.evaluation.report`: summary.json, results.csv, table.md, chart.png
- :mod:`~udig.evaluation.run`: one run from start to summary
- :mod:`~udig.evaluation.cli`: the command line

Library functions raise :class:`EvaluationError` (or ValueError for a bad value); only
:func:`~udig.evaluation.cli.main` turns them into an exit status.
"""

from .cli import build_parser, main
from .config import EvalConfig
from .errors import EvaluationError
from .items import Item, load_items
from .records import read_records
from .report import markdown_table
from .run import run
from .spec import MethodSpec, parse_methods
from .summary import bootstrap_interval, paired_difference, read_run, summarize, verdict

__all__ = [
    "EvalConfig",
    "EvaluationError",
    "Item",
    "MethodSpec",
    "bootstrap_interval",
    "build_parser",
    "load_items",
    "main",
    "markdown_table",
    "paired_difference",
    "parse_methods",
    "read_records",
    "read_run",
    "run",
    "summarize",
    "verdict",
]
