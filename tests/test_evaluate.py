"""``python -m udig.evaluate`` on a tiny BERT: resuming loses nothing and changes nothing; outputs; baselines; and
committed records recomputed from the shipped model."""

from __future__ import annotations

import csv
import json
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from udig import Explainer, evaluation
from udig.evaluation import EvaluationError, bootstrap_interval, parse_methods, read_records

METHODS = "ig,dig-greedy:all,udig-maxcount,udig-greedy:words,random,grad-input"


def run_cli(setup, out, limit, *extra):
    args = [
        "--model",
        str(setup / "model"),
        "--dataset",
        str(setup / "data.jsonl"),
        "--methods",
        METHODS,
        "--limit",
        str(limit),
        "--steps",
        "4",
        "--nbrs",
        "4",
        "--graph-k",
        "8",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]
    assert evaluation.main(args) == 0
    return json.loads((out / "summary.json").read_text())


def without_timing(summary: dict) -> dict:
    summary = json.loads(json.dumps(summary))
    summary.pop("runtime")
    for entry in summary["methods"].values():
        entry.pop("seconds")
        entry.pop("metric_seconds")
    return summary


def test_an_interrupted_run_resumes_and_gives_the_same_summary(eval_setup, tmp_path):
    whole = run_cli(eval_setup, tmp_path / "whole", 4)

    resumed_dir = tmp_path / "resumed"
    run_cli(eval_setup, resumed_dir, 2)  # stopped after 2 sentences ...
    records = resumed_dir / "records.jsonl"
    first_lines = records.read_text().splitlines()
    with open(records, "a") as handle:  # ... in the middle of writing a line
        handle.write('{"key": "s3|ig", "example": "s3", "method": "ig", "log_o')
    resumed = run_cli(eval_setup, resumed_dir, 4)

    assert without_timing(resumed) == without_timing(whole)
    lines = records.read_text().splitlines()
    assert lines[: len(first_lines)] == first_lines, "records already written are kept as they were"
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) == 4 * len(parse_methods(METHODS))
    assert all(m["n"] == 4 and m["errors"] == 0 and m["missing"] == 0 for m in whole["methods"].values())
    assert whole["n_examples"] == 4


def test_a_finished_run_is_not_recomputed(eval_setup, tmp_path, monkeypatch):
    run_cli(eval_setup, tmp_path, 2)

    def fail(*args, **kwargs):
        raise AssertionError("nothing should be recomputed")

    monkeypatch.setattr(Explainer, "explain", fail)
    run_cli(eval_setup, tmp_path, 2)


