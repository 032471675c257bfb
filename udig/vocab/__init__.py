"""The vocabulary index: the word-embedding matrix and every search over it.

DIG and UDIG choose their anchors among vocabulary rows, so all of them share one index per model
(:class:`VocabIndex`, :func:`vocab_index_for`), made of one part per job:

- :mod:`.words`: which rows may be anchors (the candidate sets; the real words a reader recognises, read
  through each tokenizer family's own surface forms);
- :mod:`.nearest` (with :mod:`.int8`, its exact int8 screen): the nearest candidate rows along UDIG's
  reference lines, and to any points (the word-approximation error);
- :mod:`.graph`: DIG's K-nearest-neighbour graph, built lazily under a per-graph lock, cached on disk
  (written atomically, verified on load, rebuilt when anything does not verify);
- :mod:`.chains`: anchor chains remembered across sentences;
- :mod:`.index`: the index that ties them to one model;
- :mod:`.warm`: :func:`warm_up`, which compiles every kernel a first request runs.

As in :mod:`udig`, the names (``__init__.pyi``) load on first use: ``python -m udig.vocab`` compiles the kernels
without torch.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
