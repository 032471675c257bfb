"""Ray's cost over ``--workers``, and whether packing short texts into one pass would pay, as ratios of one run.

    python benchmarks/bench_cluster.py [--limit 40] [--methods ig,udig-maxcount] [--out benchmarks/cluster_results.md]

1. Throughput: ``python -m udig.evaluate`` over the same examples and methods with ``--workers 2`` and with
   ``--ray local --actors 2`` (one torch thread per process either way), each into a fresh folder. A watcher
   notes when each record lands in ``records.jsonl``: pairs per minute end to end (model loading and Ray's
   start included) and steady (from the first record to the last: what a long run sees). Target from the
   cluster issue: Ray's steady overhead <= 10 %. The two runs' records are compared too (same keys, metrics
   to 1e-5).
2. Packing: N short sentences' paths (``--points`` points each) through MiniLM one sentence per
   forward/backward pass (what ``Explainer.explain_many`` does), against all of them padded into one pass.

Run it on an otherwise idle machine: 2 cores are easily disturbed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from benchmarks.machine import processor  # noqa: E402
from udig.evaluation import load_items, read_records  # noqa: E402
from udig.metrics import FAITHFULNESS_KEYS  # noqa: E402
from udig.models import load_model  # noqa: E402
from udig.tasks import TASKS, max_tokens  # noqa: E402


def watched_run(args: list[str], records: Path) -> tuple[float, list[float]]:
    """Run the command; its wall time and the moment (from its start) each record was appended."""
    arrivals: list[float] = []
    done = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        seen = 0
        while not done.is_set():
            count = records.read_bytes().count(b"\n") if records.exists() else 0
            arrivals.extend([time.perf_counter() - start] * (count - seen))
            seen = count
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        subprocess.run(
            [sys.executable, "-m", "udig.evaluate", *args],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
    return wall, arrivals


def per_minute(wall: float, arrivals: list[float]) -> tuple[float, float]:
    """(end-to-end, steady) pairs per minute; steady counts the records after the first arrival."""
    first, last = arrivals[0], arrivals[-1]
    later = sum(1 for t in arrivals if t > first)
    return 60 * len(arrivals) / wall, 60 * later / (last - first) if last > first else float("nan")


def max_difference(a: dict, b: dict) -> float:
    """The largest metric difference between two runs' records, which must have the same keys."""
    assert a.keys() == b.keys() and all(a[k].keys() == b[k].keys() for k in a), "the two runs' records differ in keys"
    return max(abs(a[k][m] - b[k][m]) for k in a for m in FAITHFULNESS_KEYS if a[k][m] is not None)


