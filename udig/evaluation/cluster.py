"""Evaluation records from Ray actors: ``python -m udig.evaluate --ray local|ADDRESS --actors N``.

Ray is optional (``pip install -r requirements-ray.txt``). Each actor is one slot of the cluster: it loads
the model, tokenizer and vocabulary index once, then turns chunks of examples of one method into records
with :meth:`udig.evaluation.worker.Evaluator.records`. An :class:`ray.util.ActorPool` hands the next chunk
to whichever actor is free, and the driver (:func:`udig.evaluation.run.run`) appends each record to the
resumable records file.

Faults are Ray's to handle: an actor whose process dies is restarted (``max_restarts=-1``, rerunning its
constructor) and its pending chunk retried (``max_task_retries=-1``). Execution is then at least once, so
the driver keeps the first record of each key and drops a repeat. A killed driver takes its actors with it
(they are not detached); the records it had written stay, and the same command resumes.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from .config import EvalConfig
from .errors import EvaluationError
from .items import Item
from .spec import MethodSpec
from .worker import load_evaluator

INSTALL = "pip install -r requirements-ray.txt (or: pip install ray==2.60.0)"
CHUNKS_PER_ACTOR = 16  # the last chunks leave actors idle: with 16 each, about 3 % of a small run's time, ...
MAX_CHUNK = 8  # ... and few records lost with a killed driver or recomputed after a killed actor
OBJECT_STORE_BYTES = 100 * 2**20  # records are a few kB: Ray's default (30 % of memory) would only reserve RAM
PASSED_ENV = ("HF_HUB_OFFLINE", "OMP_WAIT_POLICY")  # settings of the driver the actors should share


def import_ray():
    """The ``ray`` module, or an EvaluationError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EvaluationError(
            f"--ray needs the `ray` package, which udig does not install by default: {INSTALL}"
        ) from None
    return ray


class RecordActor:
    """One slot: an Evaluator built once (model, tokenizer, vocabulary index), then records on request."""

    def __init__(self, config: EvalConfig) -> None:
        import ray
        import torch

        if config.device == "cuda" and not torch.cuda.is_available():
            raise EvaluationError("--device cuda: this actor's node has no GPU torch can use")
        self.evaluator = load_evaluator(config)
        self.node = f"{ray.get_runtime_context().get_node_id()[:8]} ({ray.util.get_node_ip_address()})"

    def records(self, spec: MethodSpec, items: list[Item]) -> tuple[str, int, list[dict[str, Any]]]:
        """The chunk's records, with the node and process that computed them."""
        return self.node, os.getpid(), list(self.evaluator.records(spec, items))


def chunks(todo: list[tuple[Item, MethodSpec]], actors: int) -> list[tuple[MethodSpec, list[Item]]]:
    """Runs of the same method over consecutive examples: one ``explain_many`` call each."""
    size = max(1, min(MAX_CHUNK, len(todo) // (actors * CHUNKS_PER_ACTOR)))
    by_method: dict[MethodSpec, list[Item]] = {}
    for item, spec in todo:
        by_method.setdefault(spec, []).append(item)
    return [(spec, items[i : i + size]) for spec, items in by_method.items() for i in range(0, len(items), size)]


def connect(ray, config: EvalConfig) -> bool:
    """Start a local Ray instance sized for the actors, or join ``config.ray``; False when this process was
    already connected (a library caller's own ``ray.init``), so the caller leaves that connection open."""
    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as --workers: waiting threads must not spin on shared cores
    runtime_env: dict[str, Any] = {"env_vars": env}
    if config.ray == "local":
        ray.init(
            address="local",
            num_cpus=(config.actors or 1) * (config.threads or 1),
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            runtime_env=runtime_env,
            log_to_driver=not config.quiet,
            configure_logging=False,
        )
        return True
    try:
        ray.init(address=config.ray, runtime_env=runtime_env, log_to_driver=not config.quiet, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise EvaluationError(
            f"--ray {config.ray}: no Ray cluster there ({error}); start one with `ray start --head`, or use --ray local"
        ) from None
    return True


def _check_resources(ray, config: EvalConfig) -> None:
    """Refuse a cluster that cannot place every actor: their chunks would wait for ever."""
    have = ray.cluster_resources()
    actors = config.actors or 1
    need = {"CPU": actors * (config.threads or 1)}
    if config.device == "cuda":
        need["GPU"] = actors * (config.gpus_per_actor or 1)
    short = [
        f"{need[name]:g} {name}s (it has {have.get(name, 0):g})" for name in need if have.get(name, 0) < need[name]
    ]
    if short:
        raise EvaluationError(
            f"the Ray cluster cannot hold {actors} actors of {config.threads or 1} CPU(s): they need "
            f"{' and '.join(short)}; use fewer --actors or --threads, or add nodes"
        )


def _results(ray, config: EvalConfig, todo: list[tuple[Item, MethodSpec]]) -> Iterator[tuple[str, int, list[dict]]]:
    """(node, pid, records) of each chunk as the actors finish them."""
    from ray.util import ActorPool

    options: dict[str, Any] = {"num_cpus": config.threads or 1, "max_restarts": -1, "max_task_retries": -1}
    if config.device == "cuda":
        options["num_gpus"] = config.gpus_per_actor or 1
    actor_class = ray.remote(RecordActor).options(**options)
    actors = [actor_class.remote(config) for _ in range(config.actors or 1)]
    try:
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda actor, chunk: actor.records.remote(*chunk), chunks(todo, len(actors)))
    except ray.exceptions.RayError as error:
        if isinstance(error, ray.exceptions.RayActorError) and error.actor_init_failed:
            cause = str(error).strip().splitlines()[-1]  # the constructor's exception, after Ray's traceback
            raise EvaluationError(f"a Ray actor could not start: {cause}") from None
        raise EvaluationError(
            f"the Ray run stopped ({type(error).__name__}: {error}); the records written so far "
            "are kept: rerun the same command to resume"
        ) from None
    finally:
        for actor in actors:
            ray.kill(actor)


def cluster_records(config: EvalConfig, todo: list[tuple[Item, MethodSpec]]) -> Iterator[dict[str, Any]]:
    """The records of ``todo`` computed by ``config.actors`` Ray actors, in completion order."""
    ray = import_ray()
    connected = connect(ray, config)
    done: Counter[str] = Counter()
    try:
        _check_resources(ray, config)
        for node, _, records in _results(ray, config, todo):
            done[node] += len(records)
            yield from records
    finally:
        if connected:
            ray.shutdown()  # stops a local instance; leaves a cluster running
        if done and not config.quiet:
            from tqdm import tqdm

            tqdm.write(f"ray: records by node: {', '.join(f'{node} {n}' for node, n in done.items())}", file=sys.stderr)
