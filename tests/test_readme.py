"""The README is the front door: its commands are the ones CI runs, its examples run, its links lead somewhere,
and every figure it quotes is the one in the document it cites (the evaluation's summary.json for its table).

The example's QA model path stands for the untrained QA head here: no trained QA model ships offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import udig
from udig.models import load_base_minilm, load_model

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def without_code(text: str) -> str:
    """The Markdown outside fenced code blocks (links and headings there are not Markdown)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def section(path: Path, anchor: str | None) -> str:
    """The text under the heading whose anchor is ``anchor``, up to the next heading of its level or above;
    the whole file when ``anchor`` is None."""
    text = without_code(text_of(path))
    if anchor is None:
        return text
    headings = list(re.finditer(r"^(#+) (.*)$", text, flags=re.M))
    for n, match in enumerate(headings):
        if slug(match.group(2)) == anchor:
            level = len(match.group(1))
            end = next((h.start() for h in headings[n + 1 :] if len(h.group(1)) <= level), len(text))
            return text[match.end() : end]
    raise AssertionError(f"{path.relative_to(ROOT)} has no heading with the anchor #{anchor}")


def readme_section(title: str) -> str:
    return section(README, slug(title))


def example(path: Path) -> str:
    return re.search(r"```python\n(.*?)```", text_of(path), re.S).group(1)


@pytest.mark.parametrize("path", [README, ROOT / "docs" / "library.md"], ids=lambda p: p.name)
def test_the_library_example_runs(path, monkeypatch):
    block = example(path)
    assert "Explainer(model, tokenizer)" in block and "load_model(" in block

    def load(name=None, **kwargs):  # no trained QA model ships offline: the example's placeholder gets a fresh head
        return load_base_minilm("qa") if name == "path/to/squad-model" else load_model(name, **kwargs)

    monkeypatch.setattr(udig, "load_model", load)
    namespace: dict = {}
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    explanation, qa = namespace["e"], namespace["qa"]
    assert explanation.method == "udig" and len(explanation.attributions) == len(explanation.tokens)
    assert qa.answer == qa.context[qa.answer_span[0] : qa.answer_span[1]]


def test_the_two_commands_open_the_readme_and_ci_runs_the_second():
    """After the Spaces front matter: run the app, run every test (the line .ci/run greps), the quick subset."""
    text = text_of(README)
    front_matter, body = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S).groups()
    assert "app_file: app.py" in front_matter
    first_block = re.search(r"```bash\n(.*?)```", body, re.S)
    assert body[: first_block.start()].strip().startswith("# "), "the commands come right after the title"
    run_app, run_tests, quick = first_block.group(1).splitlines()
    assert run_app.startswith("python3 -m venv") and run_app.endswith("python app.py") and "requirements.txt" in run_app
    ci_pattern = re.search(r"grep -m1 -E '([^']+)' README\.md", text_of(ROOT / ".ci" / "run")).group(1)
    assert next(line for line in text.splitlines() if re.search(ci_pattern, line)) == run_tests
    assert run_tests.endswith("python -m pytest -q") and "requirements-dev.txt" in run_tests
    assert quick.split("#")[0].strip() == '.venv/bin/python -m pytest -q -m "not slow"'


def test_the_readme_is_a_front_door():
    text = text_of(README)
    assert len(text.splitlines()) <= 200
    picture = re.search(r"!\[[^\]]+\]\((docs/images/[^)]+\.png)\)", text).group(1)
    assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_lead_somewhere(doc):
    """Every relative link names an existing file, and every #anchor a heading of it."""
    for target in LINK.findall(without_code(text_of(doc))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor:
            section(linked, anchor)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_source_files_named_exist(doc):
    """A file of the repository named in `code` (udig/x.py, tests/test_y.py, udig/vocab/) is still there
    (tests/output/ is what the tests write)."""
    named = re.findall(r"`((?:udig|tests|benchmarks|tools)/[\w./-]*(?:\.py|/))`", text_of(doc))
    assert [path for path in named if not path.startswith("tests/output/") and not (ROOT / path).exists()] == []


def test_the_results_table_is_the_evaluation_summary():
    """Each row of the README's table, recomputed from docs/evaluation/summary.json and found in the
    evaluation document's own table."""
    summary = json.loads(text_of(ROOT / "docs" / "evaluation" / "summary.json"))["methods"]
    evaluation_rows = {
        row.split("|")[1].strip(): row for row in text_of(ROOT / "docs" / "evaluation.md").splitlines() if "|" in row
    }
    rows = [line for line in readme_section("Results in brief").splitlines() if line.startswith("| ")][1:]
    assert len(rows) >= 4

    def interval(score: dict) -> str:
        return f"{score['mean']:.3f} [{score['low']:.3f}, {score['high']:.3f}]".replace("-", "\u2212")

    for row in rows:
        method, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        scores = summary[method]
        wae = "–" if scores["wae"] is None else f"{scores['wae']:.3f}"
        expected = [interval(scores[key]) for key in ("log_odds", "comprehensiveness", "sufficiency")] + [wae]
        assert cells == expected, method
        assert all(cell in evaluation_rows[method] for cell in cells), method


def test_every_figure_in_the_results_is_in_the_section_it_cites():
    """A bullet's numbers all appear in the section its link points to (the intro's in the whole document)."""
    blocks = re.split(r"\n(?=- )|\n\n", readme_section("Results in brief"))
    checked = 0
    for block in blocks:
        if block.startswith("|") or not NUMBER.search(LINK.sub("", block)):
            continue
        sources = [target.partition("#") for target in LINK.findall(block) if not re.match(r"[a-z]+:", target)]
        assert sources, f"a figure without a source: {block[:80]}"
        cited = "".join(section((ROOT / path).resolve(), anchor or None) for path, _, anchor in sources)
        missing = set(NUMBER.findall(LINK.sub("", block))) - set(NUMBER.findall(cited))
        assert not missing, f"{sorted(missing)} not in {[path + '#' + anchor for path, _, anchor in sources]}"
        checked += 1
    assert checked >= 5
