"""``python -m udig.card``: the Model examination section, its safe text, its README merge, its files and its push.

User text must stay text under a renderer with autolinks: the checks render with markdown-it-py and linkify
(the kind of renderer the Hub and many sites use), where backslash escapes would not stop a link.
"""

from __future__ import annotations

import hashlib
import html
import re
import struct
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from conftest import RenderedPage, linkify_renderer, make_explanation, rendered

from udig import card
from udig.render.exports import card_text

HOSTILE = (
    "https://evil%2Eexample/p",
    "https://1522067521/x",
    "someone@evil.example",
    "someone@evil.com",
    "mailto:someone@evil.com",
    "www.evil.example",
    "www.evil.com",
    "evil.com/path",
    "ftp://evil.com",
    "[x](javascript:alert(1))",
    "![i](http://x/y.png)",
    "<a href=x>",
    "<img src=x onerror=alert(1)>",
    "a `tick` and | pipe | cells",
    "**bold** _it_ ~~gone~~ # heading",
    "1. list & &amp; entity",
    "<!-- udig:model-examination:end -->",
)


def active(parsed: RenderedPage) -> list[tuple[str, dict]]:
    """Links (mailto ones too), images, code and raw HTML elements a renderer made: anything but structure."""
    structure = {"p", "table", "thead", "tbody", "tr", "th", "td", "blockquote", "h2", "h3", "h4", "ul", "li"}
    return [(tag, attrs) for tag, attrs in parsed.tags if tag not in structure]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_user_text_stays_text_under_linkify_in_markdown_and_html(hostile):
    md = linkify_renderer()
    safe = card_text(hostile)
    for context in (f"{safe}", f"> {safe}", f"| a | b |\n| --- | --- |\n| {safe} | {safe} |", f"Words: {safe}"):
        parsed = rendered(md.render(context), markdown=False)
        assert active(parsed) == [], (context, md.render(context))
        assert hostile in "".join(parsed.text)  # the visible text is what was typed
    cells = rendered(f"| a | b |\n| --- | --- |\n| {safe} | x |", markdown=True)
    assert sum(tag == "td" for tag, _ in cells.tags) == 2  # a pipe in the text never splits a cell
    as_html = rendered(f"<p>Words: {safe}</p>", markdown=False)  # the HTML card: a browser shows the same characters
    assert active(as_html) == [] and "".join(as_html.text) == f"Words: {hostile}"


def test_backslash_escapes_alone_would_link():
    """Why card_text uses character references: the renderer links what a backslash-escaped text still shows."""
    from udig.render import escape_markdown

    assert any("<a " in linkify_renderer().render(escape_markdown(h)) for h in HOSTILE)
    assert not any("<a " in linkify_renderer().render(card_text(h)) for h in HOSTILE)


def test_card_text_keeps_ordinary_text_readable_and_on_one_line():
    assert card_text("Good, funny! Really?") == "Good, funny! Really?"
    assert card_text("two\nlines\r\nand\ttab") == "two lines  and tab"
    assert card_text("café — ok") == "café — ok"


# -- names, links, words, intervals ------------------------------------------------------------------------


def test_image_names_never_collide():
    names = {
        card.image_name(method, index, text, fmt)
        for method in ("ig", "udig")
        for index in (1, 2)
        for text in ("good film", "good film.", "Good film")
        for fmt in ("png", "svg")
    }
    assert len(names) == 2 * 2 * 3 * 2
    assert all(re.fullmatch(r"udig-(ig|udig)-[12]-[0-9a-f]{10}\.(png|svg)", n) for n in names)
    assert card.image_name("ig", 1, "x", "png") == card.image_name("ig", 1, "x", "png")


def test_demo_link_is_absolute_or_absent():
    assert card.demo_base(None, {}) is None  # no demo: no link, never a relative ?s=
    assert card.demo_base(None, {"SPACE_HOST": "someone-udig.hf.space"}) == "https://someone-udig.hf.space/"
    assert card.demo_base(None, {"SPACE_HOST": "evil.example/<script>"}) is None
    assert card.demo_base("https://x.hf.space", {"SPACE_HOST": "y.hf.space"}) == "https://x.hf.space/"
    for bad in ("?s=abc", "javascript:alert(1)", "x.hf.space", "ftp://x/"):
        with pytest.raises(ValueError, match="absolute http"):
            card.demo_base(bad, {})
    link = card.demo_link("https://x.hf.space/", "a <b> & c", model="o/m", method="udig", steps=4)
    assert link.startswith("https://x.hf.space/?tab=sentiment&text=a%20%3Cb%3E%20%26%20c&")
    assert "model=o%2Fm" in link and "steps=4" in link
    assert card.demo_link(None, "x", model=None, method="ig", steps=4) is None


