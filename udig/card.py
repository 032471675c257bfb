"""``python -m udig.card``: a *Model examination* section for a model's README, with images of its explanations.

For a model (udig's offline default, a local folder or a Hub id) and a few example texts (a file, one per line,
or ``--dataset rotten_tomatoes --n N``), each text is explained by each method (IG, DIG and UDIG by default),
each explanation drawn as a PNG and an SVG (:func:`udig.render.highlight_image`), and a Markdown section
written: the examples with their images, the top words per label (no punctuation, no special tokens), the
faithfulness of the methods on these examples with percentile-bootstrap intervals (the evaluation's own
:func:`~udig.evaluation.summary.bootstrap_interval`), stamped with the udig version and the model's revision.

    python -m udig.card --texts examples.txt --out card
    python -m udig.card --model OWNER/MODEL --dataset rotten_tomatoes --n 3 --out card --push OWNER/MODEL

The section goes between :data:`BEGIN` and :data:`END` comments into the model's ``README.md`` through
huggingface_hub's ``ModelCard`` (YAML metadata kept), so a rerun replaces its own section. ``--push`` opens a
pull request on the model repository (never a commit to main); ``--dry-run`` lists what it would upload.
Every user text goes through :func:`udig.render.exports.card_text` (see docs/cards.md). Building the section
(:func:`section`, :func:`merge`) is pure; the model, the files and the Hub stay in :func:`examine`,
:func:`write` and :func:`push`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .explanation import Explanation
from .provenance import ModelRef, model_ref, model_revision
from .render.exports import card_text, content_words
from .version import __version__

METHODS = ("ig", "dig", "udig")
BEGIN = "<!-- udig:model-examination:begin -->"  # written by python -m udig.card; a rerun replaces what lies between
END = "<!-- udig:model-examination:end -->"
IMAGE_FOLDER = "udig"  # the images' folder inside the model repository; the card refers to them relatively
SECTION_FILE = "model-examination.md"
TOP_WORDS = 8
SEED = 0
METHOD_NAMES = {
    "ig": "Integrated Gradients (IG, Sundararajan et al. 2017)",
    "dig": "Discretized IG (DIG, Sanyal & Ren 2021)",
    "udig": "Uniform Discretized IG (UDIG, Roy & Kundu 2024)",
}
DATASETS = ("rotten_tomatoes",)


@dataclass(frozen=True)
class Example:
    """One example text explained by every method: its explanations, scores and image paths by method."""

    index: int
    text: str
    explanations: dict[str, Explanation]
    scores: dict[str, dict[str, float | None]]
    images: dict[str, tuple[str, str]]  # method -> (PNG, SVG) paths relative to the README
    link: str | None = None  # absolute link that reopens the example in the demo


@dataclass(frozen=True)
class Stamp:
    """What a section was made with: the model's name and revision, the settings, the udig version."""

    model: str
    revision: str
    settings: str
    special_tokens: tuple[str, ...] = ()  # the tokenizer's, never a top word
    version: str = __version__


# -- pure: names, links, words, intervals, the section ----------------------------------------------------


def image_name(method: str, index: int, text: str, fmt: str) -> str:
    """``udig-<method>-<index>-<digest>.<fmt>``: never the same name for two examples, nor for an edited text."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"udig-{method}-{index}-{digest}.{fmt}"


def demo_base(demo_url: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The demo's absolute address: ``demo_url``, else the Space's own when running in one (``SPACE_HOST``),
    else None (no link: a relative ``?s=`` link would point into the model repository, not at a demo)."""
    if demo_url:
        parts = urllib.parse.urlsplit(demo_url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--demo-url {demo_url[:80]!r} is not an absolute http(s) address; give https://HOST/")
        return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", "", ""))
    host = environ.get("SPACE_HOST", "").strip()
    if re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,250}[A-Za-z0-9])?", host):
        return f"https://{host}/"
    return None


