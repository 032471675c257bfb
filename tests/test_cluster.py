"""``python -m udig.evaluate --ray``: records equal a local run's, faults lose nothing, and a real two-node cluster.

The Ray tests start real Ray instances (each takes seconds): a local one for the faults, and a head plus a
worker node from ``ray start`` on this machine, with bounded ports, torn down after.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_WORDS

from udig import evaluation
from udig.evaluation import Item, cluster, parse_methods
from udig.metrics import FAITHFULNESS_KEYS

ROOT = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).with_name("ray")
METHODS = "ig,udig-maxcount:words"
STARTED = "Ray runtime started"
TIMEOUT = 180  # seconds for a node to start on 2 loaded cores


@pytest.fixture(autouse=True)
def patient_ray(monkeypatch):
    """Ray's raylet aborts when its agents start slower than its default wait, as they did on 2 cores
    under the full test suite plus a background run: give them 10 minutes."""
    monkeypatch.setenv("RAY_agent_register_timeout_ms", "600000")


@pytest.fixture(scope="module")
def workload(eval_setup):
    """The evaluation tests' tiny classifier, and 40 seeded sentences of its words: enough pairs to kill a run
    midway."""
    rng = random.Random(0)
    sentences = [" ".join(rng.choices(TINY_WORDS, k=rng.randint(4, 12))) + "." for _ in range(40)]
    (eval_setup / "many.jsonl").write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(sentences))
    )
    return eval_setup


def cli_args(workload: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model",
        str(workload / "model"),
        "--dataset",
        str(workload / "many.jsonl"),
        "--methods",
        METHODS,
        "--steps",
        "4",
        "--nbrs",
        "4",
        "--graph-k",
        "8",
        "--threads",
        "1",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def file_records(out: Path) -> dict[str, dict]:
    """The records file's records by key, refusing a key written twice."""
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    keys = [record["key"] for record in records]
    assert len(keys) == len(set(keys)), "no record is written twice"
    return dict(zip(keys, records))


def assert_same_records(got: dict[str, dict], expected: dict[str, dict]) -> None:
    """Same keys and fields; metrics to 1e-5 (one torch thread in both runs: in practice bit for bit)."""
    assert got.keys() == expected.keys()
    for key, record in expected.items():
        assert got[key].keys() == record.keys(), key
        for name in FAITHFULNESS_KEYS:
            assert got[key][name] == pytest.approx(record[name], abs=1e-5), (key, name)
        assert got[key]["top"] == record["top"], key


# -- without Ray ---------------------------------------------------------------------------------------


