"""``python -m udig.vocab [udig] [dig]``: compile each method's kernels into numba's disk cache (:func:`warm_up`)
and print a line ``<method> <seconds>`` as each is done.

A server starts this before its own heavy imports (``app.py``), so that the compilation runs on another core
meanwhile and its own :func:`warm_up` then only loads what this process wrote (about 0.5 s instead of 10-15 s).
"""

from __future__ import annotations

import sys

from .warm import WARM_METHODS, warm_up


def main(argv: list[str] | None = None) -> int:
    methods = (argv if argv is not None else sys.argv[1:]) or list(WARM_METHODS)
    unknown = sorted(set(methods) - set(WARM_METHODS))
    if unknown:
        print(f"cannot warm up {unknown}; choose among {WARM_METHODS}", file=sys.stderr)
        return 2
    for method in methods:
        print(f"{method} {warm_up([method])[method]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