def demo_link(base: str | None, text: str, *, model: str | None, method: str, steps: int) -> str | None:
    """An absolute link that opens the demo's sentiment tab with this example (the demo's plain link form)."""
    if base is None:
        return None
    fields = {"tab": "sentiment", "text": text, "method": method, "steps": str(steps)}
    if model:
        fields["model"] = model
    return f"{base}?{urllib.parse.urlencode(fields, quote_via=urllib.parse.quote)}"


def top_words(
    examples: Sequence[Example], method: str, n: int = TOP_WORDS, special_tokens: Sequence[str] = ()
) -> dict[str, list[tuple[str, float, int]]]:
    """Per explained label, the words pushing most toward it under ``method``: (word, mean attribution,
    occurrences), highest first; words are compared in lower case, punctuation and special tokens left out."""
    found: dict[str, dict[str, list[float]]] = {}
    for example in examples:
        explanation = example.explanations[method]
        per_word = found.setdefault(explanation.target_label, {})
        for word in content_words(explanation, special_tokens):
            per_word.setdefault(word.text.lower(), []).append(word.attribution)
    return {
        label: sorted(
            ((word, float(np.mean(values)), len(values)) for word, values in per_word.items() if np.mean(values) > 0),
            key=lambda row: (-row[1], row[0]),
        )[:n]
        for label, per_word in sorted(found.items())
    }


def faithfulness_table(
    examples: Sequence[Example], methods: Sequence[str], seed: int = SEED
) -> dict[str, dict[str, tuple[float, float, float] | None]]:
    """Per method and faithfulness metric: (mean, low, high) over the examples, the interval a seeded
    percentile bootstrap over the examples, as the evaluation's summary computes it; None with no value."""
    from .evaluation.summary import bootstrap_interval
    from .metrics import FAITHFULNESS_KEYS

    table: dict[str, dict[str, tuple[float, float, float] | None]] = {}
    for method in methods:
        table[method] = {}
        for offset, key in enumerate(FAITHFULNESS_KEYS):
            values = np.array([e.scores[method][key] for e in examples if e.scores[method].get(key) is not None])
            if not len(values):
                table[method][key] = None
                continue
            low, high = bootstrap_interval(values.astype(float), np.random.default_rng([seed, offset]))
            table[method][key] = (float(values.mean()), low, high)
    return table


def _number(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.3f}".replace("-", "−")


