"""One evaluation run's settings, checked once: what ``python -m udig.evaluate`` was asked to do."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..metrics import DEFAULT_TOPK
from ..settings import EXPLAINER_PARAMETERS, PARAMETERS, Settings
from .items import OFFLINE_DATASET
from .spec import DEFAULT_METHODS, MethodSpec, parse_methods


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
        """What ``run.json`` records; its :data:`udig.evaluation.records.RESULT_KEYS` must match for two runs'
        records to mix."""
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
