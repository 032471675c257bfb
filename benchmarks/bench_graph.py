"""DIG's graph for the demo's default model and settings (K = 500, real-word candidates), built from scratch in
new processes with the kernels already compiled: what the warm-up's "building DIG's word graph" stage costs
on a new container once the compilers are done. Target (issue 30): <= 3 s on an idle 2-core machine.

    python benchmarks/bench_graph.py [--builds 3]

Prints each build's wall and process CPU seconds, their medians, the processor and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import processor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = """
import json, tempfile, time
from udig.models import load_model
from udig.vocab import vocab_index_for, warm_up
warm_up(["dig"])  # loaded from numba's cache: compilation is not what is timed
model, tokenizer = load_model()
index = vocab_index_for(model, tokenizer, cache_dir=tempfile.mkdtemp())  # an empty graph cache: built, not loaded
index.candidate_mask("words")  # the real words: part of the index, made before the graph stage in the demo
cpu, wall = time.process_time(), time.perf_counter()
graph = index.graph(500, "words", rows=())
print(json.dumps(dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu, shape=list(graph.shape))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run([sys.executable, "-m", "udig.vocab", "dig"], cwd=ROOT, env=env, check=True)
    before = os.getloadavg()[0]
    runs = []
    for _ in range(args.builds):
        done = subprocess.run(
            [sys.executable, "-c", BUILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"build: {runs[-1]['wall']:.2f} s wall, {runs[-1]['cpu']:.2f} s CPU, graph {runs[-1]['shape']}")
    wall, cpu = (statistics.median(run[name] for run in runs) for name in ("wall", "cpu"))
    print(
        f"median of {len(runs)}: {wall:.2f} s wall, {cpu:.2f} s CPU (target <= 3 s wall); {processor()}, "
        f"{os.cpu_count()} cores; load average {before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