def section(examples: Sequence[Example], methods: Sequence[str], stamp: Stamp, *, seed: int = SEED) -> str:
    """The Markdown section between :data:`BEGIN` and :data:`END`: examples with images, top words per label,
    faithfulness with intervals, and the stamp. Every user text (examples, words, labels, model name) is
    :func:`card_text`; links are the demo's absolute address or none."""
    from .evaluation.summary import BOOTSTRAP_RESAMPLES
    from .metrics import FAITHFULNESS

    if not examples:
        raise ValueError("a model examination needs at least one example text")
    described = [METHOD_NAMES.get(m, m.upper()) for m in methods]
    names = " and ".join([", ".join(described[:-1]), described[-1]] if len(described) > 1 else described)
    lines = [
        BEGIN,
        "## Model examination",
        "",
        f"Word attributions of {card_text(stamp.model)} on {len(examples)} example texts by {names}. "
        "Red pushes the model toward the explained label (its prediction), blue away from it; "
        "each image scales its colours to its own largest word.",
        "",
        "### Examples",
    ]
    for example in examples:
        first = example.explanations[methods[0]]
        probability = f" (p = {first.probs[first.target]:.3f})" if first.output == "logits" else ""
        lines += ["", f"#### Example {example.index}: {card_text(first.target_label)}{probability}", ""]
        lines += [f"> {card_text(example.text)}", ""]
        for method in methods:
            png, svg = example.images[method]
            alt = f"{method.upper()} word attributions for example {example.index}, label {first.target_label}"
            lines += [f"![{card_text(alt)}]({_path(png)})", "", f"{method.upper()} · [SVG]({_path(svg)})", ""]
        if example.link:
            lines += [f"[Open this example in the udig demo]({_web(example.link)})", ""]
    top_method = methods[-1]
    lines += [
        "",
        "### Top words per label",
        "",
        f"Words that push most toward each predicted label under {top_method.upper()}: mean attribution over "
        "their occurrences in these examples (occurrences in brackets); punctuation and special tokens left out.",
        "",
        "| label | words |",
        "| --- | --- |",
    ]
    for label, rows in top_words(examples, top_method, special_tokens=stamp.special_tokens).items():
        cell = ", ".join(f"{card_text(word)} {_number(value)} ({count})" for word, value, count in rows) or "—"
        lines.append(f"| {card_text(label)} | {cell} |")
    table = faithfulness_table(examples, methods, seed)
    lines += [
        "",
        "### Faithfulness",
        "",
        f"Mean over the {len(examples)} examples with a 95 % percentile-bootstrap interval over the examples "
        f"({BOOTSTRAP_RESAMPLES:,} resamples, seed {seed}); the top 20 % tokens as in the DIG paper, "
        "AOPC over 1–50 % (ERASER). "
        "A few examples give wide intervals: read them as a look at the model, not a benchmark.",
        "",
        "| method | " + " | ".join(f"{m.short} {m.arrow}".strip() for m in FAITHFULNESS) + " |",
        "| --- |" + " ---: |" * len(FAITHFULNESS),
    ]
    for method in methods:
        cells = [
            "—"
            if (value := table[method][m.key]) is None
            else f"{_number(value[0])} [{_number(value[1])}, {_number(value[2])}]"
            for m in FAITHFULNESS
        ]
        lines.append(f"| {method.upper()} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"_Made with udig {card_text(stamp.version)} on model revision {card_text(stamp.revision)}; settings: "
        f"{card_text(stamp.settings)}._",
        END,
    ]
    return "\n".join(lines) + "\n"


def _path(relative: str) -> str:
    """A relative image path as a Markdown link target (percent-encoded; never a scheme)."""
    if urllib.parse.urlsplit(relative).scheme or relative.startswith("/"):
        raise ValueError(f"image paths in a card are relative to the README, got {relative!r}")
    return urllib.parse.quote(relative, safe="/")


def _web(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"refusing the link {url[:80]!r}: a card links only to absolute http(s) addresses")
    return urllib.parse.quote(url, safe=":/?#@!$&'*+,;=%-._~")


def merge(readme: str | None, new_section: str) -> str:
    """``readme`` (a model card) with ``new_section`` in place of its own earlier section between :data:`BEGIN`
    and :data:`END`, or appended. A card with YAML metadata goes through huggingface_hub's ``ModelCard``, which
    keeps the metadata; a card without any stays without (``ModelCard`` would write an empty ``{}`` block)."""
    from huggingface_hub import ModelCard

    card = ModelCard(readme) if readme and readme.lstrip().startswith("---") else None
    body = card.text if card is not None else readme or ""
    if "\r\n" in body:
        new_section = new_section.replace("\r\n", "\n").replace("\n", "\r\n")
    start = body.find(BEGIN)
    if start >= 0:
        end = body.find(END, start)
        if end < 0:
            raise ValueError(f"the README has the udig section's start marker but not its end ({END}); fix it by hand")
        rest = body[end + len(END) :]
        body = body[:start] + new_section + re.sub(r"\A\r?\n", "", rest)
    else:
        newline = "\r\n" if "\r\n" in body else "\n"
        body = body.rstrip("\r\n") + newline * 2 + new_section if body.strip() else new_section
    if card is None:
        return body
    card.text = body
    return str(card)


