"""``python -m udig.vocab [NAME ...]``: compile kernels into numba's disk cache (:func:`warm_up`) and print a line
``<name> <seconds>`` as each is done. A name is a method (``udig``, ``dig``) or a part of one
(:data:`udig.vocab.warm.WARM_PARTS`); with none, every part in :data:`udig.vocab.warm.COMPILE_ORDER`.

A server starts this before its own heavy imports (``app.py``), so that the compilation runs on another core
meanwhile and its own :func:`warm_up` then only loads each part as this process says it is written (about 0.5 s
in all instead of 10-15 s). The parts no first request needs (:data:`LOW_PRIORITY_PARTS`) compile at the lowest
CPU priority: on a 2-core machine they would otherwise slow the first DIG request that runs beside them.
"""

from __future__ import annotations

import os
import sys

from .warm import COMPILE_ORDER, WARM_NAMES, warm_up

LOW_PRIORITY_PARTS = ("udig-screen",)  # UDIG's int8 screen: the same words without it, faster on long texts


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(COMPILE_ORDER)
    unknown = sorted(set(names) - set(WARM_NAMES))
    if unknown:
        print(f"cannot warm up {unknown}; choose among {WARM_NAMES}", file=sys.stderr)
        return 2
    for name in names:
        if name in LOW_PRIORITY_PARTS and hasattr(os, "nice"):
            os.nice(19)  # and every part after it: this process has no part left that a request waits for
        print(f"{name} {warm_up([name])[name]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