def test_records_of_different_settings_are_not_mixed(eval_setup, tmp_path, capsys):
    run_cli(eval_setup, tmp_path, 1)
    args = [
        "--model",
        str(eval_setup / "model"),
        "--dataset",
        str(eval_setup / "data.jsonl"),
        "--methods",
        "ig",
        "--limit",
        "1",
        "--steps",
        "5",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert evaluation.main(args) == 2  # library code raised; only main turns it into an exit status
    error = capsys.readouterr().err
    assert "different run" in error and "steps: 4 there, 5 now" in error


def test_bad_values_are_refused_with_the_engine_rules(eval_setup, tmp_path, capsys):
    base = [
        "--model",
        str(eval_setup / "model"),
        "--dataset",
        str(eval_setup / "data.jsonl"),
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    for extra, message in (
        (["--steps", "0"], "steps must be at least 1"),
        (["--factor", "9"], "factor must be between 0 and 6"),
        (["--methods", "shap"], "unknown method"),
        (["--topk", "120"], "topk"),
    ):
        assert evaluation.main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "records.jsonl").exists(), "nothing is written for a refused run"


def test_outputs_table_csv_and_chart(eval_setup, tmp_path):
    summary = run_cli(eval_setup, tmp_path, 3)
    names = [spec.name for spec in parse_methods(METHODS)]
    assert summary["methods_order"] == names
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == names
    for row in rows:
        assert float(row["log_odds_low"]) <= float(row["log_odds"]) <= float(row["log_odds_high"])
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert "udig-maxcount:all | ig |" in table and "udig-greedy:words | dig-greedy:words" not in table
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ig, random = summary["methods"]["ig"], summary["methods"]["random"]
    assert ig["delta"] is not None and ig["wae"] > 0 and ig["real_word_share"] is None
    assert random["delta"] is None and random["wae"] is None
    assert summary["methods"]["udig-greedy:words"]["real_word_share"] == 1.0
    for line in (tmp_path / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["k"] == int(record["length"] * 0.2) and len(record["top"]) == record["k"]


# -- pieces -----------------------------------------------------------------------------------------------


def test_method_names_are_canonical_and_checked():
    specs = parse_methods("ig, udig-maxcount, dig-greedy:words,random,udig-maxcount:all")
    assert [s.name for s in specs] == ["ig", "udig-maxcount:all", "dig-greedy:words", "random"]
    assert (specs[1].method, specs[1].strategy, specs[1].candidates) == ("udig", "maxcount", "all")
    for bad, message in [
        ("ig:words", "no candidate set"),
        ("udig-fast", "unknown method"),
        ("dig-greedy:some", "unknown candidate set"),
        ("", "no methods"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_methods(bad)
    assert evaluation.main(["--methods", "nope"]) == 2


def test_a_path_method_may_name_its_baseline_token():
    specs = parse_methods("udig-maxcount:words@pad, udig-greedy@mask, ig@mask, dig-greedy@pad")
    assert [s.name for s in specs] == ["udig-maxcount:words@pad", "udig-greedy:all", "ig@mask", "dig-greedy:all"]
    assert [s.baseline for s in specs] == ["pad", None, "mask", None]  # a paper's own baseline is not written
    for bad in ("random@pad", "udig-greedy@cls", "udig-greedy:words@"):
        with pytest.raises(ValueError, match="take a baseline"):
            parse_methods(bad)


def test_a_baseline_variant_is_explained_from_its_token_and_compared_with_its_twin(eval_setup, tmp_path):
    args = [
        "--model",
        str(eval_setup / "model"),
        "--dataset",
        str(eval_setup / "data.jsonl"),
        "--limit",
        "2",
        "--methods",
        "ig,udig-maxcount,udig-maxcount@pad",
        "--steps",
        "4",
        "--nbrs",
        "4",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert evaluation.main(args) == 0
    records = read_records(tmp_path / "records.jsonl")
    padded = [r for r in records.values() if r["method"] == "udig-maxcount:all@pad"]
    assert len(padded) == 2
    for record in padded:  # the [PAD] path starts elsewhere, so its completeness terms differ
        assert record["delta"] != records[f"{record['example']}|udig-maxcount:all"]["delta"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    rivals = {c["versus"] for c in summary["comparisons"] if c["method"] == "udig-maxcount:all@pad"}
    assert rivals == {"ig", "udig-maxcount:all"}


def test_resume_reader_drops_a_truncated_last_line_and_keeps_a_complete_one(tmp_path):
    path = tmp_path / "records.jsonl"
    a, b = (json.dumps(record(key)) for key in "ab")
    path.write_text(f'{a}\n{b}\n{{"key": "c", "x": [1, ')
    assert list(read_records(path)) == ["a", "b"]
    assert path.read_text() == f"{a}\n{b}\n"
    path.write_text(f"{a}\n{b}")
    assert list(read_records(path)) == ["a", "b"]
    assert path.read_text().endswith("}\n")
    broken = [
        "not json",
        '{"key": "x"}',
        json.dumps({**record("x"), "log_odds": "high"}),
        json.dumps(record("x") | {"wae": [1]}),
        json.dumps({k: v for k, v in record("x").items() if k != "seconds"}),
        "[1, 2]",
        json.dumps(record(3)),
    ]
    for line in broken:  # JSON or not, a line summarize cannot use is refused with the same message
        path.write_text(f"{a}\n{line}\n{b}\n")
        with pytest.raises(EvaluationError, match="line 2, is not a record"):
            read_records(path)
    path.write_text(
        json.dumps({"key": "e", "example": "e", "method": "ig", "error": "ValueError: x", "seconds": 0.1}) + "\n"
    )
    assert list(read_records(path)) == ["e"]  # an explanation that failed is a record too


def record(key) -> dict:
    return {
        "key": key,
        "example": str(key),
        "method": "ig",
        "log_odds": -0.5,
        "comprehensiveness": 0.2,
        "sufficiency": 0.1,
        "delta": 0.01,
        "relative_delta": 0.02,
        "wae": None,
        "wae_words": None,
        "real_word_share": None,
        "seconds": 0.2,
        "metric_seconds": 0.1,
        "length": 9,
    }


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(1).normal(1.0, 1.0, 400)
    low, high = bootstrap_interval(values, np.random.default_rng(0))
    assert (low, high) == bootstrap_interval(values, np.random.default_rng(0))
    assert low < values.mean() < high and 0.15 < high - low < 0.25  # about 4 standard errors wide
    assert bootstrap_interval(np.full(10, 2.0), np.random.default_rng(0)) == (2.0, 2.0)
    assert evaluation.verdict("log_odds", -0.3, -0.1) == "better"
    assert evaluation.verdict("comprehensiveness", -0.3, -0.1) == "worse"
    assert evaluation.verdict("sufficiency", -0.3, 0.1) == "tie"


def test_grad_input_is_gradient_times_input_and_random_is_seeded(eval_setup):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(eval_setup / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(eval_setup / "model")
    explainer = Explainer(model, tokenizer)
    texts = [json.loads(line)["text"] for line in (eval_setup / "data.jsonl").read_text().splitlines()]
    e = explainer.explain(texts[1], method="grad-input")
    ids = torch.tensor([e.input_ids])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds).logits[0]
    assert e.target == int(logits.argmax())
    (grad,) = torch.autograd.grad(logits[e.target], embeds)
    expected = (grad * embeds).sum(-1)[0].masked_fill(torch.tensor(e.special_mask), 0.0)
    assert torch.allclose(torch.tensor(e.attributions, dtype=torch.float32), expected, atol=1e-6)
    assert e.path is None and np.isnan(e.delta) and e.settings["n_points"] is None

    first = explainer.explain(texts[1], method="random", seed=0)
    assert first.attributions == explainer.explain(texts[1], method="random", seed=0).attributions
    assert first.attributions != explainer.explain(texts[1], method="random", seed=1).attributions
    assert (
        first.attributions
        != explainer.explain(texts[2], method="random", seed=0).attributions[: len(first.attributions)]
    )
    assert all(a == 0.0 for a, s in zip(first.attributions, first.special_mask) if s)


def test_hub_datasets_fail_clearly_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails, as offline without the package
    with pytest.raises(EvaluationError, match="rt-offline"):
        evaluation.load_items("sst2", seed=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        evaluation.load_items("no-such-set", seed=0)


@pytest.mark.slow  # two spawned processes, each importing torch and loading the model
def test_worker_processes_write_the_same_records(eval_setup, tmp_path, monkeypatch):
    single = run_cli(eval_setup, tmp_path / "one", 2, "--threads", "1")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    double = run_cli(eval_setup, tmp_path / "two", 2, "--workers", "2")
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE", "workers must not spin while they wait"
    one = read_records(tmp_path / "one" / "records.jsonl")
    two = read_records(tmp_path / "two" / "records.jsonl")
    assert one.keys() == two.keys()
    for key, record in one.items():
        for name in ("log_odds", "comprehensiveness", "sufficiency", "top", "k", "pred"):
            assert two[key][name] == pytest.approx(record[name], abs=1e-6), (key, name)
    assert double["n_examples"] == single["n_examples"] == 2


COMMITTED_RUNS = sorted(
    path.parent for path in (Path(__file__).resolve().parent.parent / "docs").glob("**/summary.json")
)


@pytest.mark.parametrize("out", COMMITTED_RUNS, ids=lambda path: path.relative_to(path.parents[1]).as_posix())
def test_every_committed_evaluation_reproduces_from_its_records(out):
    """docs/*: each run's summary, table and intervals follow from its records.jsonl alone (seeded bootstrap)."""
    summary = json.loads((out / "summary.json").read_text())
    items = evaluation.load_items(summary["config"]["dataset"], summary["config"]["seed"])[: summary["n_examples"]]
    methods = parse_methods(",".join(summary["methods_order"]))
    again = evaluation.summarize(
        read_records(out / "records.jsonl"), items, methods, summary["config"], seed=summary["config"]["seed"]
    )
    assert json.loads(json.dumps(again)) == summary
    assert evaluation.markdown_table(summary) == (out / "table.md").read_text()


def test_the_imdb_findings_follow_from_the_committed_records():
    """docs/evaluation-imdb/findings.md is what its findings.py writes from the two folders' records (seeded
    bootstrap): the comparison with Rotten Tomatoes printed in the docs is not typed in by hand."""
    script = runpy.run_path(str(DOCS / "evaluation-imdb" / "findings.py"))
    assert "\n".join(script["lines"]()) + "\n" == (DOCS / "evaluation-imdb" / "findings.md").read_text()


def test_a_method_name_may_carry_its_integration_rule():
    specs = parse_methods(
        "ig/riemann_middle, udig-maxcount:words@pad/riemann_trapezoid, dig-greedy/riemann_left, random"
    )
    assert [s.name for s in specs] == [
        "ig/riemann_middle",
        "udig-maxcount:words@pad/riemann_trapezoid",
        "dig-greedy:all",
        "random",
    ]
    assert [s.rule for s in specs] == [
        "riemann_middle",
        "riemann_trapezoid",
        None,
        None,
    ]  # the papers' left sum is never written
    by_default = parse_methods("ig,udig-greedy,random", rule="riemann_right")
    assert [s.name for s in by_default] == ["ig/riemann_right", "udig-greedy:all/riemann_right", "random"]
    for bad, message in [
        ("random/riemann_left", "no path to integrate"),
        ("udig-greedy/gausslegendre", "integrates by"),
        ("ig/simpson", "unknown rule"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_methods(bad)


def test_a_method_name_may_carry_the_published_codes_objective():
    specs = parse_methods("udig-maxcount:words+largest, ig/riemann_middle+largest, udig-greedy")
    assert [s.name for s in specs] == ["udig-maxcount:words+largest", "ig/riemann_middle+largest", "udig-greedy:all"]
    assert [s.objective for s in specs] == ["largest", "largest", None]
    config = evaluation.EvalConfig()
    assert config.settings(specs[1]).objective == "largest" and config.settings(specs[2]).objective == "target"
    for bad in ("random+largest", "ig+target", "ig+"):
        with pytest.raises(ValueError, match="may end in \\+largest, nothing else"):
            parse_methods(bad)


def test_a_variant_is_compared_with_its_twin(eval_setup, tmp_path):
    args = [
        "--model",
        str(eval_setup / "model"),
        "--dataset",
        str(eval_setup / "data.jsonl"),
        "--limit",
        "2",
        "--methods",
        "ig,udig-maxcount,udig-maxcount/riemann_trapezoid,udig-maxcount+largest",
        "--steps",
        "4",
        "--nbrs",
        "4",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert evaluation.main(args) == 0
    records = read_records(tmp_path / "records.jsonl")
    trapezoid = [r for r in records.values() if r["method"] == "udig-maxcount:all/riemann_trapezoid"]
    assert len(trapezoid) == 2 and all(r["log_odds"] is not None for r in trapezoid)
    summary = json.loads((tmp_path / "summary.json").read_text())
    rivals = {c["versus"] for c in summary["comparisons"] if c["method"] == "udig-maxcount:all/riemann_trapezoid"}
    assert rivals == {"ig", "udig-maxcount:all"}
    rivals = {c["versus"] for c in summary["comparisons"] if c["method"] == "udig-maxcount:all+largest"}
    assert rivals == {"ig", "udig-maxcount:all"}  # the published target against udig's own
    assert sum(r["method"] == "udig-maxcount:all+largest" for r in records.values()) == 2


def test_sequential_methods_are_named_with_seq_and_compared_with_ig_and_their_joint_twin(eval_setup, tmp_path):
    specs = parse_methods("sig, seq-udig-maxcount:words, seq-dig-greedy@pad, sig@pad/riemann_middle")
    assert [s.name for s in specs] == ["sig", "seq-udig-maxcount:words", "seq-dig-greedy:all", "sig@pad/riemann_middle"]
    assert [s.sequential for s in specs] == [False, True, True, False]  # SIG is sequential by itself
    assert evaluation.summary.rivals(specs[0]) == ["ig", "ig@mask"]
    assert evaluation.summary.rivals(specs[3]) == ["ig", "ig/riemann_middle"]
    for bad in ("seq-ig", "seq-sig", "seq-random"):
        with pytest.raises(ValueError, match="unknown method"):
            parse_methods(bad)
    args = [
        "--model",
        str(eval_setup / "model"),
        "--dataset",
        str(eval_setup / "data.jsonl"),
        "--limit",
        "2",
        "--methods",
        "ig,ig@mask,sig,udig-maxcount,seq-udig-maxcount",
        "--steps",
        "3",
        "--nbrs",
        "4",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert evaluation.main(args) == 0
    records = read_records(tmp_path / "records.jsonl")
    assert len(records) == 10 and all(isinstance(r["aopc_sufficiency"], float) for r in records.values())
    for record in (r for r in records.values() if r["method"] == "seq-udig-maxcount:all"):
        assert (
            record["delta"] != records[f"{record['example']}|udig-maxcount:all"]["delta"]
        )  # other paths, other integral
    summary = json.loads((tmp_path / "summary.json").read_text())
    rivals = {(c["method"], c["versus"]) for c in summary["comparisons"] if c["metric"] == "aopc_sufficiency"}
    assert {
        ("sig", "ig"),
        ("sig", "ig@mask"),
        ("seq-udig-maxcount:all", "ig"),
        ("seq-udig-maxcount:all", "udig-maxcount:all"),
    } <= rivals
    table = (tmp_path / "table.md").read_text()
    assert "AOPC comprehensiveness ↑ | AOPC sufficiency ↓" in table and "| seq-udig-maxcount:all | 2 |" in table


def test_records_written_before_aopc_still_summarise_without_its_columns(eval_setup, tmp_path):
    run_cli(eval_setup, tmp_path, 2)
    path = tmp_path / "records.jsonl"
    old = [
        {k: v for k, v in json.loads(line).items() if not k.startswith("aopc_")}
        for line in path.read_text().splitlines()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    summary = run_cli(eval_setup, tmp_path, 2)  # resumes: nothing to compute, the old records are read as they are
    assert "aopc_sufficiency" not in summary["methods"]["ig"] and "log_odds" in summary["methods"]["ig"]
    assert "AOPC" not in (tmp_path / "table.md").read_text()


# -- the committed records, recomputed from the shipped model --------------------------------------------------

# docs/evaluation-sequential reran every method of the 500-sentence table (docs/evaluation) on its first 200
# sentences with today's real-word rule. docs/evaluation itself predates the word-frequency prior of real-word
# anchors (commit b20b287): its :words rows and every row's real-word diagnostics no longer reproduce.
# docs/evaluation-imdb is the IMDb model on its reviews. Per committed folder: texts and methods recomputed.
DOCS = Path(__file__).resolve().parent.parent / "docs"
RECOMPUTED = {
    # two short test sentences (9 and 10 tokens), one positive, one negative
    "evaluation-sequential": (("1061", "8523"), ("ig", "dig-maxcount:all", "udig-maxcount:all", "udig-maxcount:words")),
    # the shortest reviews among the first 60 of the seeded order, 34 and 47 tokens: one positive, one negative
    "evaluation-imdb": (("23554", "8501"), ("ig", "dig-greedy:words", "udig-maxcount:words@pad")),
}
# Floats are float32 sums whose order depends on the CPU's vector width and torch's thread count. Recomputed on
# this machine (default threads; the committed runs used one per worker), the metrics differed from the
# committed ones by at most 3e-6 and delta by 1.1e-5, over 25 records of 4 sentences. 1e-4 leaves a 10x margin
# for other CPUs and stays far below what a changed path does (docs/evaluation's stale :words rows differ by 0.02
# to 3.3 in the same metrics) and below the tables' 3 printed decimals. Discrete fields (top-k tokens, k, prediction)
# must be equal: a float difference that flipped one of them would change the table, not only its last digit.
FLOAT_TOLERANCE = 1e-4
UNTIMED = ("seconds", "metric_seconds")


def recompute(folder: str, out: Path) -> dict[str, dict]:
    """Records of the folder's RECOMPUTED texts and methods from ``python -m udig.evaluate`` with the model and
    the settings the committed run recorded in its run.json, written in ``out``."""
    run = json.loads((DOCS / folder / "run.json").read_text())
    examples, methods = RECOMPUTED[folder]
    by_id = {item.id: item for item in evaluation.load_items(run["dataset"], run["seed"])}
    rows = [{"id": i, "text": by_id[i].text, "label": by_id[i].label} for i in examples]
    (out / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = [
        f"--{name.replace('_', '-')}={run[name]}" for name in ("steps", "factor", "nbrs", "graph_k", "topk", "seed")
    ]
    args = ["--model", run["model"], "--dataset", str(out / "data.jsonl"), "--methods", ",".join(methods), *settings]
    assert evaluation.main([*args, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["model_fingerprint"] == run["model_fingerprint"], (
        "the shipped model is not the one that wrote the committed records"
    )
    return read_records(out / "records.jsonl")


@pytest.fixture(scope="module")
def recomputed(tmp_path_factory) -> Callable[[str], dict[str, dict]]:
    """The records of a committed folder, recomputed once per folder."""
    done: dict[str, dict[str, dict]] = {}

    def records(folder: str) -> dict[str, dict]:
        if folder not in done:
            done[folder] = recompute(folder, tmp_path_factory.mktemp(folder))
        return done[folder]

    return records


@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "example", "method"),
    [
        (folder, example, method)
        for folder, (examples, methods) in RECOMPUTED.items()
        for example in examples
        for method in methods
    ],
)
def test_committed_records_recompute_from_the_shipped_model(recomputed, folder, example, method):
    """A committed record is what today's code computes from the shipped model: every field equal, floats to
    FLOAT_TOLERANCE, the top-k tokens, k, length and prediction exactly; only the timings differ."""
    key = f"{example}|{method}"
    got = recomputed(folder)[key]
    committed = read_records(DOCS / folder / "records.jsonl")[key]
    assert got.keys() == committed.keys(), key
    for name, value in committed.items():
        if name in UNTIMED:
            continue
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=FLOAT_TOLERANCE, abs=FLOAT_TOLERANCE), (key, name)
        else:
            assert got[name] == value, (key, name)