def dataset_texts(rows: Sequence, n: int) -> list[str]:
    """``n`` texts of labelled rows (``.text``, ``.label``), labels taking turns, each in its rows' order:
    a small card shows both labels."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    by_label: dict[int, list[str]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row.text)
    queues = [list(reversed(by_label[label])) for label in sorted(by_label)]
    texts: list[str] = []
    while len(texts) < n and any(queues):
        for queue in queues:
            if queue and len(texts) < n:
                texts.append(queue.pop())
    return texts


def read_texts(path: str | os.PathLike) -> list[str]:
    """Example texts from a file, one per line (blank lines skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"cannot read the texts file {str(path)!r}: {error}; give a UTF-8 file, one text per line"
        ) from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"the texts file {str(path)!r} holds no text; write one example text per line")
    return texts


# -- the model and its revision: udig.provenance (shared with the demo's share links) --------------------


# -- I/O: explain, write, push ----------------------------------------------------------------------------


def examine(
    ref: ModelRef,
    texts: Sequence[str],
    methods: Sequence[str] = METHODS,
    *,
    steps: int | None = None,
    demo_url: str | None = None,
) -> tuple[list[Example], dict[str, bytes], Stamp]:
    """Explain every text with every method, score each explanation and draw it: (examples, images by
    relative path, stamp)."""
    from . import metrics, render
    from .explainer import Explainer
    from .models import load_model
    from .settings import Settings

    model, tokenizer = load_model(ref.load_name)
    explainer = Explainer(model, tokenizer)
    settings = {m: Settings.make({"method": m, **({"steps": steps} if steps is not None else {})}) for m in methods}
    base = demo_base(demo_url)
    examples, images = [], {}
    for index, text in enumerate(texts, start=1):
        explanations, scores, paths = {}, {}, {}
        for method in methods:
            explanation = explainer.explain(text, settings=settings[method])
            scores[method] = metrics.scores(explanation, model, tokenizer)
            explanation = dataclasses.replace(explanation, settings={**explanation.settings, "model": ref.display})
            explanations[method] = explanation
            paths[method] = tuple(f"{IMAGE_FOLDER}/{image_name(method, index, text, fmt)}" for fmt in ("png", "svg"))
            for path, fmt in zip(paths[method], ("png", "svg")):
                images[path] = render.highlight_image(explanation, fmt)
        link = demo_link(base, text, model=ref.hub_id, method=methods[-1], steps=settings[methods[-1]].steps)
        examples.append(Example(index, text, explanations, scores, paths, link))
    described = "; ".join(f"{m.upper()} {_settings_text(settings[m])}" for m in methods)
    specials = tuple(getattr(tokenizer, "all_special_tokens", ()))
    return examples, images, Stamp(ref.display, model_revision(ref), described, specials)


def _settings_text(settings) -> str:
    info = settings.info()
    keys = ("steps", "strategy", "candidates", "baseline")
    return ", ".join(f"{k} {info[k]}" for k in keys if info.get(k) is not None)


def write(out: Path, new_section: str, images: dict[str, bytes], readme: str | None) -> dict[str, Path]:
    """Write the images, the section alone and the merged README under ``out``; {repository path: file}."""
    files: dict[str, Path] = {}
    for relative, data in images.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[relative] = path
    (out / SECTION_FILE).write_text(new_section, encoding="utf-8")
    (out / "README.md").write_text(merge(readme, new_section), encoding="utf-8")
    files["README.md"] = out / "README.md"
    return files


def push(repo_id: str, files: dict[str, Path], *, dry_run: bool, log=print) -> str | None:
    """Upload ``files`` (repository path -> local file) to the model ``repo_id`` as a pull request; with
    ``dry_run``, only list them. Returns the pull request's address. The token is huggingface_hub's own."""
    log(f"{'Would open' if dry_run else 'Opening'} a pull request on the model {repo_id} with {len(files)} files:")
    for relative, path in sorted(files.items()):
        log(f"  {relative}  ({path.stat().st_size:,} bytes)")
    if dry_run:
        return None
    from huggingface_hub import CommitOperationAdd, HfApi

    operations = [CommitOperationAdd(path_in_repo=r, path_or_fileobj=str(p)) for r, p in sorted(files.items())]
    info = HfApi().create_commit(
        repo_id,
        operations,
        commit_message="Model examination by udig (IG, DIG, UDIG word attributions)",
        commit_description=f"Written by `python -m udig.card` (udig {__version__}).",
        repo_type="model",
        create_pr=True,
    )
    return info.pr_url


