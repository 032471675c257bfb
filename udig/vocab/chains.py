"""Remembered anchor chains: a word chained to a reference once per process, whatever sentence it is in.

A token's DIG/UDIG anchor chain depends only on its word, its reference word and the settings that fix a
chain (:func:`udig.paths.anchor_chains`), not on the rest of its sentence; so a word recurring across
sentences (the, and, of, ...) is chained once: over a stream of reviews, most of each new one's words were
seen before (``benchmarks/chains_results.md``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import torch
from torch import Tensor

# Anchor chains remembered per index, each its own int32 copy (a view would keep its whole batch alive): every
# word of MiniLM's vocabulary three times over; the memory this bounds is in benchmarks/chains_results.md.
MAX_CACHED_CHAINS = 100_000


class ChainMemory:
    """Anchor chains by (key, word, reference), the least recently used forgotten past :data:`MAX_CACHED_CHAINS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chains: OrderedDict[tuple[Hashable, int, int], np.ndarray] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._chains)

    def chains(
        self, key: Hashable, word_ids: Tensor, reference_ids: Tensor, compute: Callable[[Tensor, Tensor], Tensor]
    ) -> Tensor:
        """Each token's anchor chain ``(T, m + 1)`` int64: remembered where the same word was chained to the same
        reference under the same ``key`` (whatever else fixes a chain: method, candidate set and source,
        strategy, m, device), else ``compute(word_ids, reference_ids)`` for the distinct others. ``compute``
        runs outside the lock (two threads may both compute a chain, with the same result); if it raises,
        nothing is remembered."""
        pairs = list(zip(word_ids.tolist(), reference_ids.tolist()))
        with self._lock:
            known = {pair: self._chains.get((key, *pair)) for pair in pairs}
            for pair, chain in known.items():
                if chain is not None:
                    self._chains.move_to_end((key, *pair))
        missing = [pair for pair, chain in known.items() if chain is None]
        if missing or not pairs:  # an empty input still gets its (0, m + 1) shape from compute
            words, references = (
                (torch.tensor(column, dtype=torch.long) for column in zip(*missing))
                if missing
                else (word_ids, reference_ids)
            )
            computed = compute(words, references).cpu().numpy()
            if not pairs:
                return torch.from_numpy(computed)
            with self._lock:
                for pair, row in zip(missing, computed):
                    chain = row.astype(np.int32)  # a copy
                    chain.flags.writeable = False
                    known[pair] = self._chains[(key, *pair)] = chain
                while len(self._chains) > MAX_CACHED_CHAINS:
                    self._chains.popitem(last=False)
        return torch.from_numpy(np.stack([known[pair] for pair in pairs]).astype(np.int64))

    def forget(self) -> None:
        """Drop every remembered chain."""
        with self._lock:
            self._chains.clear()