def throughput(limit: int, methods: str, slots: int, rounds: int) -> list[str]:
    common = ["--limit", str(limit), "--methods", methods, "--threads", "1", "--quiet"]
    variants = {
        f"--workers {slots}": ["--workers", str(slots)],
        f"--ray local --actors {slots}": ["--ray", "local", "--actors", str(slots)],
    }
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    records: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="udig-bench-cluster-") as scratch:
        subprocess.run(
            [sys.executable, "-m", "udig.evaluate", *common, "--limit", "1", "--out", f"{scratch}/warm"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # graphs into the cache
        for round_ in range(rounds):
            for name, extra in variants.items():
                out = Path(scratch) / f"{round_}-{extra[0].strip('-')}"
                shutil.rmtree(out, ignore_errors=True)
                wall, arrivals = watched_run([*common, *extra, "--out", str(out)], out / "records.jsonl")
                rates[name].append(per_minute(wall, arrivals))
                records[name] = read_records(out / "records.jsonl")
                print(f"{name}: {len(arrivals)} pairs in {wall:.1f} s", flush=True)
    pairs = limit * len(methods.split(","))
    lines = [
        f"{pairs} pairs ({limit} sentences x {methods}), median of {rounds} round(s), 1 torch thread per process",
        "",
        "| run | pairs/min end to end | pairs/min steady |",
        "| --- | ---: | ---: |",
    ]
    medians = {name: [statistics.median(r[i] for r in runs) for i in (0, 1)] for name, runs in rates.items()}
    for name, (whole, steady) in medians.items():
        lines.append(f"| `{name}` | {whole:.1f} | {steady:.1f} |")
    (local_whole, local_steady), (ray_whole, ray_steady) = medians.values()
    lines += [
        "",
        f"Ray's overhead: steady {100 * (local_steady / ray_steady - 1):+.1f} % (target <= 10 %), "
        f"end to end {100 * (local_whole / ray_whole - 1):+.1f} % (Ray's start and the actors' model loading)",
        "Largest metric difference between the two runs' records: "
        f"{max_difference(*records.values()):.2e} (target <= 1e-5)",
    ]
    return lines


def packing(n_texts: int, points: int, repeats: int) -> list[str]:
    model, tokenizer = load_model(None)
    torch.set_num_threads(1)  # as one worker or actor
    texts = [item.text for item in load_items("rt-offline", 0) if 8 <= len(item.text.split()) <= 20][:n_texts]
    task = TASKS["classification"]
    encodings = [task.encode(tokenizer, {"text": t}, max_tokens(model, tokenizer)) for t in texts]
    table = model.get_input_embeddings().weight.detach()
    paths = [table[e.input_ids].expand(points, -1, -1).clone() for e in encodings]  # (N, L, d) each

    def one_by_one() -> None:
        for path, encoding in zip(paths, encodings):
            path = path.clone().requires_grad_(True)
            extras = {k: v.expand(points, -1) for k, v in encoding.extras.items()}
            torch.autograd.grad(model(inputs_embeds=path, **extras).logits[:, 1].sum(), path)

    longest = max(len(e) for e in encodings)
    packed = torch.zeros(points * len(paths), longest, table.shape[1])
    mask = torch.zeros(points * len(paths), longest, dtype=torch.long)
    for i, path in enumerate(paths):
        packed[i * points : (i + 1) * points, : path.shape[1]] = path
        mask[i * points : (i + 1) * points, : path.shape[1]] = 1

    def all_at_once() -> None:
        path = packed.clone().requires_grad_(True)
        torch.autograd.grad(model(inputs_embeds=path, attention_mask=mask).logits[:, 1].sum(), path)

    one_by_one(), all_at_once()  # warm-up
    ratios, separate_s = [], []
    for _ in range(repeats):  # alternated: each ratio compares two runs a moment apart
        start = time.perf_counter()
        one_by_one()
        middle = time.perf_counter()
        all_at_once()
        ratios.append((time.perf_counter() - middle) / (middle - start))
        separate_s.append(middle - start)
    tokens = sum(len(e) for e in encodings)
    return [
        f"{len(texts)} sentences of {min(len(e) for e in encodings)}-{longest} tokens ({tokens} in all), "
        f"{points} path points each, 1 torch thread, median of {repeats}: one pass per sentence "
        f"{statistics.median(separate_s):.3f} s; all in one padded pass / one per sentence = "
        f"{statistics.median(ratios):.2f} (below 1: packing is faster)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--methods", default="ig,udig-maxcount")
    parser.add_argument("--slots", type=int, default=2, help="workers and actors")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pack-texts", type=int, default=8, help="0 skips the packing measurement")
    parser.add_argument("--points", type=int, default=31)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cluster_results.md")
    args = parser.parse_args()
    lines = [
        f"# Ray against --workers, and packing ({processor()}, {os.cpu_count()} cores)",
        "",
        "`python benchmarks/bench_cluster.py` " + " ".join(sys.argv[1:]),
        "",
        "## Packing short texts",
        "",
    ]
    lines += packing(args.pack_texts, args.points, args.repeats) if args.pack_texts else ["(skipped)"]
    print("\n".join(lines), flush=True)
    if not args.skip_throughput:
        lines += ["", "## Throughput", ""] + throughput(args.limit, args.methods, args.slots, args.rounds)
    print("\n".join(lines[-8:]))
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