def test_demo_link_reopens_the_example_in_the_demo():
    import urllib.parse

    from udig.app import links
    from udig.app.config import AppConfig

    text = "A gorgeous, witty movie & www.evil.com [x](y)"
    url = card.demo_link("https://x.hf.space/", text, model="udig/minilm-rotten-tomatoes", method="dig", steps=12)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    layout = [("sentiment", field) for field in ("text", "model", "method", "steps")]
    tab, values, notices = links.restore(AppConfig.from_env(), layout, query)
    assert tab == "sentiment" and notices == []
    assert values == {
        ("sentiment", "text"): text,
        ("sentiment", "model"): "udig/minilm-rotten-tomatoes",
        ("sentiment", "method"): "dig",
        ("sentiment", "steps"): 12,
    }


def fake_example(index: int, text: str, pieces, values, scores: dict[str, float], label: str = "positive"):
    explanation = make_explanation(text, pieces, values, target_label=label, target=1 if label == "positive" else 0)
    paths = (f"udig/{card.image_name('ig', index, text, 'png')}", f"udig/{card.image_name('ig', index, text, 'svg')}")
    full = {key: scores.get(key, 0.0) for key in card_keys()}
    return card.Example(index, text, {"ig": explanation}, {"ig": full}, {"ig": paths})


def card_keys():
    from udig.metrics import FAITHFULNESS_KEYS

    return FAITHFULNESS_KEYS


def words_of(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


@pytest.fixture()
def examples():
    first = "Good film, great cast!"
    second = "Dull film... www.evil.com says [x](javascript:alert(1))"
    return [
        fake_example(1, first, words_of(first), [0.5, 0.1, 0.9, 0.6, 0.3, 0.8], {"log_odds": -1.0}),
        fake_example(
            2,
            second,
            words_of(second),
            [0.6, -0.2] + [0.95] * 3 + [0.01] * (len(words_of(second)) - 5),
            {"log_odds": -3.0},
            "negative",
        ),
    ]


def test_top_words_per_label_leave_punctuation_out(examples):
    found = card.top_words(examples, "ig")
    assert set(found) == {"positive", "negative"}
    assert [w for w, _, _ in found["positive"]] == ["great", "good", "cast", "film"]  # "," 0.9 and "!" 0.8 dropped
    assert found["positive"][0] == ("great", pytest.approx(0.6), 1)
    negative = [w for w, _, _ in found["negative"]]
    assert negative[0] == "dull" and "film" not in negative  # film pushes away from negative here
    assert not any(re.fullmatch(r"\W+", w) for rows in found.values() for w, _, _ in rows)


def test_faithfulness_means_with_the_evaluation_intervals(examples):
    from udig.evaluation.summary import bootstrap_interval

    table = card.faithfulness_table(examples, ["ig"], seed=3)
    mean, low, high = table["ig"]["log_odds"]
    assert mean == pytest.approx(-2.0)
    expected = bootstrap_interval(np.array([-1.0, -3.0]), np.random.default_rng([3, card_keys().index("log_odds")]))
    assert (low, high) == pytest.approx(expected) and -3.0 <= low <= mean <= high <= -1.0


def test_section_shows_user_text_as_text_and_only_its_own_links(examples):
    stamp = card.Stamp("someone@evil.com/[m](javascript:x)", "Hub commit abc123", "IG steps 4")
    linked = [*examples[:1], card.Example(**{**examples[1].__dict__, "link": "https://x.hf.space/?tab=sentiment"})]
    section = card.section(linked, ["ig"], stamp)
    assert section.startswith(card.BEGIN + "\n## Model examination") and section.endswith(card.END + "\n")
    parsed = rendered(section, markdown=True)
    images = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    links = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert images == [examples[0].images["ig"][0], examples[1].images["ig"][0]]
    assert links == [examples[0].images["ig"][1], examples[1].images["ig"][1], "https://x.hf.space/?tab=sentiment"]
    visible = "".join(parsed.text)
    assert examples[1].text in visible and "someone@evil.com/[m](javascript:x)" in visible
    assert "udig " + card.__version__ in visible and "Hub commit abc123" in visible
    assert "2 example texts by Integrated Gradients (IG, Sundararajan et al. 2017). Red" in visible
    assert re.search(r"\| IG \| −2\.000 \[−3\.000, −1\.000\] \|", section)  # both values: the interval's ends
    assert "?s=" not in section


def test_section_without_a_demo_has_no_demo_link(examples):
    section = card.section(examples, ["ig"], card.Stamp("m", "r", "s"))
    assert "udig demo" not in section and "http" not in section


def test_merge_keeps_metadata_and_replaces_its_own_section():
    readme = "---\nlicense: mit\ntags:\n- sentiment\n---\n# My model\n\nTrained on things.\n"
    first = card.merge(readme, f"{card.BEGIN}\nfirst\n{card.END}\n")
    assert first.startswith("---\nlicense: mit\ntags:\n- sentiment\n---\n# My model\n\nTrained on things.\n\n")
    after = first + "\n## Citation\n\nplease\n"
    second = card.merge(after, f"{card.BEGIN}\nsecond\n{card.END}\n")
    assert second.count(card.BEGIN) == 1 and second.count(card.END) == 1
    assert "second" in second and "first" not in second
    assert second.endswith(f"{card.END}\n\n## Citation\n\nplease\n") and second.startswith("---\nlicense: mit\n")
    assert card.merge(None, "S\n") == "S\n"
    assert card.merge("# Title\n", "S\n") == "# Title\n\nS\n"  # no metadata: none invented
    with pytest.raises(ValueError, match="end"):
        card.merge(f"# T\n{card.BEGIN}\nno end\n", "S\n")


def test_dataset_texts_take_turns_between_labels():
    from udig.data import Example

    rows = [Example(f"p{i}", 1, i) for i in range(3)] + [Example(f"n{i}", 0, 10 + i) for i in range(3)]
    assert card.dataset_texts(rows, 3) == ["n0", "p0", "n1"]
    assert card.dataset_texts(rows, 10) == ["n0", "p0", "n1", "p1", "n2", "p2"]
    with pytest.raises(ValueError, match="--n"):
        card.dataset_texts(rows, 0)


def test_texts_file_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="empty.txt.*one example text per line"):
        card.read_texts(empty)
    with pytest.raises(ValueError, match="missing.txt"):
        card.read_texts(tmp_path / "missing.txt")


