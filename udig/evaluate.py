"""``python -m udig.evaluate``: the evaluation's command line; the code is the :mod:`udig.evaluation` package.

This module stays the entry point so the documented command keeps its name; everything else lives in the
package, one module per job.
"""

import sys

from .evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
