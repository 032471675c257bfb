"""``python -m udig.vocab [NAME ...]``: compile kernels into numba's disk cache (:func:`warm_up`) and print a line
``<name> <seconds>`` as each is done. A name is a method (``udig``, ``dig``; both when none is given) or half of
one (``udig-search``, ``udig-chains``, ``dig-graph``, ``dig-chains``: :data:`udig.vocab.warm.WARM_PARTS`).

A server starts two of these, one per half of each method, before its own heavy imports (``app.py``), so that
the compilation runs on the other core meanwhile and its own :func:`warm_up` then only loads what these
processes wrote (about 0.5 s instead of 10-15 s).
"""

from __future__ import annotations

import sys

from .warm import WARM_METHODS, WARM_NAMES, warm_up


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(WARM_METHODS)
    unknown = sorted(set(names) - set(WARM_NAMES))
    if unknown:
        print(f"cannot warm up {unknown}; choose among {WARM_NAMES}", file=sys.stderr)
        return 2
    for name in names:
        print(f"{name} {warm_up([name])[name]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