def test_ray_without_the_package_says_how_to_install_it(workload, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert evaluation.main(cli_args(workload, tmp_path, "--limit", "1", "--ray", "local")) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err
    assert not (tmp_path / "records.jsonl").exists(), "said before anything ran"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--actors", "2"], "add --ray"),
        (["--ray", "local", "--workers", "2"], "say --actors"),
        (["--ray", "local", "--actors", "0"], "--actors must be at least 1"),
        (["--ray", "local", "--gpus-per-actor", "0.5"], "with --device cuda"),
        (["--ray", "local", "--device", "cuda", "--gpus-per-actor", "2"], "share of one GPU"),
    ],
)
def test_ray_flags_are_checked_before_anything_runs(workload, tmp_path, capsys, extra, message):
    assert evaluation.main(cli_args(workload, tmp_path, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "records.jsonl").exists()


@pytest.mark.parametrize("n_items", [3, 40, 400])
def test_chunks_cover_every_pair_once_one_method_each(n_items):
    items = [Item(id=str(i), text="a") for i in range(n_items)]
    todo = [(item, spec) for item in items for spec in parse_methods("ig,random")]
    chunks = cluster.chunks(todo, actors=2)
    assert sorted((item.id, spec.name) for spec, chunk in chunks for item in chunk) == sorted(
        (i.id, s.name) for i, s in todo
    )
    assert max(len(chunk) for _, chunk in chunks) <= cluster.MAX_CHUNK
    assert len(chunks) >= min(len(todo), 2 * cluster.CHUNKS_PER_ACTOR), (
        "enough chunks to keep both actors busy to the end"
    )


# -- a local Ray instance: faults --------------------------------------------------------------------------


@pytest.mark.cluster
def test_a_killed_driver_and_a_killed_actor_lose_nothing_and_write_nothing_twice(workload, tmp_path, monkeypatch):
    """The driver is killed after its first records; the same command resumes, and there one actor's process
    is killed while it holds a chunk: Ray restarts it and retries the chunk. The records equal a local run's."""
    evaluation.main(cli_args(workload, tmp_path / "local"))
    expected = file_records(tmp_path / "local")
    assert len(expected) == 80

    out = tmp_path / "ray"
    driver = subprocess.Popen(
        [sys.executable, "-m", "udig.evaluate", *cli_args(workload, out, "--ray", "local")],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ((out / "records.jsonl").exists() and (out / "records.jsonl").read_bytes().count(b"\n")):
            assert driver.poll() is None and time.monotonic() < deadline, "the driver wrote no record"
            time.sleep(0.05)
        driver.kill()
        driver.wait()
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever of its local Ray instance outlived it
        except ProcessLookupError:
            pass
    first = file_records(out)
    assert 0 < len(first) < len(expected), "killed mid-run"

    killed, later = [], []
    results = cluster._results

    def kill_an_actor(ray, config, todo):
        """The test hook: kill the process of the actor that just finished a chunk (the pool has given it the next)."""
        chunks = results(ray, config, todo)
        node, pid, records = next(chunks)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        yield node, pid, records
        yield node, pid, records  # delivered again, as at-least-once retries may: the file keeps the first
        for result in chunks:
            later.append(result[1])
            yield result

    monkeypatch.setattr(cluster, "_results", kill_an_actor)
    assert evaluation.main(cli_args(workload, out, "--ray", "local", "--actors", "2")) == 0
    assert killed and later and killed[0] not in later, "the killed process computed nothing more"
    resumed = file_records(out)
    assert all(resumed[key] == record for key, record in first.items()), "records already written stay as they were"
    assert_same_records(resumed, expected)


@pytest.mark.cluster
@pytest.mark.skipif(torch.cuda.is_available(), reason="here the actors would run on the GPU")
def test_a_cluster_too_small_or_an_actor_that_cannot_start_ends_the_run_with_the_reason(workload, tmp_path, capsys):
    """A caller's own Ray connection (one CPU, one GPU that is not there) is used and left open."""
    import ray

    ray.init(
        address="local", num_cpus=1, num_gpus=1, include_dashboard=False, object_store_memory=cluster.OBJECT_STORE_BYTES
    )
    try:
        assert evaluation.main(cli_args(workload, tmp_path, "--limit", "1", "--ray", "local", "--actors", "2")) == 2
        assert "cannot hold 2 actors of 1 CPU(s): they need 2 CPUs (it has 1)" in capsys.readouterr().err
        assert evaluation.main(cli_args(workload, tmp_path, "--limit", "1", "--ray", "local", "--device", "cuda")) == 2
        error = capsys.readouterr().err
        assert "a Ray actor could not start: " in error and "no GPU torch can use" in error
        assert not (tmp_path / "records.jsonl").read_text()
        assert ray.is_initialized(), "the caller's connection stays open"
    finally:
        ray.shutdown()


# -- a real two-node cluster -----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, each distinct."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_ports(workers: int) -> list[str]:
    """Every port a node opens, bounded: its own free ports, and 40 from ``workers`` for its worker processes."""
    names = (
        "node-manager",
        "object-manager",
        "dashboard-agent-listen",
        "dashboard-agent-grpc",
        "metrics-export",
        "runtime-env-agent",
    )
    return [
        *(f"--{name}-port={port}" for name, port in zip(names, free_ports(len(names)))),
        f"--min-worker-port={workers}",
        f"--max-worker-port={workers + 39}",
    ]


def start_node(args: list[str], root: Path, name: str, workers: int) -> subprocess.Popen:
    """``ray start --block`` (it stops its node's processes when terminated), once it says the node runs."""
    log = root / f"{name}.log"
    command = [
        str(RAY),
        "start",
        "--block",
        "--num-cpus=1",
        "--object-store-memory=80000000",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={root / name}",
        *node_ports(workers),
        *args,
    ]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    while STARTED not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start {name} failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return process


@pytest.fixture
def two_nodes(monkeypatch):
    """A head and a worker node of one CPU each on 127.0.0.1, token-authenticated; yields the head's address."""
    root = Path(tempfile.mkdtemp(prefix="udig-ray-"))  # short: Ray's socket paths must fit 107 characters
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))  # for the nodes and this driver alike
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    head_port, dashboard_port = free_ports(2)
    workers = random.SystemRandom().randrange(30000, 32000, 80)  # 40 worker ports per node
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(
            start_node(
                ["--head", f"--port={head_port}", "--include-dashboard=false", f"--dashboard-port={dashboard_port}"],
                root,
                "head",
                workers,
            )
        )
        nodes.append(start_node([f"--address=127.0.0.1:{head_port}"], root, "worker", workers + 40))
        yield f"127.0.0.1:{head_port}"
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(node.pid, signal.SIGKILL)  # anything of the node's that did not stop
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.cluster
def test_a_two_node_cluster_computes_the_local_records(two_nodes, tmp_path):
    """4 sentences x 2 methods with the offline model on two one-CPU nodes: both work, the records are the local ones.
    The driver is a fresh process, as a user's is: a process keeps the auth token of its first Ray connection."""
    args = ["--limit", "4", "--methods", "ig,udig-greedy", "--steps", "4", "--threads", "1"]
    assert evaluation.main([*args, "--quiet", "--out", str(tmp_path / "local")]) == 0
    driver = subprocess.run(
        [
            sys.executable,
            "-m",
            "udig.evaluate",
            *args,
            "--out",
            str(tmp_path / "cluster"),
            "--ray",
            two_nodes,
            "--actors",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert_same_records(file_records(tmp_path / "cluster"), file_records(tmp_path / "local"))
    [tally] = [line.rpartition("\r")[2] for line in driver.stderr.splitlines() if "ray: records by node: " in line]
    counts = [int(part.rsplit(" ", 1)[1]) for part in tally.removeprefix("ray: records by node: ").split(", ")]
    assert len(counts) == 2 and min(counts) > 0 and sum(counts) == 8, f"both nodes did work: {tally}"
