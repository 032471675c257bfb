"""``python -m udig.vocab [NAME ...]``: compile kernels into numba's disk cache (:func:`warm_up`) and print a line
``<name> <seconds>`` as each is done. A name is a method (``udig``, ``dig``) or a part of one
(:data:`udig.vocab.warm.WARM_PARTS`); with none, every part in :data:`udig.vocab.warm.COMPILE_ORDER`.

A server starts this before its own heavy imports (``app.py``), so that the compilation runs on another core
meanwhile and its own :func:`warm_up` then only loads each part as this process says it is written (about 0.5 s
in all instead of 10-15 s).
"""

from __future__ import annotations

import sys

from .warm import COMPILE_ORDER, WARM_NAMES, warm_up


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(COMPILE_ORDER)
    unknown = sorted(set(names) - set(WARM_NAMES))
    if unknown:
        print(f"cannot warm up {unknown}; choose among {WARM_NAMES}", file=sys.stderr)
        return 2
    for name in names:
        print(f"{name} {warm_up([name])[name]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