def hub_readme(repo_id: str) -> str | None:
    """The model's README on the Hub (None when it has none)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, "README.md", repo_type="model")).read_text(encoding="utf-8")
    except RemoteEntryNotFoundError:  # not LocalEntryNotFoundError: no Hub is no empty README
        return None


# -- the command line -------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m udig.card",
        description="Write a 'Model examination' section (explanation images, top words, faithfulness with "
        "intervals) into a model's README, and optionally open a pull request with it on the Hub.",
    )
    p.add_argument("--model", default=None, help="Hub id or local folder (default: udig's offline model)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--texts", help="a UTF-8 file of example texts, one per line")
    source.add_argument("--dataset", choices=DATASETS, help="take the examples from a dataset (offline)")
    p.add_argument("--n", type=int, default=3, help="examples taken from --dataset (default 3)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default ig,dig,udig)")
    p.add_argument("--steps", type=int, default=None, help="steps per method (default: each method's own)")
    p.add_argument("--out", default="udig-card", help="output folder (default udig-card)")
    p.add_argument("--readme", help="the README.md to merge into (default: the model folder's, or OUT's)")
    p.add_argument("--demo-url", help="absolute address of a udig demo to link the examples to")
    p.add_argument("--push", metavar="OWNER/MODEL", help="open a pull request with the card on this model repo")
    p.add_argument("--dry-run", action="store_true", help="with --push: list what would be uploaded, offline")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHOD_NAMES]
        if not methods or unknown:
            raise ValueError(f"--methods {args.methods!r}: choose from {', '.join(METHOD_NAMES)}")
        if args.dry_run and not args.push:
            raise ValueError("--dry-run shows what --push OWNER/MODEL would upload; give --push too")
        if args.dataset:
            from .data import load_split

            texts = dataset_texts(load_split("test"), args.n)
        else:
            texts = read_texts(args.texts)
        ref = model_ref(args.model, args.push)
        out = Path(args.out)
        readme = _existing_readme(args, ref, out)
        examples, images, stamp = examine(ref, texts, methods, steps=args.steps, demo_url=args.demo_url)
        new_section = section(examples, methods, stamp)
        files = write(out, new_section, images, readme)
        print(f"Wrote {len(images)} images, {out / SECTION_FILE} and {files['README.md']}.")
        if args.push:
            url = push(args.push, files, dry_run=args.dry_run)
            if url:
                print(f"Pull request: {url}")
    except Exception as error:  # noqa: BLE001  # one line, never a traceback that may show request headers
        print(f"udig.card: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        return 1
    return 0


def _existing_readme(args: argparse.Namespace, ref: ModelRef, out: Path) -> str | None:
    """The card to merge into: --readme, the Hub's for --push (not with --dry-run: offline), the model
    folder's, the output folder's from an earlier run, or none."""
    if args.readme:
        path = Path(args.readme)
        if not path.is_file():
            raise ValueError(f"--readme {args.readme!r} does not exist; give an existing README.md or leave it out")
        return path.read_text(encoding="utf-8")
    if args.push and not args.dry_run:
        return hub_readme(args.push)
    candidates = [out / "README.md"]
    if ref.folder is not None and ref.load_name is not None:
        candidates.insert(0, ref.folder / "README.md")
    return next((p.read_text(encoding="utf-8") for p in candidates if p.is_file()), None)


if __name__ == "__main__":
    sys.exit(main())