def test_revision_is_the_hub_commit_or_a_digest_of_the_weights(tmp_path, monkeypatch):
    from huggingface_hub import constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    cached = tmp_path / "hub" / "models--someone--model"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text(sha)
    (cached / "snapshots" / sha).mkdir(parents=True)
    (cached / "snapshots" / sha / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert card.model_revision(card.model_ref("someone/model")) == f"Hub commit {sha}"
    assert card.model_revision(card.model_ref("someone/other")).startswith("unknown (offline")

    folder = tmp_path / "private" / "my-model"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    ref = card.model_ref(str(folder))
    assert ref.display == "my-model" and ref.hub_id is None and "private" not in ref.display
    digest = hashlib.sha256(b"weights").hexdigest()[:12]
    assert card.model_revision(ref) == f"weights sha256 {digest} (model.safetensors)"
    assert card.model_ref(str(folder), "o/pushed").display == "o/pushed"


# -- the push ----------------------------------------------------------------------------------------------


def test_dry_run_lists_files_and_sizes_without_the_hub(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", lambda *a, **k: pytest.fail("dry run pushed"))
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "a.png").write_bytes(b"x" * 1234)
    lines: list[str] = []
    files = {"README.md": tmp_path / "README.md", "udig/a.png": tmp_path / "a.png"}
    assert card.push("o/m", files, dry_run=True, log=lines.append) is None
    assert lines[0].startswith("Would open a pull request on the model o/m with 2 files")
    assert "  README.md  (5 bytes)" in lines and "  udig/a.png  (1,234 bytes)" in lines


def test_push_opens_a_pull_request_never_a_commit_to_main(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def create_commit(self, repo_id, operations, **options):
        calls.append((repo_id, [op.path_in_repo for op in operations], options))
        return type("Info", (), {"pr_url": "https://huggingface.co/o/m/discussions/1"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    (tmp_path / "README.md").write_text("hello")
    url = card.push("o/m", {"README.md": tmp_path / "README.md"}, dry_run=False, log=lambda _: None)
    assert url.endswith("/discussions/1")
    ((repo, paths, options),) = calls
    assert repo == "o/m" and paths == ["README.md"]
    assert options["create_pr"] is True and options.get("revision") in (None,) and options["repo_type"] == "model"


# -- the whole command on udig's offline model ---------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_command_writes_images_and_a_card_that_a_rerun_replaces(tmp_path, monkeypatch, capsys):
    from udig.models import WEIGHTS_FILE, default_model_dir

    monkeypatch.delenv("SPACE_HOST", raising=False)
    texts = tmp_path / "texts.txt"
    texts.write_text("A gorgeous, [UNK] witty movie.\nDull [MASK] and boring [SEP] mess at www.evil.com\n")
    out = tmp_path / "card"
    out.mkdir()
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Model\n\nMine.\n")
    argv = ["--texts", str(texts), "--methods", "ig", "--steps", "4", "--out", str(out)]
    assert card.main(argv) == 0, capsys.readouterr().err
    readme = (out / "README.md").read_text()
    pngs = sorted((out / "udig").glob("*.png"))
    svgs = sorted((out / "udig").glob("*.svg"))
    assert len(pngs) == len(svgs) == 2
    for png in pngs:
        assert png_size(png.read_bytes())[0] == 1200
        assert f"]({png.relative_to(out).as_posix()})" in readme
    for svg in svgs:
        ElementTree.fromstring(svg.read_bytes())  # well-formed
    weights = (default_model_dir() / WEIGHTS_FILE).read_bytes()
    assert f"weights sha256 {hashlib.sha256(weights).hexdigest()[:12]}" in html.unescape(readme)
    assert readme.startswith("---\nlicense: apache-2.0\n---\n# Model\n\nMine.\n\n" + card.BEGIN)
    assert "udig demo" not in readme and str(tmp_path) not in readme  # no demo, no local path
    assert (out / card.SECTION_FILE).read_text() in readme
    rows = re.findall(r"^\| (?:positive|negative) \| (.*) \|$", readme, re.M)
    assert len(rows) == 2 and "gorgeous" in rows[0] + rows[1]
    assert not re.search("unk|mask|sep", "".join(rows), re.I)  # typed special tokens (attributed > 0 here) are no words

    monkeypatch.setenv("SPACE_HOST", "someone-udig.hf.space")
    assert card.main(argv) == 0, capsys.readouterr().err
    again = (out / "README.md").read_text()
    assert again.count(card.BEGIN) == 1 and again.startswith("---\nlicense: apache-2.0\n---\n# Model\n\nMine.\n")
    assert re.search(r"\]\(https://someone-udig\.hf\.space/\?tab=sentiment&text=A%20gorgeous", again)
    assert len(list((out / "udig").glob("*.png"))) == 2  # the same names: replaced, not added


def test_command_refuses_bad_input_clearly(tmp_path, capsys):
    assert card.main(["--texts", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.txt" in capsys.readouterr().err
    texts = tmp_path / "t.txt"
    texts.write_text("fine\n")
    assert card.main(["--texts", str(texts), "--methods", "ig,lime", "--out", str(tmp_path / "o")]) == 1
    assert "--methods" in capsys.readouterr().err
    assert card.main(["--texts", str(texts), "--demo-url", "?s=x", "--methods", "ig", "--out", str(tmp_path)]) == 1
    assert "absolute http" in capsys.readouterr().err
    assert card.main(["--texts", str(texts), "--dry-run", "--methods", "ig", "--out", str(tmp_path)]) == 1
    assert "give --push too" in capsys.readouterr().err


@pytest.mark.slow
def test_default_methods_on_dataset_sentences_with_a_dry_run_push(tmp_path, capsys):
    """IG, DIG and UDIG on two test sentences (DIG builds its neighbour graph: tens of seconds)."""
    out = tmp_path / "card"
    argv = ["--dataset", "rotten_tomatoes", "--n", "2", "--steps", "4", "--out", str(out)]
    assert card.main([*argv, "--push", "someone/model", "--dry-run"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "Would open a pull request on the model someone/model with 13 files" in printed  # 12 images + README
    readme = (out / "README.md").read_text()
    for method in ("IG", "DIG", "UDIG"):
        assert re.search(rf"^\| {method} \| [−+]\d\.\d{{3}} \[", readme, re.M), method
    assert "someone&#47;model" in readme  # a pushed card names its repository
    labels = re.findall(r"^#### Example \d: (\w+)", readme, re.M)
    assert len(labels) == 2 and set(labels) <= {"positive", "negative"}
