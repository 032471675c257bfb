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
"""

from .chains import MAX_CACHED_CHAINS
from .graph import knn_graph
from .index import VocabIndex, vocab_index_for
from .int8 import int8_codes
from .nearest import hold_int8_screen, nearest_by_products
from .warm import COMPILE_ORDER, WARM_METHODS, WARM_PARTS, warm_up
from .words import (
    CANDIDATE_SETS,
    DEFAULT_LANGUAGE,
    MIN_ZIPF,
    frequent_words,
    lexical_words,
    otsu_threshold,
    undertrained_rows,
)

__all__ = [
    "CANDIDATE_SETS",
    "COMPILE_ORDER",
    "DEFAULT_LANGUAGE",
    "MAX_CACHED_CHAINS",
    "MIN_ZIPF",
    "VocabIndex",
    "WARM_METHODS",
    "WARM_PARTS",
    "frequent_words",
    "hold_int8_screen",
    "int8_codes",
    "knn_graph",
    "lexical_words",
    "nearest_by_products",
    "otsu_threshold",
    "undertrained_rows",
    "vocab_index_for",
    "warm_up",
]
