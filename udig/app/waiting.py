"""The queue as visitors meet it: a few places per visitor, and time estimates learned from ordinary runs.

Gradio's queue (pinned version, see requirements.txt) takes any number of events from one browser session
and estimates a run's time as the mean of every finished run of that event. Two adjustments, installed on an
app's queue by :func:`install`:

- **places per visitor**: an attribution event is refused when its session already has ``limit`` of them
  queued or running, with a message that says so (:func:`refusal`), so one visitor cannot fill the queue
  for everyone else. Sessions, not addresses: behind a Space's proxy every visitor may arrive from one address.
- **estimates from ordinary runs**: a run that overlapped one-time work (:class:`~udig.app.service.StartUp`:
  the warm-up, a model's load, DIG's graph) is left out of the mean, so a first run's 20 s never teaches the
  page to predict 20 s for runs of half a second (:class:`LearnedTimes`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

from gradio.queueing import ProcessTime

from .service import StartUp


def refusal(held: int, limit: int) -> str | None:
    """Why a visitor with ``held`` attribution runs queued or running may not add one; None when they may."""
    if held < limit:
        return None
    runs = "run" if held == 1 else "runs"
    return (
        f"You already have {held} {runs} waiting or running, this demo's limit per visitor: wait for one to "
        "finish, then try again."
    )


def held_by(queue: Any, session_hash: str | None, concurrency_ids: Collection[str]) -> int:
    """How many events of ``concurrency_ids`` the session has in Gradio's ``queue``, waiting or running."""
    waiting = [event for line in queue.event_queue_per_concurrency_id.values() for event in line.queue]
    running = [event for job in queue.active_jobs if job for event in job]
    return sum(
        event.session_hash == session_hash and event.concurrency_id in concurrency_ids for event in waiting + running
    )


class LearnedTime(ProcessTime):
    """One event's mean run time, as Gradio's :class:`~gradio.queueing.ProcessTime`, over ordinary runs only.

    Gradio adds a run's duration as soon as it ends, so the run began ``duration`` seconds before the call.
    A time is stored in its table only once it has learned a run: until then Gradio has no estimate to show.
    """

    def __init__(self, table: LearnedTimes, key: Any) -> None:
        super().__init__()
        self._table, self._key = table, key

    def add(self, seconds: float) -> None:
        now = time.time()
        if not self._table.start_up.overlaps(now - seconds, now):
            ProcessTime.add(self._table.setdefault(self._key, self), seconds)


class LearnedTimes(dict):
    """The queue's run times per event (Gradio reads ``times[fn].avg_time`` after checking ``fn in times``)."""

    def __init__(self, start_up: StartUp) -> None:
        super().__init__()
        self.start_up = start_up

    def __missing__(self, key: Any) -> LearnedTime:
        return LearnedTime(self, key)


def install(blocks: Any, start_up: StartUp, limit: int, concurrency_ids: Collection[str]) -> None:
    """Apply both adjustments to the queue of ``blocks`` (after ``blocks.queue()``, which makes a new one)."""
    queue = blocks._queue
    queue.process_time_per_fn = LearnedTimes(start_up)
    push: Callable = queue.push
    counting = asyncio.Lock()  # a session's events are counted and added one push at a time

    async def push_within_limit(body: Any, request: Any, username: str | None) -> tuple:
        fn = blocks.fns.get(body.fn_index)
        if fn is None or fn.concurrency_id not in concurrency_ids:
            return await push(body, request, username)
        async with counting:
            why = refusal(held_by(queue, body.session_hash, concurrency_ids), limit)
            if why is not None:
                return False, why, "error"  # Gradio answers 400 with this message; the page shows it
            return await push(body, request, username)

    queue.push = push_within_limit
