"""The command line of ``python -m udig.evaluate``: arguments, the run, and an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from ..metrics import DEFAULT_TOPK
from ..settings import EXPLAINER_PARAMETERS, PARAMETERS
from .config import EvalConfig
from .errors import EvaluationError
from .items import HUB_DATASETS, OFFLINE_DATASET
from .records import RECORDS
from .report import markdown_table
from .run import run
from .spec import DEFAULT_METHODS


def build_parser() -> argparse.ArgumentParser:
    """Every option of the command; attribution options take their defaults and help from :mod:`udig.settings`."""
    parser = argparse.ArgumentParser(
        prog="python -m udig.evaluate",
        description="Faithfulness (log-odds, comprehensiveness, sufficiency) of IG, DIG and UDIG over a dataset.",
    )
    _add_what_arguments(parser)
    _add_where_arguments(parser)
    parser.add_argument("--out", default="eval-out", help="output folder; rerun with the same one to resume")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _add_what_arguments(parser: argparse.ArgumentParser) -> None:
    """What is evaluated: model, data, methods and their settings."""
    parser.add_argument("--model", default=None, help="Hub id or local folder; default: udig's offline sentiment model")
    parser.add_argument(
        "--dataset",
        default=OFFLINE_DATASET,
        help=f"{OFFLINE_DATASET} (default) or imdb (offline test splits), {', '.join(HUB_DATASETS)} (Hub), "
        "or a .jsonl file",
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


def _add_where_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the records are computed: this process, worker processes or Ray actors, on CPUs or GPUs."""
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
